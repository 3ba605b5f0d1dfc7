//! A workspace's members and their roles, over HTTP: listed to every
//! member; added (existing users, by name), changed and removed by the
//! owner, who also decides whether viewers may use the SQL console. What
//! each role may do is [`crate::auth::Need`]'s.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_store::{AuditAction, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{audit, ApiError, Res};
use crate::auth::{Own, Read, Ws};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub name: String,
    /// `owner`, `editor` or `viewer`.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct RoleView {
    pub role: String,
    pub help: String,
}

#[derive(Serialize, ToSchema)]
pub struct MembersView {
    pub members: Vec<MemberView>,
    /// The roles a member may be given, with what each allows.
    pub roles: Vec<RoleView>,
    /// The caller's own role here.
    pub you: String,
    /// Whether viewers may use the SQL console.
    pub viewers_sql: bool,
}

/// Add a user by name, or change their role.
#[derive(Deserialize, ToSchema)]
pub struct SetMember {
    pub name: String,
    /// `editor` or `viewer`.
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Settings {
    /// Let viewers use the SQL console (read-only queries over the tables).
    pub viewers_sql: bool,
}

fn view(st: &AppState, a: &crate::auth::Access) -> Res<MembersView> {
    let members = st.store.members(&a.ws).map_err(ApiError::internal)?;
    Ok(Json(MembersView {
        members: members.into_iter().map(|m| MemberView { name: m.name, role: m.role.as_str().into() }).collect(),
        roles: Role::ALL.iter().map(|r| RoleView { role: r.as_str().into(), help: r.describe().into() }).collect(),
        you: a.role.as_str().into(),
        viewers_sql: st.store.viewers_sql(&a.ws.id).map_err(ApiError::internal)?,
    }))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/members", params(("ws" = String, Path)),
    responses((status = 200, body = MembersView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn list(State(st): State<Arc<AppState>>, Ws(a, _): Ws<Read>) -> Res<MembersView> {
    view(&st, &a)
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/members", params(("ws" = String, Path)), request_body = SetMember,
    responses((status = 200, body = MembersView), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn set(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Json(req): Json<SetMember>,
) -> Res<MembersView> {
    let role = Role::parse(&req.role)
        .filter(|r| *r != Role::Owner)
        .ok_or_else(|| ApiError::bad(format!("'{}' is not a role a member can have: editor or viewer", req.role)))?;
    let name = req.name.trim();
    let Some(user) = st.store.user_by_name(name).map_err(ApiError::internal)? else {
        return Err(ApiError::bad(format!("no user is named '{name}': an admin creates users (quarry user add NAME)")));
    };
    st.store.set_member(&a.ws, user.id, role).map_err(|e| ApiError::bad(e.to_string()))?;
    audit::record(&st, &a.ws.id, &a.user, AuditAction::Member, &format!("{}: {}", user.name, role.as_str()))?;
    view(&st, &a)
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/members/{name}", params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = MembersView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn remove(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Path((_, name)): Path<(String, String)>,
) -> Res<MembersView> {
    let user = st.store.user_by_name(&name).map_err(ApiError::internal)?;
    let removed = match &user {
        Some(u) => st.store.remove_member(&a.ws, u.id).map_err(ApiError::internal)?,
        None => false,
    };
    if !removed {
        return Err(ApiError::not_found(&format!("'{name}' is not a member of this workspace")));
    }
    audit::record(&st, &a.ws.id, &a.user, AuditAction::RemoveMember, &name)?;
    view(&st, &a)
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/settings", params(("ws" = String, Path)), request_body = Settings,
    responses((status = 200, body = MembersView), (status = 403, body = super::ErrorBody)))]
pub(super) async fn settings(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Own>,
    Json(req): Json<Settings>,
) -> Res<MembersView> {
    st.store.set_viewers_sql(&a.ws.id, req.viewers_sql).map_err(ApiError::internal)?;
    audit::record(&st, &a.ws.id, &a.user, AuditAction::Settings, &format!("viewers_sql: {}", req.viewers_sql))?;
    view(&st, &a)
}
