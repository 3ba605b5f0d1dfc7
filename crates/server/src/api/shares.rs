//! Share links over HTTP. The owner makes a link to one conversation, one
//! answer or one saved analysis's latest result, lists and revokes them.
//! Whoever holds the link opens it without an account: the page at
//! `/shared#TOKEN` reads the token from the URL's fragment — which browsers
//! never send, so no server or proxy log can hold it — and sends it in the
//! `X-Quarry-Share` header to `/api/shared`, the only routes a token opens.
//! They show the object as the workspace's members see it (the stored
//! answers: what the privacy mode let through), without the code when the
//! owner unticked it, and export it (report, PDF, CSV, XLSX, JSON).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use quarry_agent::analyses::store as analyses_store;
use quarry_agent::Answer;
use quarry_report::Format;
use quarry_store::{AuditAction, NewShare, Share, ShareKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{answers_of, audit, export_answers, ApiError, ExportFormatView, Res};
use crate::auth::{Own, Ws};
use crate::AppState;

/// The header a share link's token travels in.
pub const HEADER: &str = "x-quarry-share";

/// The longest a link may open for.
pub const MAX_DAYS: f64 = 3650.0;

/// What to share. `conversation` needs `conversation`; `answer` also
/// `question`; `analysis` needs `analysis` (its name).
#[derive(Deserialize, ToSchema)]
pub struct NewShareRequest {
    pub kind: String,
    #[serde(default)]
    pub conversation: Option<String>,
    #[serde(default)]
    pub question: Option<i64>,
    #[serde(default)]
    pub analysis: Option<String>,
    /// Show the code behind the answers (default true).
    #[serde(default = "yes")]
    pub show_code: bool,
    /// Days the link opens for; none: until revoked.
    #[serde(default)]
    pub expires_days: Option<f64>,
}

fn yes() -> bool {
    true
}

/// A link as listed (never its token).
#[derive(Serialize, ToSchema)]
pub struct ShareView {
    pub id: String,
    pub kind: String,
    /// The conversation's id or the analysis's name.
    pub target: String,
    pub question: Option<i64>,
    pub show_code: bool,
    pub created_by: String,
    pub created_at: String,
    pub expires_unix: Option<i64>,
    pub revoked: bool,
    /// Opens now: neither revoked nor expired.
    pub open: bool,
}

/// A new link: its token is shown this once.
#[derive(Serialize, ToSchema)]
pub struct ShareCreated {
    pub share: ShareView,
    pub token: String,
    /// The address to give people (`/shared#TOKEN`, under `--public-url` when set).
    pub link: String,
}

/// What a link shows.
#[derive(Serialize, ToSchema)]
pub struct SharedView {
    pub kind: String,
    pub title: String,
    pub show_code: bool,
    pub expires_unix: Option<i64>,
    /// The answers, as the page renders them.
    #[schema(value_type = Vec<Object>)]
    pub answers: Vec<Answer>,
    /// What the link's object exports as.
    pub export_formats: Vec<ExportFormatView>,
}

fn share_view(s: Share) -> ShareView {
    ShareView {
        open: s.is_open(),
        id: s.id,
        kind: s.kind.as_str().into(),
        target: s.target,
        question: s.question,
        show_code: s.show_code,
        created_by: s.created_by,
        created_at: s.created_at,
        expires_unix: s.expires_unix,
        revoked: s.revoked,
    }
}

/// The object `req` names in workspace `ws`, checked to exist, as (kind, target, question).
fn target(st: &AppState, ws: &str, req: &NewShareRequest) -> Result<(ShareKind, String, Option<i64>), ApiError> {
    let kind = ShareKind::parse(&req.kind).ok_or_else(|| {
        let kinds: Vec<&str> = ShareKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::bad(format!("'{}' is not something a link shares: {}", req.kind, kinds.join(", ")))
    })?;
    let conversation = || -> Result<String, ApiError> {
        let id = req.conversation.as_deref().ok_or_else(|| ApiError::bad("name the conversation to share"))?;
        match st.store.conversation(id).map_err(ApiError::internal)? {
            Some(c) if c.workspace == ws => Ok(c.id),
            _ => Err(ApiError::not_found("no such conversation")),
        }
    };
    match kind {
        ShareKind::Conversation => Ok((kind, conversation()?, None)),
        ShareKind::Answer => {
            let c = conversation()?;
            let q = req.question.ok_or_else(|| ApiError::bad("name the question whose answer to share"))?;
            answers_of(st, &c, Some(q))?;
            Ok((kind, c, Some(q)))
        }
        ShareKind::Analysis => {
            let name = req.analysis.as_deref().ok_or_else(|| ApiError::bad("name the analysis to share"))?;
            let data = st.ws_data(ws);
            analyses_store::load(&data, name).map_err(|e| ApiError::not_found(&e))?;
            if analyses_store::last_run(&data, name).map_err(ApiError::internal)?.is_none() {
                return Err(ApiError::bad(format!("the analysis '{name}' has not run yet: run it, then share it")));
            }
            Ok((kind, name.to_string(), None))
        }
    }
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/shares", params(("ws" = String, Path)), request_body = NewShareRequest,
    responses((status = 200, body = ShareCreated), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn create(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Json(req): Json<NewShareRequest>,
) -> Res<ShareCreated> {
    let (kind, target, question) = target(&st, &a.ws.id, &req)?;
    let expires_in = match req.expires_days {
        Some(d) if !(d > 0.0 && d <= MAX_DAYS) => {
            return Err(ApiError::bad(format!("a link opens for more than 0 and at most {MAX_DAYS} days")))
        }
        Some(d) => Some(Duration::from_secs_f64(d * 86_400.0)),
        None => None,
    };
    let new = NewShare { kind, target: &target, question, show_code: req.show_code, expires_in };
    let (share, token) = st.store.create_share(&a.ws.id, &a.user, &new).map_err(ApiError::internal)?;
    let what = match question {
        Some(q) => format!("{} {target} question {q} (link {})", kind.as_str(), share.id),
        None => format!("{} {target} (link {})", kind.as_str(), share.id),
    };
    audit::record(&st, &a.ws.id, &a.user, AuditAction::Share, &what)?;
    let base = st.cfg.public_url.clone().unwrap_or_default();
    Ok(Json(ShareCreated { link: format!("{base}/shared#{token}"), token, share: share_view(share) }))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/shares", params(("ws" = String, Path)),
    responses((status = 200, body = [ShareView]), (status = 403, body = super::ErrorBody)))]
pub(super) async fn list(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Own>) -> Res<Vec<ShareView>> {
    let list = st.store.shares(&a.ws.id).map_err(ApiError::internal)?;
    Ok(Json(list.into_iter().map(share_view).collect()))
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/shares/{share}", params(("ws" = String, Path), ("share" = String, Path)),
    responses((status = 200, body = ShareView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn revoke(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Path((_, id)): Path<(String, String)>,
) -> Res<ShareView> {
    if !st.store.revoke_share(&a.ws.id, &id).map_err(ApiError::internal)? {
        return Err(ApiError::not_found("no such link"));
    }
    audit::record(&st, &a.ws.id, &a.user, AuditAction::Unshare, &id)?;
    let s = st
        .store
        .share(&a.ws.id, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no such link"))?;
    Ok(Json(share_view(s)))
}

/// The open link whose token the request carries in [`HEADER`].
pub struct Shared(pub Share);

impl FromRequestParts<Arc<AppState>> for Shared {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Shared, ApiError> {
        let gone = || ApiError::not_found("this link opens nothing: it was revoked, it expired, or it is mistyped");
        let token = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()).map(str::trim).ok_or_else(gone)?;
        let share = st.store.share_for_token(token).map_err(ApiError::internal)?.ok_or_else(gone)?;
        // Each link has its own request budget (a link's holders are not users).
        let key = i64::from_str_radix(share.id.get(..15).unwrap_or("0"), 16).map_or(-1, |k| -k - 1);
        if !st.allow(key, "shared", st.cfg.requests_per_minute) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests through this link: wait a minute",
            ));
        }
        Ok(Shared(share))
    }
}

/// The link's answers and title, as members see them, less the code when the link hides it.
fn shared_answers(st: &AppState, s: &Share) -> Result<(String, Vec<Answer>), ApiError> {
    let (title, mut answers) = match s.kind {
        ShareKind::Conversation | ShareKind::Answer => {
            let c = st
                .store
                .conversation(&s.target)
                .map_err(ApiError::internal)?
                .filter(|c| c.workspace == s.workspace)
                .ok_or_else(|| ApiError::not_found("the shared conversation was removed"))?;
            let answers = match answers_of(st, &c.id, s.question) {
                Err(e) if e.status == StatusCode::NOT_FOUND && s.kind == ShareKind::Conversation => Vec::new(),
                r => r?,
            };
            let title = match (s.kind, answers.first()) {
                (ShareKind::Answer, Some(a)) => a.question.clone(),
                _ => c.title,
            };
            (title, answers)
        }
        ShareKind::Analysis => {
            let data = st.ws_data(&s.workspace);
            let a = analyses_store::load(&data, &s.target).map_err(|e| ApiError::not_found(&e))?;
            let run = analyses_store::last_run(&data, &s.target)
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found("the shared analysis has no run"))?;
            (format!("{} — {}", a.name, a.question), vec![run.as_answer(&a)])
        }
    };
    if !s.show_code {
        for a in &mut answers {
            a.code.clear();
            a.steps.clear();
            a.template.clear();
        }
    }
    Ok((title, answers))
}

/// The formats a link's object exports as: a notebook is code, so only with it.
fn formats(s: &Share) -> impl Iterator<Item = Format> + '_ {
    Format::ALL.into_iter().filter(|f| s.show_code || *f != Format::Ipynb)
}

#[utoipa::path(get, path = "/api/shared",
    params(("x-quarry-share" = String, Header, description = "the link's token")),
    responses((status = 200, body = SharedView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn open(State(st): State<Arc<AppState>>, Shared(s): Shared) -> Res<SharedView> {
    let (title, answers) = shared_answers(&st, &s)?;
    let export_formats = formats(&s)
        .map(|f| ExportFormatView {
            format: f.extension().into(),
            label: f.label().into(),
            needs_table: f.needs_table(),
        })
        .collect();
    Ok(Json(SharedView {
        kind: s.kind.as_str().into(),
        title,
        show_code: s.show_code,
        expires_unix: s.expires_unix,
        answers,
        export_formats,
    }))
}

#[utoipa::path(get, path = "/api/shared/export/{format}",
    params(("format" = String, Path), ("x-quarry-share" = String, Header, description = "the link's token")),
    responses((status = 200, description = "the shared object as a file"), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn export(
    State(st): State<Arc<AppState>>,
    Shared(s): Shared,
    Path(format): Path<String>,
) -> Result<Response, ApiError> {
    let f = Format::parse(&format).map_err(|e| ApiError::bad(e.to_string()))?;
    if !formats(&s).any(|x| x == f) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this link does not show code, so it exports no notebook"));
    }
    tokio::task::spawn_blocking(move || {
        let (title, answers) = shared_answers(&st, &s)?;
        if answers.is_empty() {
            return Err(ApiError::not_found("no answers yet"));
        }
        Ok(export_answers(&st, &s.workspace, &title, &answers, &format, &format!("quarry-shared-{}", s.id))?.1)
    })
    .await
    .map_err(ApiError::internal)?
}
