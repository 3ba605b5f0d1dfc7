//! A table's insights (no model): computed on the workspace's SQL workers
//! the first time they are asked for a data version, then read from where
//! `quarry_agent::insights` stored them. Uploads compute them right away, so
//! the table card has them when it opens (a card opened before they are
//! done waits for them rather than computing them twice). Where privacy
//! allows (`full`), the configured model may summarise them
//! (`quarry_agent::insights::phrase`); the numbers stay the queries'.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_agent::insights::{phrase, stored_or_analyse, Insights};
use quarry_agent::Privacy;
use serde_json::Value;

use super::{catalog, ApiError, Res};
use crate::auth::{Edit, Read, Ws};
use crate::AppState;

/// The insights of `table`'s latest version in workspace `ws`.
pub(crate) async fn compute(st: &Arc<AppState>, ws: &str, table: &str) -> Result<Insights, ApiError> {
    let Some(c) = catalog(st, ws)? else { return Err(ApiError::not_found("no such table")) };
    let entry = c.entry(table, None).map_err(|_| ApiError::not_found("no such table"))?;
    drop(c);
    let gate = st.insights_gate(ws, table);
    let _one_at_a_time = gate.lock().await;
    let k = st.kernels(ws);
    let limits = st.cfg.limits.clone();
    let data = st.ws_data(ws);
    tokio::task::spawn_blocking(move || stored_or_analyse(&data, &entry, k.sql.as_ref(), &limits))
        .await
        .map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/tables/{table}/insights",
    params(("ws" = String, Path), ("table" = String, Path)),
    responses((status = 200, description = "the table's ranked findings, each with its SQL, result and chart", body = Object),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn table_insights(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Read>,
    Path((_, table)): Path<(String, String)>,
) -> Res<Value> {
    let w = a.ws;
    let ins = compute(&st, &w.id, &table).await?;
    Ok(Json(serde_json::to_value(ins).map_err(ApiError::internal)?))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/tables/{table}/insights/summary",
    params(("ws" = String, Path), ("table" = String, Path)),
    request_body(content = Object, description = "{\"privacy\": \"full\"}: findings quote values, so only full sends them to the model"),
    responses((status = 200, description = "the model's summary: text (numbers it wrote that no finding holds are flagged), model, unsupported", body = Object),
              (status = 400, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub(super) async fn summary(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Path((_, table)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Res<Value> {
    let (w, u) = (a.ws, a.user);
    let privacy: Privacy = body["privacy"].as_str().unwrap_or("strict").parse().map_err(ApiError::bad)?;
    if let Some(why) = phrase::refused(privacy) {
        return Err(ApiError::bad(why));
    }
    let llm = st.model().map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e))?;
    if !st.allow(u.id, "question", st.cfg.questions_per_minute) {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many questions this minute: wait a little",
        ));
    }
    let ins = compute(&st, &w.id, &table).await?;
    let cancel = st.shutdown.child_token();
    let p = phrase::phrase(llm.as_ref(), &ins, privacy, &cancel).await.map_err(ApiError::bad)?;
    Ok(Json(serde_json::to_value(p).map_err(ApiError::internal)?))
}
