//! A person corrects how a table was read: "header is row N", "no header",
//! "split here", "this is one table". The table's file is loaded again with
//! the choice (stored with the file, so later versions get it too).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_ingest::{HeaderChoice, LayoutChoice, Quiet};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{catalog, ApiError, Res};
use crate::auth::{Edit, Ws};
use crate::AppState;

/// Changes to a table's layout; fields left out keep what was chosen before.
#[derive(Deserialize, ToSchema)]
pub struct LayoutRequest {
    /// `auto`, `none`, or the header's row number (1-based, as the sheet shows it).
    pub header: Option<String>,
    /// The sheet is one table (no splitting at blank rows or titles).
    pub one_table: Option<bool>,
    /// Start a new table at these sheet rows.
    pub split_at: Option<Vec<u64>>,
    /// Only these cells (`A5:F40`); an empty string clears it.
    pub range: Option<String>,
}

/// The tables the file makes now.
#[derive(serde::Serialize, ToSchema)]
pub struct LayoutView {
    pub tables: Vec<String>,
    /// What was chosen, in words.
    pub choice: String,
}

impl LayoutRequest {
    fn apply(self, mut c: LayoutChoice) -> Result<LayoutChoice, ApiError> {
        if let Some(h) = self.header {
            c.header = h.parse::<HeaderChoice>().map_err(ApiError::bad)?;
        }
        if let Some(one) = self.one_table {
            c.one_table = one;
        }
        if let Some(rows) = self.split_at {
            c.split_at = rows;
        }
        match self.range.as_deref().map(str::trim) {
            Some("") => c.range = None,
            Some(r) => c.range = Some(r.parse().map_err(ApiError::bad)?),
            None => {}
        }
        Ok(c)
    }
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/tables/{table}/layout",
    params(("ws" = String, Path), ("table" = String, Path)), request_body = LayoutRequest,
    responses((status = 200, body = LayoutView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)))]
pub(super) async fn set_layout(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Path((_, table)): Path<(String, String)>,
    Json(req): Json<LayoutRequest>,
) -> Res<LayoutView> {
    let w = a.ws;
    let Some(c) = catalog(&st, &w.id)? else { return Err(ApiError::not_found("no such table")) };
    let entry = c.entry(&table, None).map_err(|_| ApiError::not_found("no such table"))?;
    let source = std::path::PathBuf::from(&entry.source);
    let ws_dir = std::fs::canonicalize(st.ws_dir(&w.id)).map_err(ApiError::internal)?;
    if !source.starts_with(&ws_dir) {
        return Err(ApiError::bad(
            "this table's file was not uploaded to this workspace, so it cannot be read again here",
        ));
    }
    let stored = c.layouts(&entry.source).map_err(ApiError::internal)?;
    drop(c);
    let mut base = LayoutChoice::for_sheet(&stored, entry.sheet.as_deref());
    base.sheet = entry.sheet.clone();
    let choice = req.apply(base)?;
    let shown = source.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let k = st.kernels(&w.id);
    let opts = st.cfg.ingest.clone();
    let words = choice.describe();
    let report =
        tokio::task::spawn_blocking(move || k.ingest.load_as(&source, &shown, &opts, Some(&choice), &Quiet, &|| false))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)?;
    let tables = report.tables.into_iter().map(|l| l.table.name).collect();
    Ok(Json(LayoutView { tables, choice: if words.is_empty() { "as found".into() } else { words } }))
}
