//! # quarry-server: `quarry serve`
//!
//! Owns HTTP: a JSON API under `/api/` (described by the OpenAPI document
//! this crate generates from its handlers, served at `/api/openapi.json`),
//! server-sent events for the analyst's event stream, and the web page, whose
//! assets are embedded in the binary ([`web`]).
//!
//! Where work happens: uploads stream to disk and are parsed in ingest
//! workers; previews and the SQL console run in the workspace's SQL workers;
//! questions run the [`quarry_agent::Analyst`] in a task whose every event is
//! appended to the [`quarry_store::Store`] before it is broadcast to the page,
//! so a reload or a restart replays the conversation from the store. Nothing
//! generated runs in this process: code goes to sandboxed workers.
//!
//! Users: bound to loopback, one local user and no login; bound elsewhere,
//! every call needs a session cookie or bearer token, and every workspace,
//! dataset, conversation and export is visible to its owner only.

pub mod api;
pub mod auth;
pub mod run;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_engine::worker::SqlWorkers;
use quarry_ingest::worker::IngestWorkers;
use quarry_llm::{CancellationToken, ChatModel, LlmConfig};
use quarry_sandbox::python::PythonKernels;
use quarry_sandbox::{Launcher, Limits};
use quarry_store::{Store, StoredEvent, User};
use tokio::sync::broadcast;

/// Everything `quarry serve` is configured with. One documented struct.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `quarry.sqlite` and `workspaces/<id>/` (uploads, catalog).
    pub data: PathBuf,
    pub bind: SocketAddr,
    /// The model, or why none is configured (shown on the page).
    pub llm: Result<LlmConfig, String>,
    /// Limits for each SQL query.
    pub limits: Limits,
    /// Largest upload accepted (default 2 GiB).
    pub max_upload_bytes: u64,
    /// Questions each user may ask per minute (default 30).
    pub questions_per_minute: u32,
    /// API requests each user may make per minute (default 1200).
    pub requests_per_minute: u32,
    /// Login required: true unless bound to loopback.
    pub require_login: bool,
    /// Files loaded into the local user's first workspace ("Demo").
    pub demo_files: Vec<PathBuf>,
}

impl ServerConfig {
    pub fn new(data: PathBuf, bind: SocketAddr, llm: Result<LlmConfig, String>) -> ServerConfig {
        ServerConfig {
            data,
            bind,
            llm,
            limits: Limits::default(),
            max_upload_bytes: 2 << 30,
            questions_per_minute: 30,
            requests_per_minute: 1200,
            require_login: !bind.ip().is_loopback(),
            demo_files: Vec::new(),
        }
    }
}

/// One workspace's kernels and directory.
pub struct WsKernels {
    pub dir: PathBuf,
    pub sql: Arc<SqlWorkers>,
    pub ingest: Arc<IngestWorkers>,
}

/// Rate-limit windows: (user, kind of call).
type RateKey = (i64, &'static str);

/// A question in flight.
struct Running {
    cancel: CancellationToken,
    question: i64,
}

/// Shared by every request.
pub struct AppState {
    pub cfg: ServerConfig,
    pub store: Arc<Store>,
    launcher: Launcher,
    llm: Option<Arc<dyn ChatModel>>,
    python: Option<Arc<PythonKernels>>,
    /// Why Python is not offered, when it is not.
    pub python_note: Option<String>,
    workspaces: Mutex<HashMap<String, Arc<WsKernels>>>,
    running: Mutex<HashMap<String, Running>>,
    live: Mutex<HashMap<String, broadcast::Sender<StoredEvent>>>,
    rate: Mutex<HashMap<RateKey, (Instant, u32)>>,
    local: User,
    /// Cancelled when the server begins to shut down (ends event streams).
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Open the store, start nothing yet: kernels start per workspace on first use.
    pub fn new(
        cfg: ServerConfig,
        launcher: Launcher,
        python: Result<Arc<PythonKernels>, String>,
    ) -> Result<Arc<AppState>, String> {
        let store = Store::open(&cfg.data.join("quarry.sqlite")).map_err(|e| e.to_string())?;
        // Questions cut off by a previous stop get a closing event.
        store
            .close_interrupted(|_| {
                serde_json::json!({"type": "done", "ok": false, "input_tokens": 0, "output_tokens": 0,
                                   "elapsed_ms": 0, "interrupted": true})
            })
            .map_err(|e| e.to_string())?;
        let local = store.local_user().map_err(|e| e.to_string())?;
        let llm: Option<Arc<dyn ChatModel>> = match &cfg.llm {
            Ok(c) => Some(Arc::new(quarry_llm::Client::new(c.clone()).map_err(|e| e.to_string())?)),
            Err(_) => None,
        };
        let (python, python_note) = match python {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        };
        Ok(Arc::new(AppState {
            cfg,
            store: Arc::new(store),
            launcher,
            llm,
            python,
            python_note,
            workspaces: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            rate: Mutex::new(HashMap::new()),
            local,
            shutdown: CancellationToken::new(),
        }))
    }

    pub fn ws_dir(&self, id: &str) -> PathBuf {
        self.cfg.data.join("workspaces").join(id)
    }

    pub fn kernels(&self, ws: &str) -> Arc<WsKernels> {
        let mut map = self.workspaces.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ws.to_string())
            .or_insert_with(|| {
                let dir = self.ws_dir(ws);
                let data = dir.join("data");
                Arc::new(WsKernels {
                    sql: Arc::new(SqlWorkers::new(self.launcher.clone(), &data, self.cfg.limits.clone(), 2)),
                    ingest: Arc::new(IngestWorkers::new(self.launcher.clone(), &data, Limits::for_ingest(), 1)),
                    dir,
                })
            })
            .clone()
    }

    pub fn live(&self, conversation: &str) -> broadcast::Sender<StoredEvent> {
        let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(conversation.to_string()).or_insert_with(|| broadcast::channel(1024).0).clone()
    }

    /// Forget the broadcast channels nobody listens to and no question feeds
    /// (a later stream starts from the store), so memory stays bounded.
    pub fn prune_live(&self) {
        // Both locks at once (running, then live): a question that starts
        // meanwhile is either seen as running or creates its channel after.
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, tx| tx.receiver_count() > 0 || running.contains_key(id));
    }

    /// A receiver of the conversation's live events, subscribed under the
    /// map's lock so pruning cannot orphan it.
    pub fn subscribe(&self, conversation: &str) -> broadcast::Receiver<StoredEvent> {
        let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(conversation.to_string()).or_insert_with(|| broadcast::channel(1024).0).subscribe()
    }

    /// Fixed-window rate limit per user and kind; false when over.
    pub fn allow(&self, user: i64, kind: &'static str, per_minute: u32) -> bool {
        let mut map = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let e = map.entry((user, kind)).or_insert((now, 0));
        if now.duration_since(e.0) > Duration::from_secs(60) {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= per_minute
    }

    /// Cancel every question in flight (shutdown).
    pub fn cancel_all(&self) {
        for r in self.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            r.cancel.cancel();
        }
    }

    /// Questions in flight.
    pub fn running(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Load the demo files into the local user's "Demo" workspace (first start only).
pub async fn seed_demo(state: &Arc<AppState>) -> Result<(), String> {
    if state.cfg.demo_files.is_empty() || state.cfg.require_login {
        return Ok(());
    }
    let user = state.local.clone();
    if !state.store.workspaces(user.id).map_err(|e| e.to_string())?.is_empty() {
        return Ok(());
    }
    let ws = state.store.create_workspace(user.id, "Demo").map_err(|e| e.to_string())?;
    for f in state.cfg.demo_files.clone() {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        let tables = api::ingest_file(state, &ws.id, &f).await.map_err(|e| e.message)?;
        state.store.add_dataset(&ws.id, &name, size, &tables).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Serve until `shutdown` resolves; then stop taking requests, cancel the
/// questions in flight (their `cancelled`/`done` events are stored) and
/// return once they have wound down.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(state.clone());
    let st = state.clone();
    let signal = async move {
        shutdown.await;
        st.cancel_all();
        st.shutdown.cancel();
    };
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(signal)
        .await?;
    let until = Instant::now() + Duration::from_secs(10);
    while state.running() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A file name safe to keep on disk: its last component, with anything
/// but letters, digits, `.`, `-` and `_` replaced.
pub fn safe_name(name: &str) -> String {
    let base = Path::new(name).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let s: String =
        base.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "upload".into()
    } else {
        s.chars().take(120).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (load test, 3 of 34 692 questions never saw `done`): a
    /// prune that read the running set before a question started removed the
    /// question's fresh channel, so its events went to no one. Pruning now
    /// holds both locks, and streams subscribe under the map's lock.
    #[test]
    fn regression_prune_never_orphans_a_running_questions_channel() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig::new(dir.path().to_path_buf(), ([127, 0, 0, 1], 0).into(), Err("none".into()));
        let st = AppState::new(cfg, Launcher::with_exe(PathBuf::from("/nonexistent")), Err("off".into())).unwrap();
        st.running.lock().unwrap().insert("x".into(), Running { cancel: CancellationToken::new(), question: 1 });
        let tx = st.live("x"); // the question's task takes its sender, nobody listens yet
        st.prune_live();
        let mut rx = st.subscribe("x"); // the page's stream arrives
        tx.send(StoredEvent { seq: 1, question: 1, event: serde_json::json!({"type": "done"}) }).unwrap();
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        // Finished and unwatched channels go.
        st.running.lock().unwrap().clear();
        drop(rx);
        st.prune_live();
        assert!(st.live.lock().unwrap().is_empty());
    }
}
