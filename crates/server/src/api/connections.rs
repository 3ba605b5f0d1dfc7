//! A workspace's live databases over HTTP: listed (passwords as `***`),
//! added after a test connection made from one of the workspace's SQL
//! workers (where the drivers are; the server links none), removed; and
//! snapshots of their tables, loaded as versioned tables like an upload. Adding
//! one is for admins only: a connection reads from the server's network and,
//! for SQLite, its files. Stored by `quarry_ingest::sources`, as
//! `quarry connect` stores them; what a source is lives in
//! `quarry_types::sources`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use quarry_ingest::sources;
use quarry_types::Source;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, Res};
use crate::auth::{Edit, Own, Read, Ws};
use crate::AppState;

/// A connection as the page shows it.
#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub kind: String,
    /// The URL with its password written `***`.
    pub url: String,
    /// The environment variable of the server that holds the password, if any.
    pub password_env: Option<String>,
    /// Its tables as queried (`name.table`), as introspected when it was added.
    pub tables: Vec<String>,
}

fn views(data: &std::path::Path) -> Vec<ConnectionView> {
    sources::live_tables(data)
        .into_iter()
        .map(|(s, tables)| ConnectionView {
            name: s.name.clone(),
            kind: s.kind.as_str().into(),
            url: s.redacted_url(),
            password_env: s.password_env.clone(),
            tables: tables.into_iter().map(|t| t.name).collect(),
        })
        .collect()
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/connections", params(("ws" = String, Path)),
    responses((status = 200, body = Vec<ConnectionView>), (status = 404, body = super::ErrorBody)))]
pub(super) async fn list(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<Vec<ConnectionView>> {
    let w = a.ws;
    Ok(Json(views(&st.ws_data(&w.id))))
}

/// A connection to add: its name (the SQL schema of its tables) and URL.
#[derive(Deserialize, ToSchema)]
pub struct NewConnection {
    pub name: String,
    /// `postgres://USER[:PASSWORD]@HOST:5432/DATABASE`, `mysql://…` or `sqlite:/path/to/file.db`.
    pub url: String,
    /// Read the password from this environment variable of the server instead.
    #[serde(default)]
    pub password_env: Option<String>,
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/connections", params(("ws" = String, Path)), request_body = NewConnection,
    responses((status = 200, body = Vec<ConnectionView>), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub(super) async fn add(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Json(req): Json<NewConnection>,
) -> Res<Vec<ConnectionView>> {
    let (w, u) = (a.ws, a.user);
    if !u.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an admin can connect a database: a connection reads from the server's network and files",
        ));
    }
    let source =
        Source::parse(req.name.trim(), &req.url, req.password_env.filter(|v| !v.is_empty())).map_err(ApiError::bad)?;
    let data = st.ws_data(&w.id);
    // The SQL workers open the catalog (and may not create it).
    quarry_ingest::catalog::Catalog::open(&data).map_err(ApiError::internal)?;
    let (k, limits, tested) = (st.kernels(&w.id), st.cfg.limits.clone(), source.clone());
    let tables = tokio::task::spawn_blocking(move || k.sql.test_source(&tested, &limits))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad(format!("not saved: {e}")))?;
    let (at, named) = (data.clone(), source.name.clone());
    tokio::task::spawn_blocking(move || sources::add(&at, &source, &tables))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::Connect, &named)?;
    Ok(Json(views(&data)))
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/connections/{name}", params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<ConnectionView>), (status = 404, body = super::ErrorBody)))]
pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Path((_, name)): Path<(String, String)>,
) -> Res<Vec<ConnectionView>> {
    let (w, u) = (a.ws, a.user);
    let data = st.ws_data(&w.id);
    let (at, named) = (data.clone(), name.clone());
    let removed = tokio::task::spawn_blocking(move || sources::remove(&at, &named))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    if !removed {
        return Err(ApiError::not_found("no such connection"));
    }
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::Disconnect, &name)?;
    Ok(Json(views(&data)))
}

/// A snapshot to take: a live table (`name.table`), or the rows a condition picks.
#[derive(Deserialize, ToSchema)]
pub struct SnapshotRequest {
    pub table: String,
    /// A condition on its rows (SQL), e.g. `state = 'Kano'`.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// The table it becomes (`source_table` by default); each snapshot of a name is a new version.
    #[serde(default)]
    pub name: Option<String>,
    /// Most rows it may hold (`/api/config`'s `snapshot_max_rows` by
    /// default); a table with more writes nothing.
    #[serde(default)]
    pub max_rows: Option<usize>,
}

/// A snapshot taken: the table it became and how many rows it holds.
#[derive(Serialize, ToSchema)]
pub struct SnapshotView {
    pub table: String,
    pub rows: usize,
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/snapshots", params(("ws" = String, Path)), request_body = SnapshotRequest,
    responses((status = 200, body = SnapshotView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn snapshot(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Json(req): Json<SnapshotRequest>,
) -> Res<SnapshotView> {
    use quarry_types::SqlKernel;
    let (w, u) = (a.ws, a.user);
    let data = st.ws_data(&w.id);
    let (sql, name) = sources::snapshot_query(&data, &req.table, req.filter.as_deref(), req.name.as_deref())
        .map_err(ApiError::bad)?;
    let max = req.max_rows.unwrap_or(sources::SNAPSHOT_MAX_ROWS);
    if max == 0 {
        return Err(ApiError::bad("max_rows: a snapshot holds at least one row"));
    }
    let k = st.kernels(&w.id);
    let r = tokio::task::spawn_blocking(move || k.sql.query(&sql, &sources::snapshot_limits(max)))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad(format!("snapshot of {}: {e}", req.table)))?;
    let path = sources::write_snapshot(&data, &req.table, &name, &r, max).map_err(ApiError::bad)?;
    super::ingest_file(&st, &w.id, &path, &format!("{name}.parquet")).await?;
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::Snapshot, &format!("{} → {name}", req.table))?;
    Ok(Json(SnapshotView { table: name, rows: r.rows }))
}
