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
//! every call needs a session cookie, a bearer token or a trusted proxy's
//! word ([`auth`]), and every workspace, dataset, conversation and export is
//! visible to its owner and the members they added, each as their role
//! allows. A share link's token opens one object read-only, without an
//! account, through `/api/shared` only ([`api`]'s `shares`).

pub mod api;
pub mod auth;
pub mod errors;
pub mod guard;
pub mod run;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_ingest::worker::IngestWorkers;
use quarry_llm::{CancellationToken, ChatModel, LlmConfig};
use quarry_sandbox::python::PythonKernels;
use quarry_sandbox::{Launcher, Limits};
use quarry_sql::SqlWorkers;
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
    /// Login required: true unless bound to 127.0.0.1 or ::1 exactly
    /// (other 127.x addresses can be reached from containers and other
    /// network namespaces sharing the host's loopback).
    pub require_login: bool,
    /// Files loaded into the local user's first workspace ("Demo").
    pub demo_files: Vec<PathBuf>,
    /// Models of a model server found running on this machine (offered in the page).
    pub local_models: Vec<String>,
    /// Host names the server answers to besides IP addresses and
    /// `localhost` (`--allowed-host`); the host of `public_url` is added.
    pub allowed_hosts: Vec<String>,
    /// The address users reach the server at behind a proxy
    /// (`https://quarry.example.org`): its origin may change things, and an
    /// `https` one makes the session cookie `Secure`.
    pub public_url: Option<String>,
    /// A login session ends after this long unused (default 12 h)…
    pub session_idle: Duration,
    /// …and this long after it began, used or not (default 7 days).
    pub session_max: Duration,
    /// Failed logins allowed per account from one client address in
    /// [`LOGIN_WINDOW`] (default 10); per account from anywhere, ten
    /// times that; per client address over all accounts, five times that.
    pub login_failures: u32,
    /// Limits on what an uploaded file may hold (`--ingest-limit`).
    pub ingest: quarry_ingest::IngestOptions,
    /// Addresses of reverse proxies that authenticate users themselves
    /// (`--trusted-proxy`): a request from one of them naming a user in
    /// [`ServerConfig::trusted_user_header`] is that user. Empty: no such login.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The header those proxies name the user in (default `X-Forwarded-User`).
    pub trusted_user_header: String,
    /// Where the workspaces' SQL runs (`--engine`): this machine, or a Ballista cluster.
    pub engine: quarry_types::EngineTarget,
}

/// The window failed logins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

impl ServerConfig {
    /// Defaults, named once: the CLI's flags show these.
    pub const QUESTIONS_PER_MINUTE: u32 = 30;
    pub const REQUESTS_PER_MINUTE: u32 = 1200;
    pub const SESSION_IDLE_HOURS: f64 = 12.0;
    pub const SESSION_MAX_DAYS: f64 = 7.0;
    pub const TRUSTED_USER_HEADER: &'static str = "x-forwarded-user";

    pub fn new(data: PathBuf, bind: SocketAddr, llm: Result<LlmConfig, String>) -> ServerConfig {
        ServerConfig {
            data,
            bind,
            llm,
            limits: Limits::default(),
            max_upload_bytes: 2 << 30,
            questions_per_minute: Self::QUESTIONS_PER_MINUTE,
            requests_per_minute: Self::REQUESTS_PER_MINUTE,
            require_login: !is_loopback(bind.ip()),
            demo_files: Vec::new(),
            local_models: Vec::new(),
            allowed_hosts: Vec::new(),
            public_url: None,
            session_idle: Duration::from_secs_f64(Self::SESSION_IDLE_HOURS * 3600.0),
            session_max: Duration::from_secs_f64(Self::SESSION_MAX_DAYS * 24.0 * 3600.0),
            login_failures: 10,
            ingest: quarry_ingest::IngestOptions::default(),
            trusted_proxies: Vec::new(),
            trusted_user_header: Self::TRUSTED_USER_HEADER.to_string(),
            engine: quarry_types::EngineTarget::Local,
        }
    }

    /// Set `public_url`, allowing its host name.
    pub fn with_public_url(mut self, url: &str) -> ServerConfig {
        let url = url.trim_end_matches('/').to_string();
        if let Some((_, rest)) = url.split_once("://") {
            self.allowed_hosts.push(rest.split('/').next().unwrap_or_default().to_string());
        }
        self.public_url = Some(url);
        self
    }
}

/// Only 127.0.0.1 and ::1 count as "this machine, one local user, no login".
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip == std::net::IpAddr::from([127, 0, 0, 1]) || ip == std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
}

/// One workspace's kernels and directory.
pub struct WsKernels {
    pub dir: PathBuf,
    pub sql: Arc<SqlWorkers>,
    pub ingest: Arc<IngestWorkers>,
}

/// [`AppState::analysis_kernels`]; [`AnalysisKernels::get`] lends them.
pub struct AnalysisKernels {
    ws: Arc<WsKernels>,
    python: Option<Arc<PythonKernels>>,
    limits: quarry_sandbox::Limits,
}

impl AnalysisKernels {
    pub fn get(&self) -> quarry_agent::analyses::Kernels<'_> {
        quarry_agent::analyses::Kernels {
            sql: self.ws.sql.as_ref(),
            python: self.python.as_deref().map(|p| p as &dyn quarry_agent::analyses::PythonRunner),
            limits: &self.limits,
        }
    }
}

/// Held while one piece of work runs, so a second one waits for it.
type Gate = Arc<tokio::sync::Mutex<()>>;

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
    /// Failed logins per account, per account and address, per address.
    login_failures: Mutex<HashMap<String, (Instant, u32)>>,
    local: User,
    /// Cancelled when the server begins to shut down (ends event streams).
    pub shutdown: CancellationToken,
    /// One change to a workspace's definitions at a time (read, change, write).
    pub(crate) definitions_lock: tokio::sync::Mutex<()>,
    /// One computation of a table's insights at a time (an upload's and a
    /// card's): the second waits and reads what the first stored.
    insights_gates: Mutex<HashMap<(String, String), Gate>>,
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
        store.close_interrupted().map_err(|e| e.to_string())?;
        let local = store.local_user().map_err(|e| e.to_string())?;
        repair_workspaces(&cfg.data.join("workspaces"));
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
            login_failures: Mutex::new(HashMap::new()),
            local,
            shutdown: CancellationToken::new(),
            definitions_lock: tokio::sync::Mutex::new(()),
            insights_gates: Mutex::new(HashMap::new()),
        }))
    }

    pub fn ws_dir(&self, id: &str) -> PathBuf {
        self.cfg.data.join("workspaces").join(id)
    }

    /// A workspace's data directory: its catalog, and what the analyst keeps
    /// beside it (definitions, analyses, pack bindings, insights, answers).
    pub fn ws_data(&self, id: &str) -> PathBuf {
        self.ws_dir(id).join("data")
    }

    /// The configured model, or why there is none.
    pub(crate) fn model(&self) -> Result<Arc<dyn ChatModel>, String> {
        self.llm.clone().ok_or_else(|| {
            format!("no model is configured: {}", self.cfg.llm.as_ref().err().cloned().unwrap_or_default())
        })
    }

    /// The gate of `table`'s insights in workspace `ws` ([`AppState::insights_gates`]).
    pub(crate) fn insights_gate(&self, ws: &str, table: &str) -> Gate {
        let mut map = self.insights_gates.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((ws.to_string(), table.to_string())).or_default().clone()
    }

    /// What a workspace's saved analyses run on, owned (for a blocking task):
    /// its SQL workers, the Python kernels, the limits.
    pub fn analysis_kernels(&self, ws: &str) -> AnalysisKernels {
        AnalysisKernels { ws: self.kernels(ws), python: self.python.clone(), limits: self.cfg.limits.clone() }
    }

    pub fn kernels(&self, ws: &str) -> Arc<WsKernels> {
        let mut map = self.workspaces.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ws.to_string())
            .or_insert_with(|| {
                let dir = self.ws_dir(ws);
                let data = dir.join("data");
                Arc::new(WsKernels {
                    sql: Arc::new(SqlWorkers::on(
                        &self.cfg.engine,
                        self.launcher.clone(),
                        &data,
                        self.cfg.limits.clone(),
                        2,
                    )),
                    ingest: Arc::new(IngestWorkers::new(
                        self.launcher.clone(),
                        &data,
                        self.cfg.ingest.worker_limits(),
                        1,
                    )),
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

    /// Seconds until a login for `name` from `ip` may be tried again, when
    /// too many have failed lately (per account and address, per account,
    /// per address); `None` when it may be tried now.
    pub fn login_blocked(&self, name: &str, ip: std::net::IpAddr) -> Option<u64> {
        let map = self.login_failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.cfg.login_failures;
        let keys = login_keys(name, ip);
        keys.iter().zip([n, n.saturating_mul(10), n.saturating_mul(5)]).find_map(|(k, limit)| {
            let (since, count) = map.get(k)?;
            let left = LOGIN_WINDOW.saturating_sub(since.elapsed());
            (*count >= limit && !left.is_zero()).then(|| left.as_secs().max(1))
        })
    }

    /// Count a failed login (or, with `ok`, clear the account-and-address count).
    pub fn login_result(&self, name: &str, ip: std::net::IpAddr, ok: bool) {
        let mut map = self.login_failures.lock().unwrap_or_else(|p| p.into_inner());
        let keys = login_keys(name, ip);
        if ok {
            map.remove(&keys[0]);
            return;
        }
        if map.len() > 100_000 {
            map.retain(|_, (since, _)| since.elapsed() < LOGIN_WINDOW);
        }
        for k in keys {
            let e = map.entry(k).or_insert((Instant::now(), 0));
            if e.0.elapsed() >= LOGIN_WINDOW {
                *e = (Instant::now(), 0);
            }
            e.1 += 1;
        }
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

fn login_keys(name: &str, ip: std::net::IpAddr) -> [String; 3] {
    let name = name.trim().to_lowercase();
    [format!("{name}\u{0}{ip}"), format!("{name}\u{0}*"), format!("*\u{0}{ip}")]
}

/// At start: clear what a crash left in each workspace — uploads that
/// never finished arriving (`uploads/.incoming-*`) and interrupted loads in
/// its catalog — with a log line for each.
fn repair_workspaces(dir: &Path) {
    for ws in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(ws.path().join("uploads")).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().starts_with(".incoming-") && std::fs::remove_file(f.path()).is_ok() {
                eprintln!("note: removed an upload that never finished: {}", f.path().display());
            }
        }
        let data = ws.path().join("data");
        if !data.join("catalog.sqlite").exists() {
            continue;
        }
        match quarry_ingest::catalog::Catalog::open(&data).and_then(|mut c| c.repair()) {
            Ok(done) if !done.is_empty() => {
                eprintln!("note: {}: cleared what an interrupted load left: {}", data.display(), done.join(", "))
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: {}: {e}", data.display()),
        }
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
        let tables = api::ingest_file(state, &ws.id, &f, &name).await.map_err(|e| e.message)?;
        state.store.add_dataset(&ws.id, &name, size, &tables).map_err(|e| e.to_string())?;
    }
    api::seed_demo_packs(state, &ws.id).await;
    Ok(())
}

/// `quarry serve --watch DIR`: files arriving in `dir` (and changed ones)
/// load into the local user's "Watched" workspace, as uploads do (insights,
/// and the analyses over tables with a new version run again), until shutdown.
pub async fn watch_folder(state: Arc<AppState>, dir: PathBuf) {
    let user = state.local.clone();
    let ws = match state.store.workspaces(user.id).map(|l| l.into_iter().find(|w| w.name == "Watched")) {
        Ok(Some(w)) => w,
        Ok(None) => match state.store.create_workspace(user.id, "Watched") {
            Ok(w) => w,
            Err(e) => return tracing::error!("the watched workspace could not be made: {e}"),
        },
        Err(e) => return tracing::error!("the workspaces could not be read: {e}"),
    };
    let mut scanner = quarry_ingest::watch::Scanner::new();
    while !state.shutdown.is_cancelled() {
        for f in scanner.ready(&dir, true) {
            let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            match api::ingest_file(&state, &ws.id, &f, &name).await {
                Ok(tables) => {
                    let _ = state.store.add_dataset(&ws.id, &name, size, &tables);
                    tracing::info!("watched folder: {name} loaded as {}", tables.join(", "));
                }
                Err(e) => tracing::warn!("watched folder: {name}: {}", e.message),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = state.shutdown.cancelled() => break,
        }
    }
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

/// Longest stored upload name, in bytes (file systems count bytes: 255).
pub const MAX_NAME_BYTES: usize = 120;

/// A file name safe to keep on disk: its last component, with anything
/// but letters, digits, `.`, `-` and `_` replaced, at most
/// [`MAX_NAME_BYTES`] bytes (the extension kept).
pub fn safe_name(name: &str) -> String {
    let base = Path::new(name).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let s: String =
        base.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        return "upload".into();
    }
    if s.len() <= MAX_NAME_BYTES {
        return s;
    }
    let ext = s.rfind('.').map(|i| &s[i..]).filter(|e| e.len() <= 16).unwrap_or("");
    let mut stem = s[..s.len() - ext.len()].to_string();
    let mut cut = MAX_NAME_BYTES - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    stem.truncate(cut);
    stem + ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capped_in_bytes_with_their_extension() {
        let cjk = "表".repeat(130) + ".csv";
        let n = safe_name(&cjk);
        assert!(n.len() <= MAX_NAME_BYTES && n.ends_with(".csv"), "{n}");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert!(!is_loopback([127, 0, 0, 2].into()) && is_loopback([127, 0, 0, 1].into()));
    }

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
        tx.send(StoredEvent { seq: 1, question: 1, event: quarry_agent::Event::Cancelled }).unwrap();
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        // Finished and unwatched channels go.
        st.running.lock().unwrap().clear();
        drop(rx);
        st.prune_live();
        assert!(st.live.lock().unwrap().is_empty());
    }
}
