//! Who is calling, and what they may do where.
//!
//! The caller: the local user on loopback; otherwise the owner of a session
//! cookie (`quarry_token`) or bearer token — or, when the server trusts a
//! reverse proxy (`--trusted-proxy`), the user the proxy names in its
//! header, on requests from that proxy's address only.
//!
//! What they may do: each workspace route states the [`Need`] it has of the
//! caller's [`Role`] in the workspace it touches, by taking a [`Ws`]
//! extractor (`Ws<Edit>`), checked before the request's body is read. A
//! workspace the caller is not in answers 404, as if it did not exist; one
//! they are in but whose role falls short answers 403.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use quarry_store::{ConversationRow, Role, User, Workspace};

use crate::errors::ApiError;
use crate::AppState;

pub const COOKIE: &str = "quarry_token";

/// The caller, authenticated.
pub struct Caller(pub User);

/// The caller's token: `Authorization: Bearer …` or the session cookie.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_string());
        }
    }
    let cookies = headers.get_all(header::COOKIE);
    for c in cookies.iter().filter_map(|v| v.to_str().ok()) {
        for pair in c.split(';') {
            if let Some(t) = pair.trim().strip_prefix(&format!("{COOKIE}=")) {
                return Some(t.to_string());
            }
        }
    }
    None
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Caller, ApiError> {
        let user = if !state.cfg.require_login {
            state.local.clone()
        } else if let Some(u) = proxy_user(parts, state)? {
            u
        } else {
            let Some(token) = token_from(&parts.headers) else {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "log in first (POST /api/login)"));
            };
            match state.store.user_for_token(&token, state.cfg.session_idle).map_err(ApiError::internal)? {
                Some(u) => u,
                None => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "the session has ended: log in again")),
            }
        };
        if !state.allow(user.id, "request", state.cfg.requests_per_minute) {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many requests: wait a minute"));
        }
        Ok(Caller(user))
    }
}

/// The caller, if an admin (403 otherwise), checked before the body is read.
pub struct Admin(pub User);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Admin, ApiError> {
        let Caller(u) = Caller::from_request_parts(parts, state).await?;
        if !u.admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "only an admin can do this: an admin adds users and issues their tokens",
            ));
        }
        Ok(Admin(u))
    }
}

/// The user a trusted reverse proxy names, on a request from its address;
/// `None` for any other request (the header is then ignored). A name seen for
/// the first time becomes a user without a password (the proxy vouches).
fn proxy_user(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else { return Ok(None) };
    if !state.cfg.trusted_proxies.contains(&peer.0.ip()) {
        return Ok(None);
    }
    let Some(name) = parts.headers.get(state.cfg.trusted_user_header.as_str()) else { return Ok(None) };
    let name = name.to_str().map_err(|_| ApiError::bad("the proxy's user header is not text"))?.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if let Some(u) = state.store.user_by_name(name).map_err(ApiError::internal)? {
        return Ok(Some(u));
    }
    let u = state.store.create_user(name, None, false).map_err(|e| ApiError::bad(e.to_string()))?;
    tracing::info!("user '{}' created at first sight from the trusted proxy {}", u.name, peer.0.ip());
    Ok(Some(u))
}

/// What a route needs of the caller's role in its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any member: read tables, conversations, analyses, reports.
    Read,
    /// The SQL console: editors, and viewers when the owner allows it.
    Console,
    /// Change things: upload, ask, save, define.
    Edit,
    /// The owner's: members, share links, settings, connections, the audit trail.
    Own,
}

impl Need {
    pub fn allows(self, role: Role, viewers_sql: bool) -> bool {
        match self {
            Need::Read => true,
            Need::Console => role >= Role::Editor || viewers_sql,
            Need::Edit => role >= Role::Editor,
            Need::Own => role == Role::Owner,
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Need::Read => "",
            Need::Console => "the SQL console is for editors here: the workspace's owner can open it to viewers",
            Need::Edit => "viewers read this workspace but cannot change it: ask its owner to make you an editor",
            Need::Own => "only the workspace's owner can do this",
        }
    }
}

/// The caller in a workspace: who, which workspace, in what role — and the
/// conversation, for routes under `/api/conversations/{id}`.
pub struct Access {
    pub user: User,
    pub ws: Workspace,
    pub role: Role,
    pub conversation: Option<ConversationRow>,
}

impl Access {
    /// The conversation the route names (taken: asked once per request).
    pub fn conversation(&mut self) -> Result<ConversationRow, ApiError> {
        self.conversation.take().ok_or_else(|| ApiError::not_found("no such conversation"))
    }
}

/// The caller's access to workspace `id`, if it meets `need`.
pub fn access(state: &AppState, user: &User, id: &str, need: Need) -> Result<Access, ApiError> {
    let ws = state.store.workspace(id).map_err(ApiError::internal)?;
    let role = match &ws {
        Some(w) => state.store.role(w, user.id).map_err(ApiError::internal)?,
        None => None,
    };
    let (Some(ws), Some(role)) = (ws, role) else { return Err(ApiError::not_found("no such workspace")) };
    let viewers_sql = need == Need::Console && state.store.viewers_sql(&ws.id).map_err(ApiError::internal)?;
    if !need.allows(role, viewers_sql) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, need.refusal()));
    }
    Ok(Access { user: user.clone(), ws, role, conversation: None })
}

/// The caller's access to conversation `id` and its workspace, if it meets `need`.
pub fn conversation_access(state: &AppState, user: &User, id: &str, need: Need) -> Result<Access, ApiError> {
    let Some(c) = state.store.conversation(id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found("no such conversation"));
    };
    let mut a = access(state, user, &c.workspace, need).map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::not_found("no such conversation")
        } else {
            e
        }
    })?;
    a.conversation = Some(c);
    Ok(a)
}

/// A route's [`Need`], as a type: `Ws<Edit>`.
pub trait Needs: Send + Sync {
    const NEED: Need;
}

macro_rules! needs {
    ($($name:ident => $need:expr),*) => {$(
        #[doc = concat!("[`Need::", stringify!($name), "`] as a type.")]
        pub struct $name;
        impl Needs for $name {
            const NEED: Need = $need;
        }
    )*};
}
needs!(Read => Need::Read, Console => Need::Console, Edit => Need::Edit, Own => Need::Own);

/// The caller's [`Access`] to the workspace the path names — `{ws}`, or the
/// conversation `{id}` — checked against `N` before the body is read.
pub struct Ws<N: Needs>(pub Access, pub PhantomData<N>);

impl<N: Needs> FromRequestParts<Arc<AppState>> for Ws<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Ws<N>, ApiError> {
        let Caller(user) = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad(format!("the path could not be read: {e}")))?;
        let find = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
        let a = match (find("ws"), find("id")) {
            (Some(ws), _) => access(state, &user, &ws, N::NEED)?,
            (None, Some(c)) => conversation_access(state, &user, &c, N::NEED)?,
            (None, None) => return Err(ApiError::internal("a workspace route names no workspace")),
        };
        Ok(Ws(a, PhantomData))
    }
}
