//! The JSON API under `/api/`. Every handler is listed in [`ApiDoc`], from
//! which `/api/openapi.json` is generated.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use quarry_agent::{Answer, Event, Privacy, Table};
use quarry_engine::{quoted, SqlKernel};
use quarry_ingest::catalog::Catalog;
use quarry_ingest::{IngestOptions, Quiet};
use quarry_report::{Format, Report, ReportError, Source};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use utoipa::{OpenApi, ToSchema};

use crate::auth::{own_conversation, own_workspace, Caller, COOKIE};
use crate::{run, web, AppState};

/// An error as the API returns it: `{"error": "…", "code": "…"}` with a
/// status. Errors of the other crates convert with their own status and
/// code ([`crate::errors`]).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// A stable name for the kind of error (`file_corrupt`, `sql_refused`, …).
    pub code: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "login_required",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::MISDIRECTED_REQUEST => "unknown_host",
            StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        };
        ApiError { status, message: message.into(), code }
    }
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
    pub fn not_found(m: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn bad(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message, "code": self.code}))).into_response()
    }
}

type Res<T> = Result<Json<T>, ApiError>;

/// Longest conversation title (a question's first 80 characters name it
/// when none is given).
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// A stable name for the kind of error.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConfigView {
    /// The caller.
    pub user: String,
    pub login_required: bool,
    /// The configured model, if any.
    pub model: Option<String>,
    /// How to point Quarry at a model, when none is configured.
    pub llm_help: Option<String>,
    pub python: bool,
    pub python_note: Option<String>,
    /// Privacy modes, strictest (the default) first.
    pub privacy_modes: Vec<String>,
    /// What each mode lets the model see, in the same order.
    pub privacy_help: Vec<String>,
    pub max_upload_bytes: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct Login {
    pub name: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub token: String,
    pub user: String,
}

#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    pub name: String,
    pub password: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    pub admin: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct NewWorkspace {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetView {
    pub id: String,
    pub workspace: String,
    pub file_name: String,
    pub size: u64,
    pub tables: Vec<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TableView {
    pub name: String,
    pub source: String,
    pub sheet: Option<String>,
    pub version: u32,
    pub rows: u64,
    /// name, label and type of each column.
    #[schema(value_type = Vec<Object>)]
    pub columns: Value,
    /// What ingest noticed or cleaned.
    #[schema(value_type = Vec<Object>)]
    pub notes: Value,
    pub excluded_rows: usize,
}

#[derive(Serialize, ToSchema)]
pub struct RowsView {
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    pub offset: usize,
    pub total: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct SqlRequest {
    pub sql: String,
}

#[derive(Serialize, ToSchema)]
pub struct SqlView {
    #[schema(value_type = Object)]
    pub table: Value,
    pub rows: usize,
    pub truncated: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct NewConversation {
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub workspace: String,
    pub title: String,
    pub created_at: String,
    pub running: bool,
    /// Every stored event, in order (with `events`).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct Question {
    pub question: String,
    /// strict (default), sample or full.
    pub privacy: Option<String>,
    /// Another model at the same provider.
    pub model: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub question: i64,
}

#[derive(Deserialize)]
pub struct RowsQuery {
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

#[derive(Deserialize)]
pub struct UploadQuery {
    /// The file's name (multipart uploads carry it in the part).
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub struct UploadAnyQuery {
    pub name: Option<String>,
    /// The workspace; the caller's first one when absent.
    pub workspace: Option<String>,
}

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    pub after: i64,
}

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
        run_sql,
        list_conversations,
        create_conversation,
        get_conversation,
        ask,
        cancel,
        events,
        export,
        export_conversation
    ),
    components(schemas(
        ErrorBody,
        ConfigView,
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
        SqlRequest,
        SqlView,
        NewConversation,
        ConversationView,
        Question,
        Accepted
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
        .route("/api/workspaces/{ws}/sql", post(run_sql))
        .route("/api/workspaces/{ws}/conversations", get(list_conversations).post(create_conversation))
        .route("/api/conversations/{id}", get(get_conversation))
        .route("/api/conversations/{id}/questions", post(ask))
        .route("/api/conversations/{id}/cancel", post(cancel))
        .route("/api/conversations/{id}/events", get(events))
        .route("/api/conversations/{id}/questions/{q}/export/{format}", get(export))
        .route("/api/conversations/{id}/export/{format}", get(export_conversation))
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
        max_upload_bytes: st.cfg.max_upload_bytes,
    }))
}

#[utoipa::path(post, path = "/api/login", request_body = Login,
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(st): State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Json(l): Json<Login>,
) -> Result<Response, ApiError> {
    let ip = peer.ip();
    if let Some(wait) = st.login_blocked(&l.name, ip) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins: try again in {} minute(s)", wait.div_ceil(60)),
        ));
    }
    let (store, name, password) = (st.store.clone(), l.name.clone(), l.password);
    let user = tokio::task::spawn_blocking(move || store.check_password(&name, &password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    st.login_result(&l.name, ip, user.is_some());
    let Some(user) = user else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong user name or password"));
    };
    let token = st.store.issue_session(user.id, st.cfg.session_max).map_err(ApiError::internal)?;
    let secure = if st.cfg.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        st.cfg.session_max.as_secs()
    );
    let mut r = Json(TokenView { token, user: user.name }).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfoView {
    /// What to revoke it by (not the token).
    pub id: String,
    pub label: String,
    /// `session` (a login) or `api` (for scripts).
    pub kind: String,
    pub created_at: String,
    pub last_used_unix: Option<i64>,
    pub expires_unix: Option<i64>,
}

#[utoipa::path(get, path = "/api/tokens", responses((status = 200, body = [TokenInfoView])))]
async fn list_tokens(State(st): State<Arc<AppState>>, Caller(u): Caller) -> Res<Vec<TokenInfoView>> {
    let list = st.store.tokens(u.id).map_err(ApiError::internal)?;
    Ok(Json(
        list.into_iter()
            .map(|t| TokenInfoView {
                id: t.id,
                label: t.label,
                kind: t.kind,
                created_at: t.created_at,
                last_used_unix: t.last_used_unix,
                expires_unix: t.expires_unix,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", params(("id" = String, Path)),
    responses((status = 200), (status = 404, body = ErrorBody)))]
async fn revoke_token(State(st): State<Arc<AppState>>, Caller(u): Caller, Path(id): Path<String>) -> Res<Value> {
    if !st.store.revoke_token_id(u.id, &id).map_err(ApiError::internal)? {
        return Err(ApiError::not_found("no such token"));
    }
    Ok(Json(json!({"revoked": true})))
}

#[utoipa::path(post, path = "/api/logout", responses((status = 200)))]
async fn logout(State(st): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(t) = crate::auth::token_from(&headers) {
        let _ = st.store.revoke_token(&t);
    }
    let mut r = Json(json!({"ok": true})).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("quarry_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

#[utoipa::path(get, path = "/api/me", responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(Caller(u): Caller) -> Res<UserView> {
    Ok(Json(UserView { id: u.id, name: u.name, admin: u.admin }))
}

#[utoipa::path(post, path = "/api/users", request_body = NewUser,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody)))]
async fn create_user(State(st): State<Arc<AppState>>, Caller(u): Caller, Json(n): Json<NewUser>) -> Res<UserView> {
    if !u.admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "only an admin can add users"));
    }
    let made = st.store.create_user(&n.name, n.password.as_deref(), n.admin).map_err(|e| ApiError::bad(e.0))?;
    Ok(Json(UserView { id: made.id, name: made.name, admin: made.admin }))
}

#[utoipa::path(post, path = "/api/users/{name}/tokens", params(("name" = String, Path)),
    responses((status = 200, body = TokenView), (status = 403, body = ErrorBody)))]
async fn create_token(State(st): State<Arc<AppState>>, Caller(u): Caller, Path(name): Path<String>) -> Res<TokenView> {
    if !u.admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "only an admin can issue tokens"));
    }
    let Some(target) = st.store.user_by_name(&name).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found("no such user"));
    };
    let token = st.store.issue_token(target.id, "issued by admin").map_err(ApiError::internal)?;
    Ok(Json(TokenView { token, user: target.name }))
}

fn ws_view(w: quarry_store::Workspace) -> WorkspaceView {
    WorkspaceView { id: w.id, name: w.name, created_at: w.created_at }
}

#[utoipa::path(get, path = "/api/workspaces", responses((status = 200, body = [WorkspaceView])))]
async fn list_workspaces(State(st): State<Arc<AppState>>, Caller(u): Caller) -> Res<Vec<WorkspaceView>> {
    let mut list = st.store.workspaces(u.id).map_err(ApiError::internal)?;
    if list.is_empty() {
        list.push(st.store.create_workspace(u.id, "My workspace").map_err(ApiError::internal)?);
    }
    Ok(Json(list.into_iter().map(ws_view).collect()))
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
    Ok(Json(ws_view(st.store.create_workspace(u.id, name).map_err(ApiError::internal)?)))
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
    for w in st.store.workspaces(u.id).map_err(ApiError::internal)? {
        out.extend(st.store.datasets(&w.id).map_err(ApiError::internal)?.into_iter().map(ds_view));
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/datasets", params(("ws" = String, Path)),
    responses((status = 200, body = [DatasetView]), (status = 404, body = ErrorBody)))]
async fn list_workspace_datasets(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(ws): Path<String>,
) -> Res<Vec<DatasetView>> {
    let w = own_workspace(&st, &u, &ws)?;
    Ok(Json(st.store.datasets(&w.id).map_err(ApiError::internal)?.into_iter().map(ds_view).collect()))
}

/// Upload into the caller's workspace (`workspace=`, or their first one).
#[utoipa::path(post, path = "/api/datasets",
    params(("name" = Option<String>, Query, description = "The file's name (raw bodies)"), ("workspace" = Option<String>, Query)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = DatasetView), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 500, body = ErrorBody)))]
async fn upload_default(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<UploadAnyQuery>,
    headers: HeaderMap,
    body: Body,
) -> Res<DatasetView> {
    let ws = match q.workspace {
        Some(w) => w,
        None => match st.store.workspaces(caller.0.id).map_err(ApiError::internal)?.into_iter().next() {
            Some(w) => w.id,
            None => st.store.create_workspace(caller.0.id, "My workspace").map_err(ApiError::internal)?.id,
        },
    };
    upload(State(st), caller, Path(ws), Query(UploadQuery { name: q.name }), headers, body).await
}

/// Set when the request that started a load goes away (the client hung up,
/// the server is stopping): the load's worker is then killed.
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Parse an uploaded file in an ingest worker; the names of its tables.
/// Errors name the file as `shown` (the uploaded name), never the server's
/// directories. Dropping the future stops the worker.
pub async fn ingest_file(
    st: &Arc<AppState>,
    ws: &str,
    path: &std::path::Path,
    shown: &str,
) -> Result<Vec<String>, ApiError> {
    let k = st.kernels(ws);
    let (path, shown) = (path.to_path_buf(), shown.to_string());
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _cancel = CancelOnDrop(flag.clone());
    let report = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(k.dir.join("data")).map_err(ApiError::internal)?;
        let cancelled = || flag.load(std::sync::atomic::Ordering::SeqCst);
        k.ingest.load_as(&path, &shown, &IngestOptions::default(), &Quiet, &cancelled).map_err(ApiError::from)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(report.tables.into_iter().map(|l| l.table.name).collect())
}

/// A file arriving under a temporary name; removed unless kept (an upload
/// cut off, refused or failed leaves nothing behind).
struct Incoming {
    path: std::path::PathBuf,
    kept: bool,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Content types a web page can send cross-site without asking (CORS
/// "simple" requests): a raw upload must not use them.
fn simple_content_type(ctype: &str) -> bool {
    ctype.is_empty() || ctype.starts_with("text/plain") || ctype.starts_with("application/x-www-form-urlencoded")
}

/// Append `chunk` to the incoming file, enforcing the upload limit.
async fn write_chunk(
    st: &AppState,
    file: &mut tokio::fs::File,
    size: &mut u64,
    chunk: &[u8],
    name: &str,
) -> Result<(), ApiError> {
    *size += chunk.len() as u64;
    if *size > st.cfg.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{name}: larger than the {} MiB upload limit", st.cfg.max_upload_bytes >> 20),
        ));
    }
    file.write_all(chunk).await.map_err(ApiError::internal)
}

fn cut_off(st: &AppState, name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("{name}: the upload stopped ({e}); files up to {} MiB are accepted", st.cfg.max_upload_bytes >> 20),
    )
}

/// A raw body (`application/octet-stream` or the file's own type), streamed.
async fn receive_raw(st: &AppState, body: Body, file: &mut tokio::fs::File, name: &str) -> Result<u64, ApiError> {
    let mut stream = body.into_data_stream();
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| cut_off(st, name, e))?;
        write_chunk(st, file, &mut size, &chunk, name).await?;
    }
    Ok(size)
}

/// The first file part of a `multipart/form-data` body (`curl -F file=@x.csv`),
/// streamed; its file name, unless the query gave one.
async fn receive_multipart(
    st: &AppState,
    ctype: &str,
    body: Body,
    file: &mut tokio::fs::File,
    name: Option<String>,
) -> Result<(String, u64), ApiError> {
    let boundary = multer::parse_boundary(ctype)
        .map_err(|e| ApiError::bad(format!("a multipart upload needs a boundary ({e})")))?;
    let mut parts = multer::Multipart::new(body.into_data_stream(), boundary);
    while let Some(mut part) = parts.next_field().await.map_err(|e| cut_off(st, "upload", e))? {
        let Some(part_name) = part.file_name().map(str::to_string).or_else(|| name.clone()) else { continue };
        let shown = crate::safe_name(name.as_deref().unwrap_or(&part_name));
        let mut size = 0;
        while let Some(chunk) = part.chunk().await.map_err(|e| cut_off(st, &shown, e))? {
            write_chunk(st, file, &mut size, &chunk, &shown).await?;
        }
        return Ok((name.unwrap_or(part_name), size));
    }
    Err(ApiError::bad("the multipart upload holds no file part (send it as -F file=@NAME)"))
}

/// The file, streamed to disk as it arrives (never held in memory), then
/// parsed in an ingest worker. The body is the file itself
/// (`Content-Type: application/octet-stream`, `?name=` required) or a
/// `multipart/form-data` form with one file part. Content types a web page
/// may send cross-site without asking (`text/plain`, form-encoded) are
/// refused.
#[utoipa::path(post, path = "/api/workspaces/{ws}/datasets",
    params(("ws" = String, Path), ("name" = Option<String>, Query, description = "The file's name (raw bodies)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = DatasetView), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 500, body = ErrorBody)))]
async fn upload(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(ws): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Res<DatasetView> {
    let w = own_workspace(&st, &u, &ws)?;
    // As sent: a multipart boundary is case-sensitive.
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_string();
    let lower = ctype.to_ascii_lowercase();
    let multipart = lower.starts_with("multipart/form-data");
    if !multipart && simple_content_type(&lower) && (headers.contains_key("origin") || !ctype.is_empty()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the file as application/octet-stream (curl --data-binary @FILE -H 'Content-Type: application/octet-stream') or as multipart/form-data (curl -F file=@FILE)",
        ));
    }
    if !multipart && q.name.is_none() {
        return Err(ApiError::bad("name the file: ?name=FILE"));
    }
    let dir = st.ws_dir(&w.id).join("uploads");
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    // Streamed to a temporary name, then renamed: the file keeps its own name
    // (so its tables do, and a changed file becomes a new version).
    let mut incoming = Incoming { path: dir.join(format!(".incoming-{}", quarry_store::random_id(6))), kept: false };
    let mut file = tokio::fs::File::create(&incoming.path).await.map_err(ApiError::internal)?;
    let (name, size) = if multipart {
        receive_multipart(&st, &ctype, body, &mut file, q.name).await?
    } else {
        let name = q.name.unwrap_or_default();
        let size = receive_raw(&st, body, &mut file, &crate::safe_name(&name)).await?;
        (name, size)
    };
    let name = crate::safe_name(&name);
    file.flush().await.map_err(ApiError::internal)?;
    drop(file);
    if size == 0 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{name}: the file is empty")));
    }
    let path = dir.join(&name);
    tokio::fs::rename(&incoming.path, &path).await.map_err(ApiError::internal)?;
    incoming.kept = true;
    let tables = ingest_file(&st, &w.id, &path, &name).await?;
    let d = st.store.add_dataset(&w.id, &name, size, &tables).map_err(ApiError::internal)?;
    Ok(Json(ds_view(d)))
}

fn catalog(st: &AppState, ws: &str) -> Result<Option<Catalog>, ApiError> {
    let data = st.ws_dir(ws).join("data");
    if !data.join("catalog.sqlite").exists() {
        return Ok(None);
    }
    Catalog::open(&data).map(Some).map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/tables", params(("ws" = String, Path)),
    responses((status = 200, body = [TableView]), (status = 404, body = ErrorBody)))]
async fn list_tables(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(ws): Path<String>,
) -> Res<Vec<TableView>> {
    let w = own_workspace(&st, &u, &ws)?;
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
    Caller(u): Caller,
    Path((ws, table)): Path<(String, String)>,
    Query(q): Query<RowsQuery>,
) -> Res<RowsView> {
    let w = own_workspace(&st, &u, &ws)?;
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
async fn run_sql(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(ws): Path<String>,
    Json(req): Json<SqlRequest>,
) -> Res<SqlView> {
    let w = own_workspace(&st, &u, &ws)?;
    if catalog(&st, &w.id)?.is_none() {
        return Err(ApiError::bad("no tables yet: upload a file first"));
    }
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
async fn list_conversations(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(ws): Path<String>,
) -> Res<Vec<ConversationView>> {
    let w = own_workspace(&st, &u, &ws)?;
    let list = st.store.conversations(&w.id).map_err(ApiError::internal)?;
    Ok(Json(list.into_iter().map(|c| conv_view(&st, c, false)).collect::<Result<_, _>>()?))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/conversations", params(("ws" = String, Path)),
    request_body = NewConversation, responses((status = 200, body = ConversationView)))]
async fn create_conversation(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(ws): Path<String>,
    Json(n): Json<NewConversation>,
) -> Res<ConversationView> {
    let w = own_workspace(&st, &u, &ws)?;
    let title = n.title.unwrap_or_default();
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad(format!("a conversation title has at most {MAX_TITLE_CHARS} characters")));
    }
    let c = st.store.create_conversation(&w.id, title.trim()).map_err(ApiError::internal)?;
    Ok(Json(conv_view(&st, c, false)?))
}

#[utoipa::path(get, path = "/api/conversations/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> Res<ConversationView> {
    let (c, _) = own_conversation(&st, &u, &id)?;
    Ok(Json(conv_view(&st, c, true)?))
}

#[utoipa::path(post, path = "/api/conversations/{id}/questions", params(("id" = String, Path)), request_body = Question,
    responses((status = 202, body = Accepted), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn ask(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(id): Path<String>,
    Json(q): Json<Question>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (c, ws) = own_conversation(&st, &u, &id)?;
    let question = run::start(&st, &u, c, ws, q)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { question })))
}

#[utoipa::path(post, path = "/api/conversations/{id}/cancel", params(("id" = String, Path)), responses((status = 200)))]
async fn cancel(State(st): State<Arc<AppState>>, Caller(u): Caller, Path(id): Path<String>) -> Res<Value> {
    let (c, _) = own_conversation(&st, &u, &id)?;
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
    Caller(u): Caller,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let (c, _) = own_conversation(&st, &u, &id)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(q.after);
    Ok(run::sse(&st, &c.id, after)?.into_response())
}

#[utoipa::path(get, path = "/api/conversations/{id}/questions/{q}/export/{format}",
    params(("id" = String, Path), ("q" = i64, Path),
        ("format" = String, Path, description = "csv, xlsx, json, html (a self-contained report) or ipynb (a Jupyter notebook)")),
    responses((status = 200, description = "the answer as a file"), (status = 404, body = ErrorBody)))]
async fn export(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path((id, q, format)): Path<(String, i64, String)>,
) -> Result<Response, ApiError> {
    tokio::task::spawn_blocking(move || export_answers(&st, &u, &id, Some(q), &format))
        .await
        .map_err(ApiError::internal)?
}

#[utoipa::path(get, path = "/api/conversations/{id}/export/{format}",
    params(("id" = String, Path),
        ("format" = String, Path, description = "html (a self-contained report), ipynb (a Jupyter notebook), json; csv and xlsx take the last answer's table")),
    responses((status = 200, description = "every answer of the conversation as one file"), (status = 404, body = ErrorBody)))]
async fn export_conversation(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path((id, format)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    tokio::task::spawn_blocking(move || export_answers(&st, &u, &id, None, &format))
        .await
        .map_err(ApiError::internal)?
}

/// The answers of one question (`q`) or of the whole conversation, rendered
/// by `quarry-report`, with the Parquet files of the data versions they read.
/// Blocking (SQLite reads, XLSX building): handlers run it in `spawn_blocking`.
fn export_answers(
    st: &AppState,
    u: &quarry_store::User,
    id: &str,
    q: Option<i64>,
    format: &str,
) -> Result<Response, ApiError> {
    let format = Format::parse(format).map_err(|e| ApiError::bad(e.to_string()))?;
    let (c, _) = own_conversation(st, u, id)?;
    let mut answers: Vec<(i64, Answer)> = Vec::new();
    for e in st.store.events(&c.id, 0).map_err(ApiError::internal)? {
        let Event::Answer { answer } = e.event else { continue };
        if q.is_some_and(|q| q != e.question) {
            continue;
        }
        let a: Answer = *answer;
        // A question answered twice (a retry after a restart) keeps its last answer.
        match answers.last_mut() {
            Some((n, last)) if *n == e.question => *last = a,
            _ => answers.push((e.question, a)),
        }
    }
    let answers: Vec<Answer> = answers.into_iter().map(|(_, a)| a).collect();
    if answers.is_empty() {
        return Err(ApiError::not_found(if q.is_some() { "no answer for that question" } else { "no answers yet" }));
    }
    // Notebooks name the data relative to the workspace (`data/tables/…`),
    // not the server's own directories.
    let ws_dir = st.ws_dir(&c.workspace);
    let sources = match catalog(st, &c.workspace)? {
        Some(cat) => Source::for_answers(&answers, |t, v| cat.entry(t, Some(v)).ok().map(|e| e.parquet))
            .into_iter()
            .map(|mut s| {
                let abs = std::path::absolute(&ws_dir).unwrap_or_else(|_| ws_dir.clone());
                if let Ok(rel) = s.parquet.strip_prefix(&abs) {
                    s.parquet = rel.to_path_buf();
                }
                s
            })
            .collect(),
        None => Vec::new(),
    };
    let title = if c.title.is_empty() { "Quarry conversation" } else { c.title.as_str() };
    let report = Report { title, answers: &answers, sources: &sources };
    let bytes = quarry_report::render(format, &report).map_err(|e| match e {
        ReportError::Xlsx(_) => ApiError::internal(e),
        _ => ApiError::not_found(&e.to_string()),
    })?;
    let file = match q {
        Some(q) => format!("quarry-{}-q{q}.{}", c.id, format.extension()),
        None => format!("quarry-{}.{}", c.id, format.extension()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        bytes,
    )
        .into_response())
}
