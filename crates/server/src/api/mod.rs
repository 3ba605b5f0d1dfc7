//! The JSON API under `/api/`. Every handler is listed in [`ApiDoc`], from
//! which `/api/openapi.json` is generated.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quarry_agent::{Privacy, Table};
use quarry_ingest::catalog::Catalog;
use quarry_report::Format;
use quarry_types::sql::quoted;
use quarry_types::SqlKernel;
use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::auth::{Caller, Console, Edit, Read, Ws};
use crate::{run, web, AppState};
use quarry_store::{AuditAction, Role};

pub use crate::errors::ApiError;

type Res<T> = Result<Json<T>, ApiError>;

/// Longest conversation title (a question's first 80 characters name it
/// when none is given).
pub const MAX_TITLE_CHARS: usize = 200;

mod accounts;
mod analyses;
pub(crate) mod audit;
mod connections;
mod definitions;
mod exports;
mod insights;
mod layout;
mod members;
mod packs;
pub mod shares;
mod upload;
mod views;

use accounts::*;
pub(crate) use exports::{answers_of, export_answers};
pub(crate) use packs::seed_demo as seed_demo_packs;
pub use upload::ingest_file;
use upload::*;
pub use views::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Quarry API", description = "Upload tables, explore them, and ask the analyst questions."),
    paths(
        get_config,
        login,
        logout,
        me,
        create_user,
        create_token,
        list_tokens,
        revoke_token,
        list_workspaces,
        create_workspace,
        list_datasets,
        list_workspace_datasets,
        upload,
        list_tables,
        table_rows,
        layout::set_layout,
        insights::table_insights,
        insights::summary,
        packs::list,
        packs::binding,
        packs::confirm,
        analyses::proposal,
        analyses::save,
        analyses::list,
        analyses::run,
        analyses::remove,
        definitions::list,
        definitions::add,
        definitions::remove,
        connections::list,
        connections::add,
        connections::remove,
        connections::snapshot,
        run_sql,
        list_conversations,
        create_conversation,
        get_conversation,
        ask,
        cancel,
        events,
        exports::export,
        exports::export_conversation,
        audit::log,
        members::list,
        members::set,
        members::remove,
        members::settings,
        shares::create,
        shares::list,
        shares::revoke,
        shares::open,
        shares::export
    ),
    components(schemas(
        ErrorBody,
        ConfigView,
        ExportFormatView,
        Login,
        TokenView,
        TokenInfoView,
        NewUser,
        UserView,
        NewWorkspace,
        WorkspaceView,
        DatasetView,
        TableView,
        RowsView,
        layout::LayoutRequest,
        layout::LayoutView,
        definitions::DefinitionsView,
        analyses::SaveAnalysis,
        connections::ConnectionView,
        connections::NewConnection,
        connections::SnapshotRequest,
        connections::SnapshotView,
        SqlRequest,
        SqlView,
        NewConversation,
        ConversationView,
        Question,
        Accepted,
        members::MembersView,
        members::MemberView,
        members::RoleView,
        members::SetMember,
        members::Settings,
        shares::NewShareRequest,
        shares::ShareView,
        shares::ShareCreated,
        shares::SharedView
    ))
)]
pub struct ApiDoc;

pub fn router(state: Arc<AppState>) -> Router {
    let upload_limit = state.cfg.max_upload_bytes as usize + (1 << 20);
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/config", get(get_config))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/users", post(create_user))
        .route("/api/users/{name}/tokens", post(create_token))
        .route("/api/tokens", get(list_tokens))
        .route("/api/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/workspaces", get(list_workspaces).post(create_workspace))
        .route("/api/datasets", get(list_datasets).post(upload_default).layer(DefaultBodyLimit::max(upload_limit)))
        .route(
            "/api/workspaces/{ws}/datasets",
            get(list_workspace_datasets).post(upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/workspaces/{ws}/tables", get(list_tables))
        .route("/api/workspaces/{ws}/tables/{table}/rows", get(table_rows))
        .route("/api/workspaces/{ws}/tables/{table}/layout", post(layout::set_layout))
        .route("/api/workspaces/{ws}/tables/{table}/insights", get(insights::table_insights))
        .route("/api/workspaces/{ws}/tables/{table}/insights/summary", post(insights::summary))
        .route("/api/workspaces/{ws}/definitions", get(definitions::list).post(definitions::add))
        .route("/api/workspaces/{ws}/definitions/{kind}/{key}", axum::routing::delete(definitions::remove))
        .route("/api/workspaces/{ws}/connections", get(connections::list).post(connections::add))
        .route("/api/workspaces/{ws}/connections/{name}", axum::routing::delete(connections::remove))
        .route("/api/workspaces/{ws}/snapshots", post(connections::snapshot))
        .route("/api/packs", get(packs::list))
        .route("/api/workspaces/{ws}/tables/{table}/packs/{pack}", get(packs::binding).post(packs::confirm))
        .route("/api/workspaces/{ws}/analyses", get(analyses::list))
        .route("/api/workspaces/{ws}/analyses/{name}/run", post(analyses::run))
        .route("/api/workspaces/{ws}/analyses/{name}", axum::routing::delete(analyses::remove))
        .route("/api/conversations/{id}/questions/{q}/analysis", get(analyses::proposal).post(analyses::save))
        .route("/api/workspaces/{ws}/sql", post(run_sql))
        .route("/api/workspaces/{ws}/audit", get(audit::log))
        .route("/api/workspaces/{ws}/members", get(members::list).post(members::set))
        .route("/api/workspaces/{ws}/members/{name}", axum::routing::delete(members::remove))
        .route("/api/workspaces/{ws}/settings", post(members::settings))
        .route("/api/workspaces/{ws}/shares", get(shares::list).post(shares::create))
        .route("/api/workspaces/{ws}/shares/{share}", axum::routing::delete(shares::revoke))
        .route("/api/shared", get(shares::open))
        .route("/api/shared/export/{format}", get(shares::export))
        .route("/api/workspaces/{ws}/conversations", get(list_conversations).post(create_conversation))
        .route("/api/conversations/{id}", get(get_conversation))
        .route("/api/conversations/{id}/questions", post(ask))
        .route("/api/conversations/{id}/cancel", post(cancel))
        .route("/api/conversations/{id}/events", get(events))
        .route("/api/conversations/{id}/questions/{q}/export/{format}", get(exports::export))
        .route("/api/conversations/{id}/export/{format}", get(exports::export_conversation))
        .layer(DefaultBodyLimit::max(1 << 20))
        .merge(web::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::guard::guard))
        .with_state(state)
}

async fn openapi() -> Response {
    let body = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(get, path = "/api/config", responses((status = 200, body = ConfigView)))]
async fn get_config(State(st): State<Arc<AppState>>, Caller(u): Caller) -> Res<ConfigView> {
    Ok(Json(ConfigView {
        user: u.name,
        login_required: st.cfg.require_login,
        model: st.cfg.llm.as_ref().ok().map(|c| c.model.clone()),
        llm_help: st.cfg.llm.as_ref().err().cloned(),
        python: st.python.is_some(),
        python_note: st.python_note.clone(),
        privacy_modes: Privacy::ALL.iter().map(|p| p.as_str().to_string()).collect(),
        privacy_help: Privacy::ALL.iter().map(|p| p.describe().to_string()).collect(),
        definition_kinds: quarry_types::DefinitionKind::ALL
            .iter()
            .map(|k| views::DefinitionKindView { kind: k.as_str().into(), help: k.describe().into() })
            .collect(),
        local_models: st.cfg.local_models.clone(),
        insight_kinds: quarry_agent::insights::InsightKind::ALL
            .iter()
            .map(|k| views::InsightKindView { kind: k.as_str().into(), label: k.label().into() })
            .collect(),
        source_kinds: quarry_types::SourceKind::ALL
            .iter()
            .map(|k| views::SourceKindView { kind: k.as_str().into(), example: k.example().into() })
            .collect(),
        snapshot_max_rows: quarry_ingest::sources::SNAPSHOT_MAX_ROWS,
        engine: st.cfg.engine.describe(),
        max_upload_bytes: st.cfg.max_upload_bytes,
        export_formats: Format::ALL
            .iter()
            .map(|f| ExportFormatView {
                format: f.extension().into(),
                label: f.label().into(),
                needs_table: f.needs_table(),
            })
            .collect(),
    }))
}

fn ws_view(st: &AppState, w: quarry_store::Workspace, role: Role) -> Result<WorkspaceView, ApiError> {
    let viewers_sql = st.store.viewers_sql(&w.id).map_err(ApiError::internal)?;
    Ok(WorkspaceView { id: w.id, name: w.name, created_at: w.created_at, role: role.as_str().into(), viewers_sql })
}

/// The workspaces the caller owns, then those they are a member of; a
/// caller in none gets one of their own.
#[utoipa::path(get, path = "/api/workspaces", responses((status = 200, body = [WorkspaceView])))]
async fn list_workspaces(State(st): State<Arc<AppState>>, Caller(u): Caller) -> Res<Vec<WorkspaceView>> {
    let mut list = st.store.workspaces_of(u.id).map_err(ApiError::internal)?;
    if list.is_empty() {
        list.push((st.store.create_workspace(u.id, "My workspace").map_err(ApiError::internal)?, Role::Owner));
    }
    Ok(Json(list.into_iter().map(|(w, r)| ws_view(&st, w, r)).collect::<Result<_, _>>()?))
}

#[utoipa::path(post, path = "/api/workspaces", request_body = NewWorkspace, responses((status = 200, body = WorkspaceView)))]
async fn create_workspace(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Json(n): Json<NewWorkspace>,
) -> Res<WorkspaceView> {
    let name = n.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad("a workspace name needs 1 to 100 characters"));
    }
    Ok(Json(ws_view(&st, st.store.create_workspace(u.id, name).map_err(ApiError::internal)?, Role::Owner)?))
}

fn ds_view(d: quarry_store::Dataset) -> DatasetView {
    DatasetView {
        id: d.id,
        workspace: d.workspace,
        file_name: d.file_name,
        size: d.size,
        tables: d.tables,
        created_at: d.created_at,
    }
}

#[utoipa::path(get, path = "/api/datasets", responses((status = 200, body = [DatasetView])))]
async fn list_datasets(State(st): State<Arc<AppState>>, Caller(u): Caller) -> Res<Vec<DatasetView>> {
    let mut out = Vec::new();
    for (w, _) in st.store.workspaces_of(u.id).map_err(ApiError::internal)? {
        out.extend(st.store.datasets(&w.id).map_err(ApiError::internal)?.into_iter().map(ds_view));
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/datasets", params(("ws" = String, Path)),
    responses((status = 200, body = [DatasetView]), (status = 404, body = ErrorBody)))]
async fn list_workspace_datasets(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<Vec<DatasetView>> {
    let w = a.ws;
    Ok(Json(st.store.datasets(&w.id).map_err(ApiError::internal)?.into_iter().map(ds_view).collect()))
}

fn catalog(st: &AppState, ws: &str) -> Result<Option<Catalog>, ApiError> {
    let data = st.ws_data(ws);
    if !data.join("catalog.sqlite").exists() {
        return Ok(None);
    }
    Catalog::open(&data).map(Some).map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/tables", params(("ws" = String, Path)),
    responses((status = 200, body = [TableView]), (status = 404, body = ErrorBody)))]
async fn list_tables(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<Vec<TableView>> {
    let w = a.ws;
    let Some(c) = catalog(&st, &w.id)? else { return Ok(Json(Vec::new())) };
    let tables = c.tables().map_err(ApiError::internal)?;
    Ok(Json(
        tables
            .into_iter()
            .map(|t| TableView {
                name: t.name,
                source: std::path::Path::new(&t.source)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or(t.source),
                sheet: t.sheet,
                version: t.version,
                rows: t.rows,
                columns: serde_json::to_value(&t.columns).unwrap_or_default(),
                notes: serde_json::to_value(&t.notes).unwrap_or_default(),
                excluded_rows: t.excluded.len(),
                part: t.part,
                layout: t.layout.as_ref().map(|l| serde_json::to_value(l).unwrap_or_default()),
            })
            .collect(),
    ))
}

fn table_json(t: &Table) -> Value {
    serde_json::to_value(t).unwrap_or_default()
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/tables/{table}/rows",
    params(("ws" = String, Path), ("table" = String, Path), ("offset" = Option<usize>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = RowsView), (status = 404, body = ErrorBody)))]
async fn table_rows(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Read>,
    Path((_, table)): Path<(String, String)>,
    Query(q): Query<RowsQuery>,
) -> Res<RowsView> {
    let w = a.ws;
    let Some(c) = catalog(&st, &w.id)? else { return Err(ApiError::not_found("no such table")) };
    let entry = c.entry(&table, None).map_err(|_| ApiError::not_found("no such table"))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let sql = format!("SELECT * FROM {} LIMIT {limit} OFFSET {}", quoted(&entry.name), q.offset);
    let k = st.kernels(&w.id);
    let limits = st.cfg.limits.clone();
    let r = tokio::task::spawn_blocking(move || k.sql.query(&sql, &limits))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)?;
    let t = Table::from_result(&r);
    Ok(Json(RowsView {
        columns: t.columns.iter().map(|c| c.name.clone()).collect(),
        rows: t.rows,
        offset: q.offset,
        total: entry.rows,
    }))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/sql", params(("ws" = String, Path)), request_body = SqlRequest,
    responses((status = 200, body = SqlView), (status = 400, body = ErrorBody)))]
async fn run_sql(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Console>, Json(req): Json<SqlRequest>) -> Res<SqlView> {
    let (w, u) = (a.ws, a.user);
    if catalog(&st, &w.id)?.is_none() {
        return Err(ApiError::bad("no tables yet: upload a file first"));
    }
    audit::record(&st, &w.id, &u, AuditAction::Sql, &req.sql)?;
    let k = st.kernels(&w.id);
    let limits = st.cfg.limits.clone();
    let r = tokio::task::spawn_blocking(move || k.sql.query(&req.sql, &limits))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)?;
    let t = Table::from_result(&r);
    Ok(Json(SqlView { table: table_json(&t), rows: r.rows, truncated: r.truncated }))
}

fn conv_view(st: &AppState, c: quarry_store::ConversationRow, with_events: bool) -> Result<ConversationView, ApiError> {
    let events = if with_events {
        st.store
            .events(&c.id, 0)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|e| json!({"seq": e.seq, "question": e.question, "event": e.event}))
            .collect()
    } else {
        Vec::new()
    };
    Ok(ConversationView {
        running: st.running.lock().map(|r| r.contains_key(&c.id)).unwrap_or(false),
        id: c.id,
        workspace: c.workspace,
        title: c.title,
        created_at: c.created_at,
        events,
    })
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/conversations", params(("ws" = String, Path)),
    responses((status = 200, body = [ConversationView])))]
async fn list_conversations(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<Vec<ConversationView>> {
    let w = a.ws;
    let list = st.store.conversations(&w.id).map_err(ApiError::internal)?;
    Ok(Json(list.into_iter().map(|c| conv_view(&st, c, false)).collect::<Result<_, _>>()?))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/conversations", params(("ws" = String, Path)),
    request_body = NewConversation, responses((status = 200, body = ConversationView)))]
async fn create_conversation(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Json(n): Json<NewConversation>,
) -> Res<ConversationView> {
    let w = a.ws;
    let title = n.title.unwrap_or_default();
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad(format!("a conversation title has at most {MAX_TITLE_CHARS} characters")));
    }
    let c = st.store.create_conversation(&w.id, title.trim()).map_err(ApiError::internal)?;
    Ok(Json(conv_view(&st, c, false)?))
}

#[utoipa::path(get, path = "/api/conversations/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
async fn get_conversation(State(st): State<Arc<AppState>>, Ws(mut a, _): Ws<Read>) -> Res<ConversationView> {
    let c = a.conversation()?;
    Ok(Json(conv_view(&st, c, true)?))
}

#[utoipa::path(post, path = "/api/conversations/{id}/questions", params(("id" = String, Path)), request_body = Question,
    responses((status = 202, body = Accepted), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn ask(
    State(st): State<Arc<AppState>>,
    Ws(mut a, _): Ws<Edit>,
    Json(q): Json<Question>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let c = a.conversation()?;
    let (u, ws) = (a.user, a.ws);
    let asked = q.question.clone();
    let workspace = c.workspace.clone();
    let question = run::start(&st, &u, c, ws, q)?;
    audit::record(&st, &workspace, &u, AuditAction::Ask, &asked)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { question })))
}

#[utoipa::path(post, path = "/api/conversations/{id}/cancel", params(("id" = String, Path)), responses((status = 200)))]
async fn cancel(State(st): State<Arc<AppState>>, Ws(mut a, _): Ws<Edit>) -> Res<Value> {
    let c = a.conversation()?;
    let was = run::cancel(&st, &c.id);
    Ok(Json(json!({"cancelled": was})))
}

/// Server-sent events: the stored events after `after`, then live ones.
/// Each carries its `seq` as the SSE id, so a reconnect resumes.
#[utoipa::path(get, path = "/api/conversations/{id}/events",
    params(("id" = String, Path), ("after" = Option<i64>, Query)),
    responses((status = 200, description = "text/event-stream of {seq, question, event}")))]
async fn events(
    State(st): State<Arc<AppState>>,
    Ws(mut a, _): Ws<Read>,
    Query(q): Query<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let c = a.conversation()?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(q.after);
    Ok(run::sse(&st, &c.id, after)?.into_response())
}
