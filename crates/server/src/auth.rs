//! Who is calling: the local user on loopback; otherwise the owner of a
//! session cookie (`quarry_token`) or bearer token. Ownership checks answer
//! 404 for anything not the caller's, so nothing reveals another user's data.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use quarry_store::{User, Workspace};

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

/// The workspace, if the caller owns it (404 otherwise).
pub fn own_workspace(state: &AppState, user: &User, id: &str) -> Result<Workspace, ApiError> {
    match state.store.workspace(id).map_err(ApiError::internal)? {
        Some(w) if w.owner == user.id => Ok(w),
        _ => Err(ApiError::not_found("no such workspace")),
    }
}

/// The conversation and its workspace, if the caller owns them.
pub fn own_conversation(
    state: &AppState,
    user: &User,
    id: &str,
) -> Result<(quarry_store::ConversationRow, Workspace), ApiError> {
    let Some(c) = state.store.conversation(id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found("no such conversation"));
    };
    let ws = own_workspace(state, user, &c.workspace).map_err(|_| ApiError::not_found("no such conversation"))?;
    Ok((c, ws))
}
