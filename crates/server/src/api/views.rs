//! The API's request and response bodies, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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
    /// Export formats, in menu order.
    pub export_formats: Vec<ExportFormatView>,
    /// The kinds of workspace definition, with what each is.
    pub definition_kinds: Vec<DefinitionKindView>,
    /// Models offered by a model server found running on this machine.
    pub local_models: Vec<String>,
    /// The kinds of insight finding, with their titles, in rank order.
    pub insight_kinds: Vec<InsightKindView>,
    /// The kinds of database a connection may be, with how a URL is written.
    pub source_kinds: Vec<SourceKindView>,
    /// Most rows a snapshot holds unless asked for more.
    pub snapshot_max_rows: usize,
    /// Where this server's SQL runs, for people ("DataFusion on this machine").
    pub engine: String,
}

/// A kind of insight, as the page titles it.
#[derive(Serialize, ToSchema)]
pub struct InsightKindView {
    pub kind: String,
    pub label: String,
}

/// A kind of live database, as the page's connection form offers it.
#[derive(Serialize, ToSchema)]
pub struct SourceKindView {
    pub kind: String,
    pub example: String,
}

/// A kind of definition, as the page's definitions form offers it.
#[derive(Serialize, ToSchema)]
pub struct DefinitionKindView {
    pub kind: String,
    pub help: String,
}

/// One export format, as the page offers it.
#[derive(Serialize, ToSchema)]
pub struct ExportFormatView {
    /// The name in export URLs (`csv`, `xlsx`, `html`, `ipynb`, `json`).
    pub format: String,
    pub label: String,
    /// Offered only for answers with a table.
    pub needs_table: bool,
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
    /// The caller's role here: `owner`, `editor` or `viewer`.
    pub role: String,
    /// Whether viewers may use the SQL console.
    pub viewers_sql: bool,
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
    /// Which table of its sheet this is, when the sheet holds several.
    pub part: Option<String>,
    /// Where it sits in its file (`range`), its header row (`header_row`,
    /// none without one) and how that was decided (`header`: auto, none or a row).
    #[schema(value_type = Option<Object>)]
    pub layout: Option<Value>,
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

pub use crate::run::Question;

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
