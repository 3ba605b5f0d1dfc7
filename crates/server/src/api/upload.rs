//! Uploads: a raw or multipart body streamed to a hidden file in the
//! workspace, checked, renamed into place and loaded by an ingest worker —
//! cut off uploads leave nothing behind.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures_util::StreamExt;
use quarry_ingest::Quiet;
use tokio::io::AsyncWriteExt;

use super::{ds_view, ApiError, DatasetView, ErrorBody, Res, UploadAnyQuery, UploadQuery};
use crate::auth::{access, Caller, Edit, Need, Ws};
use crate::AppState;

/// Upload into the caller's workspace (`workspace=`, or their first one).
#[utoipa::path(post, path = "/api/datasets",
    params(("name" = Option<String>, Query, description = "The file's name (raw bodies)"), ("workspace" = Option<String>, Query)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = DatasetView), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 500, body = ErrorBody)))]
pub(super) async fn upload_default(
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
    let a = access(&st, &caller.0, &ws, Need::Edit)?;
    receive(st, a, UploadQuery { name: q.name }, headers, body).await
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
    let (path, shown, opts) = (path.to_path_buf(), shown.to_string(), st.cfg.ingest.clone());
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _cancel = CancelOnDrop(flag.clone());
    let report = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(k.dir.join("data")).map_err(ApiError::internal)?;
        let cancelled = || flag.load(std::sync::atomic::Ordering::SeqCst);
        k.ingest.load_as(&path, &shown, &opts, None, &Quiet, &cancelled).map_err(ApiError::from)
    })
    .await
    .map_err(ApiError::internal)??;
    let changed: Vec<String> = report
        .tables
        .iter()
        .filter(|l| l.outcome == quarry_ingest::catalog::Outcome::NewVersion)
        .map(|l| l.table.name.clone())
        .collect();
    let new: Vec<String> = report
        .tables
        .iter()
        .filter(|l| l.outcome == quarry_ingest::catalog::Outcome::New)
        .map(|l| l.table.name.clone())
        .collect();
    let names: Vec<String> = report.tables.into_iter().map(|l| l.table.name).collect();
    if !changed.is_empty() || !new.is_empty() {
        let (st, ws) = (st.clone(), ws.to_string());
        tokio::spawn(async move { super::analyses::rerun_after_upload(&st, &ws, changed, new).await });
    }
    // Each new version's insights are computed now, in the background, so its card has them.
    for name in names.clone() {
        let (st, ws) = (st.clone(), ws.to_string());
        tokio::spawn(async move {
            if let Err(e) = super::insights::compute(&st, &ws, &name).await {
                tracing::warn!("insights of {name}: {}", e.message);
            }
        });
    }
    Ok(names)
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
pub(super) async fn upload(
    State(st): State<Arc<AppState>>,
    Ws(a, _): Ws<Edit>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Res<DatasetView> {
    receive(st, a, q, headers, body).await
}

async fn receive(
    st: Arc<AppState>,
    a: crate::auth::Access,
    q: UploadQuery,
    headers: HeaderMap,
    body: Body,
) -> Res<DatasetView> {
    let (w, u) = (a.ws, a.user);
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
    super::audit::record(&st, &w.id, &u, quarry_store::AuditAction::Upload, &name)?;
    Ok(Json(ds_view(d)))
}
