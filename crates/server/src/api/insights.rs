//! A table's insights (no model): computed on the workspace's SQL workers
//! the first time they are asked for a data version, then read from where
//! `quarry_agent::insights` stored them. Uploads compute them right away, so
//! the table card has them when it opens.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_agent::insights::{stored_or_analyse, Insights};
use serde_json::Value;

use super::{catalog, ApiError, Res};
use crate::auth::{own_workspace, Caller};
use crate::AppState;

/// The insights of `table`'s latest version in workspace `ws`.
pub(crate) async fn compute(st: &Arc<AppState>, ws: &str, table: &str) -> Result<Insights, ApiError> {
    let Some(c) = catalog(st, ws)? else { return Err(ApiError::not_found("no such table")) };
    let entry = c.entry(table, None).map_err(|_| ApiError::not_found("no such table"))?;
    drop(c);
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
    Caller(u): Caller,
    Path((ws, table)): Path<(String, String)>,
) -> Res<Value> {
    let w = own_workspace(&st, &u, &ws)?;
    let ins = compute(&st, &w.id, &table).await?;
    Ok(Json(serde_json::to_value(ins).map_err(ApiError::internal)?))
}
