//! A workspace's audit trail as its owner sees it: who uploaded, asked, ran,
//! exported, defined or connected what, and when — as JSON, or as CSV
//! (`?format=csv`, formula-leading text neutralised as in every CSV
//! export). Entries are appended by the handlers that do those things
//! ([`record`]); nothing here changes or removes one.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quarry_store::{AuditAction, AuditEntry, User};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Own, Ws};
use crate::errors::ApiError;
use crate::AppState;

/// Append that `u` did `action` to `target` in workspace `ws`.
pub(crate) fn record(st: &AppState, ws: &str, u: &User, action: AuditAction, target: &str) -> Result<(), ApiError> {
    st.store.audit(ws, u, action, target).map_err(ApiError::internal)
}

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// One entry of the trail.
#[derive(serde::Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: String,
    pub user: String,
    pub action: String,
    pub target: String,
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/audit", params(("ws" = String, Path), AuditQuery),
    responses((status = 200, body = Vec<AuditView>), (status = 404, body = super::ErrorBody)))]
pub(super) async fn log(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let w = a.ws;
    let entries = st.store.audit_log(&w.id).map_err(ApiError::internal)?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(entries.into_iter().map(view).collect::<Vec<_>>()).into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"quarry-audit-{}.csv\"", w.id)),
            ],
            quarry_report::csv(&table(&entries)),
        )
            .into_response()),
        other => Err(ApiError::bad(format!("format '{other}': use json or csv"))),
    }
}

fn view(e: AuditEntry) -> AuditView {
    AuditView { seq: e.seq, at: e.at, user: e.user, action: e.action.as_str().into(), target: e.target }
}

/// The trail as a result table, for the one CSV writer.
fn table(entries: &[AuditEntry]) -> quarry_types::Table {
    use quarry_types::{Column, ColumnType};
    let text = |name: &str| Column { name: name.into(), dtype: Some(ColumnType::Text) };
    let columns = vec![text("at"), text("user"), text("action"), text("target")];
    let rows = entries
        .iter()
        .map(|e| {
            [e.at.as_str(), &e.user, e.action.as_str(), &e.target].map(|s| serde_json::Value::String(s.into())).to_vec()
        })
        .collect();
    quarry_types::Table { columns, rows, truncated: false }
}
