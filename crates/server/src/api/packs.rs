//! Template packs over HTTP: the shipped packs, a table's binding (the saved
//! one, or a proposal that is only shown until the person confirms it), and
//! confirming it — which saves the binding and creates and runs the pack's
//! analyses. What a pack is lives in `quarry_agent::packs`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use quarry_agent::analyses;
use quarry_agent::packs::bind::{self, Binding};
use quarry_agent::packs::Pack;
use serde_json::{json, Value};

use super::{catalog, ApiError, Res};
use crate::auth::Caller;
use crate::auth::{Edit, Read, Ws};
use crate::AppState;

#[utoipa::path(get, path = "/api/packs", responses((status = 200, description = "the shipped packs with their roles and analyses", body = Vec<Object>)))]
pub(super) async fn list(Caller(_u): Caller) -> Res<Vec<Value>> {
    Ok(Json(Pack::builtin().into_iter().map(|p| serde_json::to_value(p).unwrap_or_default()).collect()))
}

fn pack(name: &str) -> Result<Pack, ApiError> {
    Pack::builtin().into_iter().find(|p| p.name == name).ok_or_else(|| ApiError::not_found("no such pack"))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/tables/{table}/packs/{pack}",
    params(("ws" = String, Path), ("table" = String, Path), ("pack" = String, Path)),
    responses((status = 200, description = "the binding (confirmed, or proposed) and each role's candidate columns", body = Object),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn binding(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Read>,
    Path((_, table, name)): Path<(String, String, String)>,
) -> Res<Value> {
    let w = a.ws;
    let p = pack(&name)?;
    let Some(c) = catalog(&st, &w.id)? else { return Err(ApiError::not_found("no such table")) };
    let entry = c.entry(&table, None).map_err(|_| ApiError::not_found("no such table"))?;
    drop(c);
    let data = st.ws_data(&w.id);
    let proposals = bind::propose(&p, &entry);
    let (b, confirmed) = match bind::load(&data, &p.name, &table) {
        Some(b) => (b, true),
        None => {
            let (k, limits, pk, e) = (st.kernels(&w.id), st.cfg.limits.clone(), p.clone(), entry.clone());
            let mut b = Binding::from_proposal(&p, &table, &proposals);
            let b = tokio::task::spawn_blocking(move || {
                b.refine_keys(&pk, &e, k.sql.as_ref(), &limits);
                b
            })
            .await
            .map_err(ApiError::internal)?;
            (b, false)
        }
    };
    Ok(Json(json!({"pack": p, "binding": b, "confirmed": confirmed, "roles": proposals})))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/tables/{table}/packs/{pack}",
    params(("ws" = String, Path), ("table" = String, Path), ("pack" = String, Path)),
    request_body(content = Object, description = "{\"roles\": {\"tested\": [\"col\", …], …}, \"split\": {\"role\": \"age_group\", \"groups\": […]} or null}: the binding the person confirms"),
    responses((status = 200, description = "the analyses created and their first runs", body = Object), (status = 400, body = super::ErrorBody)))]
pub(super) async fn confirm(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Path((_, table, name)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Res<Value> {
    let w = a.ws;
    let p = pack(&name)?;
    let roles = serde_json::from_value(body["roles"].clone()).map_err(|e| ApiError::bad(format!("roles: {e}")))?;
    let split = serde_json::from_value(body["split"].clone()).map_err(|e| ApiError::bad(format!("split: {e}")))?;
    let b = Binding { pack: p.name.clone(), table: table.clone(), roles, split };
    let Some(c) = catalog(&st, &w.id)? else { return Err(ApiError::not_found("no such table")) };
    let entries = c.tables().map_err(ApiError::internal)?;
    drop(c);
    let entry =
        entries.iter().find(|e| e.name == table).cloned().ok_or_else(|| ApiError::not_found("no such table"))?;
    b.check(&p, &entry).map_err(ApiError::bad)?;
    let data = st.ws_data(&w.id);
    bind::save(&data, &b).map_err(ApiError::internal)?;
    let (list, skipped) = b.analyses(&p, &entry);
    let k = st.analysis_kernels(&w.id);
    let runs = tokio::task::spawn_blocking(move || {
        list.iter()
            .map(|a| {
                analyses::store::save(&data, a)?;
                let r = analyses::run_and_keep(&data, a, Vec::new(), k.get(), &entries, "pack bound")?;
                Ok(json!({"analysis": a.name, "ok": r.ok, "narrative": r.narrative}))
            })
            .collect::<Result<Vec<Value>, String>>()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(json!({"runs": runs, "skipped": skipped})))
}

/// The demo workspace's first screen: each demo table that the malaria pack's
/// proposal fully binds (Quarry's own generated data, whose columns it knows)
/// gets the pack bound and run, shown as bound and editable in the page.
pub(crate) async fn seed_demo(st: &Arc<AppState>, ws: &str) {
    let Some(p) = Pack::builtin().into_iter().find(|p| p.name == "malaria-routine") else { return };
    let Ok(Some(c)) = catalog(st, ws) else { return };
    let Ok(entries) = c.tables() else { return };
    drop(c);
    let (k, data) = (st.analysis_kernels(ws), st.ws_data(ws));
    let _ = tokio::task::spawn_blocking(move || {
        for entry in &entries {
            let mut b = Binding::from_proposal(&p, &entry.name, &bind::propose(&p, entry));
            if p.roles.iter().any(|r| !r.optional && !b.roles.contains_key(&r.name)) {
                continue;
            }
            b.refine_keys(&p, entry, k.get().sql, k.get().limits);
            if bind::save(&data, &b).is_err() {
                continue;
            }
            for a in b.analyses(&p, entry).0 {
                if analyses::store::save(&data, &a).is_ok() {
                    let _ = analyses::run_and_keep(&data, &a, Vec::new(), k.get(), &entries, "demo");
                }
            }
        }
    })
    .await;
}
