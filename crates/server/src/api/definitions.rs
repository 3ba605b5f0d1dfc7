//! The workspace's definitions over HTTP: listed, added (checked on the
//! workspace's SQL workers first, as `quarry define` does) and removed.
//! Stored in the workspace's data directory by `quarry_agent::definitions`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_agent::definitions;
use quarry_types::{Definition, DefinitionKind, Definitions};
use serde_json::Value;

use super::{ApiError, Res};
use crate::auth::{Edit, Read, Ws};
use crate::AppState;

/// Every definition of the workspace, kind by kind, with a line for people each.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DefinitionsView {
    #[schema(value_type = Object)]
    pub definitions: Definitions,
    /// `{kind, key, line}` per definition, in the order they were added.
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<Value>,
}

fn view(d: Definitions) -> DefinitionsView {
    let lines = d
        .all()
        .iter()
        .map(|x| serde_json::json!({"kind": x.kind().as_str(), "key": x.key(), "line": x.line()}))
        .collect();
    DefinitionsView { definitions: d, lines }
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/definitions", params(("ws" = String, Path)),
    responses((status = 200, body = DefinitionsView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn list(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<DefinitionsView> {
    let w = a.ws;
    let d = definitions::load(&st.ws_data(&w.id)).map_err(ApiError::internal)?;
    Ok(Json(view(d)))
}

/// Add or replace one definition: `{"kind": "metric", "name", "expr", "table", "description"}`,
/// `{"kind": "term", "name", "meaning"}`, `{"kind": "column", "table", "column", "description"}`,
/// `{"kind": "synonym", "word", "value", "table", "column"}`, `{"kind": "verified", "question", "sql"}`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/definitions", params(("ws" = String, Path)),
    request_body(content = Object, description = "one definition, tagged by `kind`"),
    responses((status = 200, body = DefinitionsView), (status = 400, body = super::ErrorBody)))]
pub(super) async fn add(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Json(body): Json<Value>,
) -> Res<DefinitionsView> {
    let (w, u) = (a.ws, a.user);
    let d: Definition = serde_json::from_value(body).map_err(|e| {
        let kinds: Vec<&str> = DefinitionKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::bad(format!("not a definition ({e}); its kind is one of {}", kinds.join(", ")))
    })?;
    let data = st.ws_data(&w.id);
    if !data.join("catalog.sqlite").exists() {
        return Err(ApiError::bad("there are no tables in this workspace yet: upload a file first"));
    }
    let k = st.kernels(&w.id);
    let limits = st.cfg.limits.clone();
    let checked = d.clone();
    tokio::task::spawn_blocking(move || definitions::check(&checked, k.sql.as_ref(), &limits))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad(format!("not saved: {e}")))?;
    let target = format!("{} {}", d.kind().as_str(), d.key());
    let _guard = st.definitions_lock.lock().await;
    let mut all = definitions::load(&data).map_err(ApiError::internal)?;
    all.put(d);
    definitions::save(&data, &all).map_err(ApiError::internal)?;
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::Define, &target)?;
    Ok(Json(view(all)))
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/definitions/{kind}/{key}",
    params(("ws" = String, Path), ("kind" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = DefinitionsView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Path((_, kind, key)): Path<(String, String, String)>,
) -> Res<DefinitionsView> {
    let (w, u) = (a.ws, a.user);
    let kind: DefinitionKind = kind.parse().map_err(ApiError::bad)?;
    let data = st.ws_data(&w.id);
    let _guard = st.definitions_lock.lock().await;
    let mut all = definitions::load(&data).map_err(ApiError::internal)?;
    if !all.remove(kind, &key) {
        return Err(ApiError::not_found("there is no such definition"));
    }
    definitions::save(&data, &all).map_err(ApiError::internal)?;
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::Undefine, &format!("{} {key}", kind.as_str()))?;
    Ok(Json(view(all)))
}
