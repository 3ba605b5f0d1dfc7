//! Signing in and out, users and their tokens.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, ErrorBody, Login, NewUser, Res, TokenInfoView, TokenView, UserView};
use crate::auth::{Admin, Caller, COOKIE};
use crate::AppState;

#[utoipa::path(post, path = "/api/login", request_body = Login,
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn login(
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

#[utoipa::path(get, path = "/api/tokens", responses((status = 200, body = [TokenInfoView])))]
pub(super) async fn list_tokens(State(st): State<Arc<AppState>>, Caller(u): Caller) -> Res<Vec<TokenInfoView>> {
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
pub(super) async fn revoke_token(
    State(st): State<Arc<AppState>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> Res<Value> {
    if !st.store.revoke_token_id(u.id, &id).map_err(ApiError::internal)? {
        return Err(ApiError::not_found("no such token"));
    }
    Ok(Json(json!({"revoked": true})))
}

#[utoipa::path(post, path = "/api/logout", responses((status = 200)))]
pub(super) async fn logout(State(st): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
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
pub(super) async fn me(Caller(u): Caller) -> Res<UserView> {
    Ok(Json(UserView { id: u.id, name: u.name, admin: u.admin }))
}

#[utoipa::path(post, path = "/api/users", request_body = NewUser,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody)))]
pub(super) async fn create_user(
    State(st): State<Arc<AppState>>,
    Admin(_): Admin,
    Json(n): Json<NewUser>,
) -> Res<UserView> {
    let made = st.store.create_user(&n.name, n.password.as_deref(), n.admin).map_err(|e| ApiError::bad(e.0))?;
    Ok(Json(UserView { id: made.id, name: made.name, admin: made.admin }))
}

#[utoipa::path(post, path = "/api/users/{name}/tokens", params(("name" = String, Path)),
    responses((status = 200, body = TokenView), (status = 403, body = ErrorBody)))]
pub(super) async fn create_token(
    State(st): State<Arc<AppState>>,
    Admin(_): Admin,
    Path(name): Path<String>,
) -> Res<TokenView> {
    let Some(target) = st.store.user_by_name(&name).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found("no such user"));
    };
    let token = st.store.issue_token(target.id, "issued by admin").map_err(ApiError::internal)?;
    Ok(Json(TokenView { token, user: target.name }))
}
