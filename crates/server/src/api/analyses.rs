//! Saved analyses over HTTP: an answer of a conversation saved by name with
//! the parameters the person ticked, listed, run with other values (no
//! model), their runs; and re-run after an upload gives a table they read a
//! new version. What an analysis is lives in `quarry_agent::analyses`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_agent::analyses::{self, store, Analysis, ParamSpec};
use quarry_agent::Answer;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{catalog, ApiError, Res};
use crate::auth::{Access, Edit, Read, Ws};
use crate::AppState;

/// The last answer to question `q` of the conversation the caller reached, and its workspace.
fn answer_of(st: &AppState, a: &mut Access, q: i64) -> Result<(Answer, String), ApiError> {
    let c = a.conversation()?;
    let answer = super::answers_of(st, &c.id, Some(q))?.pop().ok_or_else(|| ApiError::not_found("no answer"))?;
    Ok((answer, a.ws.id.clone()))
}

#[utoipa::path(get, path = "/api/conversations/{id}/questions/{q}/analysis",
    params(("id" = String, Path), ("q" = i64, Path)),
    responses((status = 200, description = "the parameters the answer's query could take", body = Object), (status = 404, body = super::ErrorBody)))]
pub(super) async fn proposal(
    State(st): State<Arc<AppState>>,
    Ws(mut access, _): Ws<Edit>,
    Path((_, q)): Path<(String, i64)>,
) -> Res<Value> {
    let (a, _) = answer_of(&st, &mut access, q)?;
    let ok = a.ok && [analyses::SQL, analyses::PYTHON].contains(&a.language.as_str()) && !a.code.is_empty();
    Ok(Json(json!({"can_save": ok, "question": a.question, "language": a.language, "params": analyses::propose(&a)})))
}

/// Save an answer as an analysis: its name and the parameters confirmed.
#[derive(Deserialize, ToSchema)]
pub struct SaveAnalysis {
    pub name: String,
    /// Of the proposed parameters, those to keep (by column), optionally renamed.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<Value>,
}

#[utoipa::path(post, path = "/api/conversations/{id}/questions/{q}/analysis",
    params(("id" = String, Path), ("q" = i64, Path)), request_body = SaveAnalysis,
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody)))]
pub(super) async fn save(
    State(st): State<Arc<AppState>>,
    Ws(mut a, _): Ws<Edit>,
    Path((_, q)): Path<(String, i64)>,
    Json(req): Json<SaveAnalysis>,
) -> Res<Value> {
    let (answer, ws) = answer_of(&st, &mut a, q)?;
    let u = a.user;
    let proposed = analyses::propose(&answer);
    let mut params: Vec<ParamSpec> = Vec::new();
    for p in &req.params {
        let column = p["column"].as_str().unwrap_or_default();
        let mut spec = proposed
            .iter()
            .find(|x| x.column == column)
            .cloned()
            .ok_or_else(|| ApiError::bad(format!("the query compares no column '{column}' with a value")))?;
        if let Some(n) = p["name"].as_str().filter(|n| !n.trim().is_empty()) {
            spec.name = n.trim().to_string();
        }
        params.push(spec);
    }
    let entries = readable(&st, &ws)?;
    let a = Analysis::from_answer(req.name.trim(), &answer, &params, &entries).map_err(ApiError::bad)?;
    store::save(&st.ws_data(&ws), &a).map_err(ApiError::internal)?;
    super::audit::record(&st, &ws, &u, quarry_store::AuditAction::SaveAnalysis, &a.name)?;
    let run = run_blocking(&st, &ws, a.clone(), Vec::new(), "saved").await?;
    Ok(Json(json!({"analysis": a, "run": run})))
}

/// The tables an analysis of workspace `ws` may read: its catalog's (none
/// yet is fine) and its live sources'.
fn readable(st: &Arc<AppState>, ws: &str) -> Result<Vec<quarry_ingest::catalog::TableEntry>, ApiError> {
    let catalog = match catalog(st, ws)? {
        Some(c) => c.tables().map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    Ok(analyses::readable(&st.ws_data(ws), catalog))
}

/// Run `a` now on the workspace's kernels, keeping the run.
async fn run_blocking(
    st: &Arc<AppState>,
    ws: &str,
    a: Analysis,
    given: Vec<(String, String)>,
    trigger: &str,
) -> Result<Value, ApiError> {
    let params = a.values(&given).map_err(ApiError::bad)?;
    let entries = readable(st, ws)?;
    let (k, data, trigger) = (st.analysis_kernels(ws), st.ws_data(ws), trigger.to_string());
    let run =
        tokio::task::spawn_blocking(move || analyses::run_and_keep(&data, &a, params, k.get(), &entries, &trigger))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    serde_json::to_value(run).map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/analyses", params(("ws" = String, Path)),
    responses((status = 200, description = "every analysis with its runs: the last in full, the others without their tables, charts and figures", body = Vec<Object>)))]
pub(super) async fn list(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<Vec<Value>> {
    let w = a.ws;
    let data = st.ws_data(&w.id);
    let mut out = Vec::new();
    for a in store::list(&data).map_err(ApiError::internal)? {
        let mut runs = store::runs(&data, &a.name).map_err(ApiError::internal)?;
        let n = runs.len();
        for r in runs.iter_mut().take(n.saturating_sub(1)) {
            (r.table, r.chart, r.figures) = (None, None, Vec::new());
        }
        out.push(json!({"analysis": a, "runs": runs}));
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/analyses/{name}/run",
    params(("ws" = String, Path), ("name" = String, Path)),
    request_body(content = Object, description = "{\"params\": {\"name\": \"value\"}}"),
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn run(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Path((_, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Res<Value> {
    let (w, u) = (a.ws, a.user);
    let a = store::load(&st.ws_data(&w.id), &name).map_err(|_| ApiError::not_found("no such analysis"))?;
    let given: Vec<(String, String)> = body["params"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect())
        .unwrap_or_default();
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::RunAnalysis, &a.name)?;
    Ok(Json(run_blocking(&st, &w.id, a, given, "asked").await?))
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/analyses/{name}",
    params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 200), (status = 404, body = super::ErrorBody)))]
pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Path((_, name)): Path<(String, String)>,
) -> Res<Value> {
    let (w, u) = (a.ws, a.user);
    store::remove(&st.ws_data(&w.id), &name).map_err(|_| ApiError::not_found("no such analysis"))?;
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::RemoveAnalysis, &name)?;
    Ok(Json(json!({"removed": name})))
}

/// After an upload: run again the analyses reading tables that got a new
/// version, and move those whose report's next file became a new table onto it.
pub(crate) async fn rerun_after_upload(st: &Arc<AppState>, ws: &str, tables: Vec<String>, new: Vec<String>) {
    let data = st.ws_data(ws);
    if store::list(&data).map_or(true, |l| l.is_empty()) {
        return;
    }
    let Ok(entries) = readable(st, ws) else { return };
    let k = st.analysis_kernels(ws);
    let done = tokio::task::spawn_blocking(move || {
        let mut done = analyses::rerun_reading(&data, &tables, k.get(), &entries);
        done.extend(analyses::follow_new_files(&data, &new, k.get(), &entries));
        done
    })
    .await;
    for (name, r) in done.unwrap_or_default() {
        if let Err(e) = r {
            tracing::warn!("analysis {name} was not run again: {e}");
        }
    }
}
