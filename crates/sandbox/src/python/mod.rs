//! The Python kernel: warm, OS-isolated pandas workers for what SQL cannot do.
//!
//! - [`Runtime`] is Quarry's own Python environment: a venv built from a
//!   system interpreter with the pinned packages of `python/requirements.txt`
//!   (`quarry setup-python`, or on first use).
//! - [`check::check`] is the AST wall, run in Rust before code reaches a worker.
//! - [`PythonKernels`] keeps pre-started workers (pandas, numpy, scipy,
//!   statsmodels, scikit-learn and matplotlib already imported) behind the
//!   walls of [`crate::jail`], hands one to each conversation as a stateful
//!   kernel, and recycles kernels that are idle, hit a limit or misbehaved.
//! - Tables reach the kernel as Arrow through [`DataAccess`] (asked for by
//!   the kernel when code first uses `df`/`dfs[...]`, or calls `sql()`); results
//!   come back as JSON, Arrow IPC and PNG, never pickle.

pub mod check;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::jail::{self, JailSpec, ScratchDir, WallReport, Walls};
use crate::{Frame, Launcher, Limits, Step, Worker, WorkerError};

/// The pinned packages of the kernel's venv.
pub const REQUIREMENTS: &str = include_str!("../../python/requirements.txt");
/// The kernel program that runs inside the jail.
pub const KERNEL: &str = include_str!("../../python/kernel.py");

/// Why Python could not run.
#[derive(Debug, Clone, PartialEq)]
pub enum PythonError {
    /// The AST check refused the code.
    Refused(Vec<check::Refusal>),
    /// No Python runtime, or the walls cannot be raised on this machine.
    Unavailable(String),
    /// The kernel died, was killed at a limit, or broke the protocol.
    Worker(WorkerError),
    /// This conversation's kernel is already running code.
    Busy,
}

impl std::fmt::Display for PythonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PythonError::Refused(r) => {
                write!(f, "the code was refused before running: ")?;
                for (i, x) in r.iter().enumerate() {
                    write!(f, "{}{x}", if i > 0 { "; " } else { "" })?;
                }
                Ok(())
            }
            PythonError::Unavailable(s) => f.write_str(s),
            PythonError::Worker(e) => write!(f, "{e}"),
            PythonError::Busy => f.write_str("this conversation's Python kernel is still running earlier code"),
        }
    }
}

impl std::error::Error for PythonError {}

impl PythonError {
    /// The error with nothing the kernel printed (which may quote data):
    /// refusals name the rule and the place in the code, worker failures
    /// their kind. Safe for a model in privacy mode `strict`.
    pub fn redacted(&self) -> String {
        match self {
            PythonError::Worker(e) => e.redacted(),
            other => other.to_string(),
        }
    }
}

// ---------------------------------------------------------------- runtime

/// Quarry's Python environment: `<home>/<hash of requirements>/` holds the
/// venv, the matplotlib font cache and `ready.json`.
#[derive(Debug, Clone)]
pub struct Runtime {
    home: PathBuf,
}

/// What `ready.json` records about the interpreter the venv was built from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub python: PathBuf,
    pub version: String,
    pub base_prefix: PathBuf,
    pub stdlib: PathBuf,
}

/// Progress of [`Runtime::setup`].
#[derive(Debug, Clone)]
pub enum SetupProgress {
    Step(String),
    Package { done: usize, total: usize, name: String },
}

impl Runtime {
    pub fn new(home: PathBuf) -> Runtime {
        Runtime { home }
    }

    /// Where the runtime lives unless configured: readable by the sandbox
    /// uid, so under `/var/lib/quarry/python` when running as root (a home
    /// directory under `/root` cannot be entered once the worker drops
    /// root), else `$XDG_DATA_HOME/quarry/python`.
    pub fn default_home(xdg_data_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/quarry/python");
        }
        xdg_data_home
            .or_else(|| home.map(|h| h.join(".local/share")))
            .unwrap_or_else(|| std::env::temp_dir().join("quarry-python"))
            .join("quarry/python")
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// This version's directory.
    pub fn dir(&self) -> PathBuf {
        let h = blake3::hash(REQUIREMENTS.as_bytes()).to_hex();
        self.home.join(&h[..16])
    }

    pub fn interpreter(&self) -> PathBuf {
        self.dir().join("venv/bin/python")
    }

    pub fn info(&self) -> Option<RuntimeInfo> {
        let text = std::fs::read(self.dir().join("ready.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn is_ready(&self) -> bool {
        self.info().is_some() && self.interpreter().exists()
    }

    /// What the jailed kernel may read: this runtime and the base interpreter's files.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        let mut out = vec![self.dir()];
        if let Some(info) = self.info() {
            out.push(info.python.clone());
            out.push(info.stdlib.clone());
            out.push(info.base_prefix.join("lib"));
        }
        out.extend(["/lib", "/lib64", "/usr/lib", "/usr/lib64"].map(PathBuf::from));
        out.sort();
        out.dedup();
        out
    }

    /// Build the venv (idempotent): find a system Python 3, create a venv,
    /// install the pinned packages, build matplotlib's font cache.
    pub fn setup(
        &self,
        python: Option<&Path>,
        progress: &mut dyn FnMut(SetupProgress),
    ) -> Result<RuntimeInfo, PythonError> {
        if let Some(info) = self.info().filter(|_| self.is_ready()) {
            return Ok(info);
        }
        let unavailable = |s: String| PythonError::Unavailable(s);
        progress(SetupProgress::Step("finding a system Python 3".into()));
        let (python, info) = find_python(python)?;
        let dir = self.dir();
        std::fs::create_dir_all(&self.home)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", self.home.display())))?;
        if nix::unistd::geteuid().is_root() {
            for p in [self.home.as_path(), python.as_path()] {
                if let Some(blocked) = closed_ancestor(p) {
                    return Err(unavailable(format!(
                        "{} cannot be entered by the sandbox's unprivileged user (the directory {} is not world-searchable); choose a Python and a --python-home outside it (e.g. /usr/bin/python3 and /var/lib/quarry/python)",
                        p.display(),
                        blocked.display()
                    )));
                }
            }
        }
        let tmp = self.home.join(format!(".building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| unavailable(format!("cannot create {}: {e}", tmp.display())))?;
        let result = (|| {
            progress(SetupProgress::Step(format!("creating a virtual environment from {}", python.display())));
            run_quiet(Command::new(&python).arg("-m").arg("venv").arg(tmp.join("venv")), "python -m venv")?;
            let req = tmp.join("requirements.txt");
            std::fs::write(&req, REQUIREMENTS).map_err(|e| unavailable(e.to_string()))?;
            let total = REQUIREMENTS.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
            let mut child = Command::new(tmp.join("venv/bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--no-cache-dir",
                    "--progress-bar",
                    "off",
                ])
                .arg("-r")
                .arg(&req)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| unavailable(format!("pip: {e}")))?;
            let stderr = child.stderr.take();
            let err_text = std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut e) = stderr {
                    let _ = std::io::Read::read_to_string(&mut e, &mut s);
                }
                s
            });
            let mut done = 0;
            if let Some(out) = child.stdout.take() {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(name) = line.strip_prefix("Collecting ") {
                        done += 1;
                        progress(SetupProgress::Package {
                            done: done.min(total),
                            total,
                            name: name.trim().to_string(),
                        });
                    } else if line.starts_with("Installing collected packages") {
                        progress(SetupProgress::Step("installing packages".into()));
                    }
                }
            }
            let status = child.wait().map_err(|e| unavailable(format!("pip: {e}")))?;
            if !status.success() {
                let err = err_text.join().unwrap_or_default();
                return Err(unavailable(format!(
                    "pip could not install the kernel's packages (is PyPI reachable?): {}",
                    err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message")
                )));
            }
            progress(SetupProgress::Step("building matplotlib's font cache".into()));
            run_quiet(
                Command::new(tmp.join("venv/bin/python"))
                    .args(["-c", "import matplotlib.font_manager"])
                    .env("MPLCONFIGDIR", tmp.join("mplcache")),
                "matplotlib font cache",
            )?;
            std::fs::write(tmp.join("ready.json"), serde_json::to_vec_pretty(&info).unwrap_or_default())
                .map_err(|e| unavailable(e.to_string()))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process finished first; use its runtime.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        self.info().ok_or_else(|| unavailable(format!("the runtime in {} is incomplete", dir.display())))
    }
}

fn run_quiet(cmd: &mut Command, what: &str) -> Result<(), PythonError> {
    let out = cmd.output().map_err(|e| PythonError::Unavailable(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message");
    let hint = if last.contains("ensurepip") || last.contains("venv") {
        " (on Debian/Ubuntu: apt-get install python3-venv)"
    } else {
        ""
    };
    Err(PythonError::Unavailable(format!("{what} failed: {last}{hint}")))
}

/// The first ancestor of `p` (or `p`'s directory) that others cannot search.
fn closed_ancestor(p: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut cur = real.parent().map(Path::to_path_buf);
    if real.is_dir() {
        cur = Some(real.clone());
    }
    while let Some(d) = cur {
        if let Ok(m) = std::fs::metadata(&d) {
            if m.permissions().mode() & 0o001 == 0 {
                return Some(d);
            }
        }
        cur = d.parent().map(Path::to_path_buf);
    }
    None
}

/// A system Python ≥ 3.9 with venv, as given or from the usual places.
fn find_python(given: Option<&Path>) -> Result<(PathBuf, RuntimeInfo), PythonError> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_path_buf()],
        None => ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].map(PathBuf::from).to_vec(),
    };
    let probe = "import sys, json, sysconfig, venv; print(json.dumps({'python': sys.executable, 'version': sys.version.split()[0], 'base_prefix': sys.base_prefix, 'stdlib': sysconfig.get_path('stdlib'), 'ok': sys.version_info >= (3, 9)}))";
    let mut tried = Vec::new();
    for c in candidates {
        if !c.exists() {
            tried.push(format!("{} (not found)", c.display()));
            continue;
        }
        match Command::new(&c).args(["-I", "-c", probe]).output() {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                if v["ok"] != serde_json::Value::Bool(true) {
                    tried.push(format!("{} (Python {} is older than 3.9)", c.display(), v["version"]));
                    continue;
                }
                let real = std::fs::canonicalize(v["python"].as_str().unwrap_or_default()).unwrap_or(c.clone());
                let info = RuntimeInfo {
                    python: real,
                    version: v["version"].as_str().unwrap_or_default().to_string(),
                    base_prefix: PathBuf::from(v["base_prefix"].as_str().unwrap_or("/usr")),
                    stdlib: PathBuf::from(v["stdlib"].as_str().unwrap_or_default()),
                };
                return Ok((c, info));
            }
            Ok(o) => tried.push(format!("{} ({})", c.display(), String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => tried.push(format!("{} ({e})", c.display())),
        }
    }
    Err(PythonError::Unavailable(format!(
        "no usable Python 3 found (tried {}); install one (Debian/Ubuntu: apt-get install python3 python3-venv) or pass --python /path/to/python3. SQL questions keep working without it.",
        tried.join(", ")
    )))
}

// ---------------------------------------------------------------- kernels

/// How Python kernels run. One documented struct; the CLI and server fill it.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    pub runtime: Runtime,
    /// Limits for each run (time, memory, result size).
    pub limits: Limits,
    /// Which walls to raise; `read` is filled from the runtime.
    pub walls: Walls,
    /// Workers kept started and warm, ready for a new conversation.
    pub warm: usize,
    /// A conversation's kernel is recycled after this long unused.
    pub idle: Duration,
    /// The AST check (switched off only by tests proving the OS walls hold alone).
    pub ast_check: bool,
}

impl PythonConfig {
    pub fn new(runtime: Runtime) -> PythonConfig {
        PythonConfig {
            runtime,
            limits: Limits::for_python(),
            walls: Walls::default(),
            warm: 1,
            idle: Duration::from_secs(30 * 60),
            ast_check: true,
        }
    }
}

/// An Arrow IPC stream handed to a kernel.
#[derive(Debug, Clone, Default)]
pub struct ArrowData {
    pub ipc: Vec<u8>,
    pub rows: usize,
    pub truncated: bool,
}

/// Where a kernel's data comes from: the catalog's tables and the SQL
/// engine, both answered outside the sandbox.
pub trait DataAccess: Send + Sync {
    /// The whole table `name` (up to a row cap).
    fn table(&self, name: &str) -> Result<ArrowData, String>;
    /// The result of `sql` on the engine.
    fn sql(&self, sql: &str) -> Result<ArrowData, String>;
}

/// One run's request.
#[derive(Debug, Clone)]
pub struct RunRequest<'a> {
    pub code: &'a str,
    /// Tables the code may use (as `dfs[name]`; `df` when there is one).
    pub tables: &'a [String],
}

/// A table a run returned.
#[derive(Debug, Clone)]
pub struct PyTable {
    pub name: String,
    /// Rows of the DataFrame (the payload may hold fewer: `truncated`).
    pub rows: usize,
    pub truncated: bool,
    pub ipc: Vec<u8>,
}

/// An exception raised by the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PyFailure {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub line: Option<u32>,
    pub source: Option<String>,
    pub hint: Option<String>,
}

/// What one run produced.
#[derive(Debug, Clone, Default)]
pub struct PyRun {
    pub ok: bool,
    pub stdout: String,
    /// Characters of output beyond the cap, dropped.
    pub stdout_dropped: u64,
    /// The last expression's value (or `result`), as plain JSON, or `{"repr": …}`.
    pub value: Option<serde_json::Value>,
    pub error: Option<PyFailure>,
    pub tables: Vec<PyTable>,
    /// PNG images.
    pub figures: Vec<Vec<u8>>,
    /// `sql()` queries the code ran, in order.
    pub queries: Vec<String>,
    /// CLOCK_MONOTONIC when the first line of the code started.
    pub started_ns: u64,
    pub elapsed_ms: f64,
    /// True when this run got a new kernel (first run, or the previous one was recycled).
    pub fresh_kernel: bool,
}

#[derive(Deserialize)]
struct Done {
    ok: bool,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stdout_dropped: u64,
    value: Option<serde_json::Value>,
    error: Option<PyFailure>,
    #[serde(default)]
    started_ns: u64,
    #[serde(default)]
    elapsed_ms: f64,
    #[serde(default)]
    recycle: bool,
}

struct PyWorker {
    worker: Worker,
    // Keeps the mountpoint until the worker is gone.
    _scratch: ScratchDir,
    ready: bool,
}

enum Slot {
    Idle(Box<PyWorker>, Instant),
    /// Running code (`run` tells runs apart); the worker's process group once it has one.
    Busy {
        run: u64,
        pid: Option<u32>,
    },
}

/// Warm, sandboxed Python kernels, one per conversation.
pub struct PythonKernels {
    launcher: Launcher,
    cfg: PythonConfig,
    report: WallReport,
    warm: Mutex<Vec<PyWorker>>,
    sessions: Mutex<HashMap<String, Slot>>,
}

impl PythonKernels {
    /// Check the runtime and the walls, then pre-start `cfg.warm` workers.
    /// Refuses (with the reason) when a wall cannot be raised, unless
    /// `cfg.walls.best_effort`.
    pub fn start(launcher: Launcher, mut cfg: PythonConfig) -> Result<PythonKernels, PythonError> {
        if !cfg.runtime.is_ready() {
            return Err(PythonError::Unavailable(format!(
                "Quarry's Python runtime is not set up in {}; run `quarry setup-python`",
                cfg.runtime.home().display()
            )));
        }
        cfg.walls.read = cfg.runtime.read_paths();
        let report = jail::probe(&launcher, &cfg.walls)
            .map_err(|e| PythonError::Unavailable(format!("could not test the sandbox on this machine: {e}")))?;
        if !report.all_up() && !cfg.walls.best_effort {
            return Err(PythonError::Unavailable(format!(
                "refusing to run Python: this machine cannot raise the sandbox's {} walls. Python code is untrusted; run it only with every wall up, or pass --unsafe-python to run it with what this kernel supports",
                report.missing().join(", ")
            )));
        }
        let kernels =
            PythonKernels { launcher, cfg, report, warm: Mutex::new(Vec::new()), sessions: Mutex::new(HashMap::new()) };
        kernels.refill();
        Ok(kernels)
    }

    /// Which walls held when the sandbox was tested.
    pub fn walls(&self) -> &WallReport {
        &self.report
    }

    pub fn config(&self) -> &PythonConfig {
        &self.cfg
    }

    fn spawn(&self) -> Result<PyWorker, WorkerError> {
        let scratch = ScratchDir::new()?;
        let s = scratch.path().display().to_string();
        let dir = self.cfg.runtime.dir();
        let env = [
            ("PATH", "/usr/bin:/bin".to_string()),
            ("HOME", s.clone()),
            ("TMPDIR", s.clone()),
            ("LC_ALL", "C.UTF-8".into()),
            ("OPENBLAS_NUM_THREADS", "1".into()),
            ("OMP_NUM_THREADS", "1".into()),
            ("MKL_NUM_THREADS", "1".into()),
            ("QUARRY_MPL_CACHE", dir.join("mplcache").display().to_string()),
        ];
        let spec = JailSpec {
            walls: self.cfg.walls.clone(),
            program: self.cfg.runtime.interpreter(),
            args: ["-I", "-B", "-c", KERNEL].map(String::from).to_vec(),
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            scratch: scratch.path().to_path_buf(),
            sandbox_uid: jail::sandbox_uid(),
            probe: false,
        };
        let args = vec!["jail".to_string(), serde_json::to_string(&spec).unwrap_or_default()];
        let worker = self.launcher.start(&args, &self.cfg.limits)?;
        Ok(PyWorker { worker, _scratch: scratch, ready: false })
    }

    /// Keep `cfg.warm` workers started.
    fn refill(&self) {
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        warm.retain_mut(|w| w.worker.is_alive());
        while warm.len() < self.cfg.warm {
            match self.spawn() {
                Ok(w) => warm.push(w),
                Err(_) => break,
            }
        }
    }

    /// A started worker for a new conversation: a warm one if any.
    fn fresh(&self) -> Result<PyWorker, WorkerError> {
        let got = {
            let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
            let mut got = None;
            while let Some(mut w) = warm.pop() {
                if w.worker.is_alive() {
                    got = Some(w);
                    break;
                }
            }
            got
        };
        match got {
            Some(w) => Ok(w),
            None => self.spawn(),
        }
    }

    /// Recycle kernels unused for longer than `cfg.idle`.
    pub fn reap(&self) {
        let idle = self.cfg.idle;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| !matches!(s, Slot::Idle(_, last) if last.elapsed() > idle));
    }

    /// End a conversation's kernel (its variables are gone).
    pub fn end(&self, session: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(sessions.get(session), Some(Slot::Idle(..))) {
            sessions.remove(session);
        }
    }

    /// Stop the code `session` is running now (the user pressed Stop): its
    /// kernel is killed, the run returns an error, the next run gets a new
    /// kernel. False when nothing was running.
    pub fn interrupt(&self, session: &str) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(session) {
            Some(Slot::Busy { pid, .. }) => {
                if let Some(pid) = pid {
                    let pg = nix::unistd::Pid::from_raw(*pid as i32);
                    let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
                }
                // The session is free at once; the killed run cleans up after itself.
                sessions.remove(session);
                true
            }
            _ => false,
        }
    }

    /// Conversations holding a kernel now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Run `req.code` in `session`'s kernel (a fresh one for a new session).
    pub fn run(&self, session: &str, req: &RunRequest<'_>, data: &dyn DataAccess) -> Result<PyRun, PythonError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static RUNS: AtomicU64 = AtomicU64::new(1);
        if self.cfg.ast_check {
            check::check(req.code).map_err(PythonError::Refused)?;
        }
        self.reap();
        let me = RUNS.fetch_add(1, Ordering::Relaxed);
        let taken = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            match sessions.insert(session.to_string(), Slot::Busy { run: me, pid: None }) {
                Some(Slot::Idle(w, _)) => Some(*w),
                Some(busy @ Slot::Busy { .. }) => {
                    sessions.insert(session.to_string(), busy);
                    return Err(PythonError::Busy);
                }
                None => None,
            }
        };
        let fresh_kernel = taken.is_none();
        let mine = |s: Option<&Slot>| matches!(s, Some(Slot::Busy { run, .. }) if *run == me);
        let mut w = match taken.map_or_else(|| self.fresh(), Ok) {
            Ok(w) => w,
            Err(e) => {
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if mine(sessions.get(session)) {
                    sessions.remove(session);
                }
                return Err(PythonError::Worker(e));
            }
        };
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            if !mine(sessions.get(session)) {
                // Interrupted before the code started: the worker goes.
                return Err(PythonError::Worker(WorkerError::Protocol("interrupted".into())));
            }
            sessions.insert(session.to_string(), Slot::Busy { run: me, pid: Some(w.worker.pid()) });
        }
        let result = self.run_on(&mut w, req, data);
        let keep = matches!(result, Ok((_, false))) && w.worker.is_alive();
        {
            // Only this run's own slot: an interrupt may have handed the
            // session to a newer run already.
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            if mine(sessions.get(session)) {
                if keep {
                    sessions.insert(session.to_string(), Slot::Idle(Box::new(w), Instant::now()));
                } else {
                    sessions.remove(session);
                }
            }
        }
        if fresh_kernel {
            self.refill();
        }
        result.map(|(run, _)| PyRun { fresh_kernel, ..run })
    }

    fn run_on(
        &self,
        w: &mut PyWorker,
        req: &RunRequest<'_>,
        data: &dyn DataAccess,
    ) -> Result<(PyRun, bool), PythonError> {
        let limits = &self.cfg.limits;
        if !w.ready {
            w.worker
                .recv(Duration::from_secs(60), |f| {
                    let h: serde_json::Value = f.parse()?;
                    if h["kind"] == "ready" {
                        Ok(Step::Done(()))
                    } else {
                        Err(WorkerError::Protocol(format!("expected ready, got {h}")))
                    }
                })
                .map_err(|e| match e {
                    WorkerError::Died { code: Some(jail::JAIL_REFUSED), stderr, .. } => PythonError::Unavailable(
                        stderr
                            .lines()
                            .rfind(|l| l.contains("quarry-jail"))
                            .unwrap_or("the sandbox refused to start")
                            .to_string(),
                    ),
                    e => PythonError::Worker(e),
                })?;
            w.ready = true;
        }
        let request = Frame::json(&serde_json::json!({
            "op": "run",
            "code": req.code,
            "tables": req.tables,
            "limits": {
                "max_rows": limits.max_rows,
                "max_output": 64 * 1024,
                "max_figures": 10,
                "cpu_seconds": limits.time.as_secs().saturating_mul(2).saturating_add(5),
            },
        }));
        let mut run = PyRun::default();
        let mut bytes = 0usize;
        let cap = limits.max_result_bytes;
        let done = w.worker.converse(&request, limits.time, |frame, reply| {
            let h: serde_json::Value = frame.parse()?;
            let kind = h["kind"].as_str().unwrap_or_default();
            match kind {
                "table" | "figure" => {
                    bytes += frame.payload.len();
                    if bytes > cap {
                        return Err(WorkerError::TooMuchOutput(cap));
                    }
                    if kind == "table" {
                        run.tables.push(PyTable {
                            name: h["name"].as_str().unwrap_or("table").to_string(),
                            rows: h["rows"].as_u64().unwrap_or(0) as usize,
                            truncated: h["truncated"].as_bool().unwrap_or(false),
                            ipc: frame.payload,
                        });
                    } else {
                        run.figures.push(frame.payload);
                    }
                    Ok(Step::More)
                }
                "sql" | "table_request" => {
                    let answer = if kind == "sql" {
                        let q = h["sql"].as_str().unwrap_or_default();
                        run.queries.push(q.to_string());
                        data.sql(q)
                    } else {
                        data.table(h["name"].as_str().unwrap_or_default())
                    };
                    let frame = match answer {
                        Ok(a) => {
                            Frame::json(&serde_json::json!({"ok": true, "rows": a.rows, "truncated": a.truncated}))
                                .with_payload(a.ipc)
                        }
                        Err(e) => Frame::json(&serde_json::json!({"ok": false, "error": e})),
                    };
                    reply.send(&frame)?;
                    Ok(Step::More)
                }
                "done" => Ok(Step::Done(frame.parse::<Done>()?)),
                other => Err(WorkerError::Protocol(format!("unexpected frame {other:?}"))),
            }
        });
        let done = done.map_err(PythonError::Worker)?;
        run.ok = done.ok;
        run.stdout = done.stdout;
        run.stdout_dropped = done.stdout_dropped;
        run.value = done.value;
        run.error = done.error;
        run.started_ns = done.started_ns;
        run.elapsed_ms = done.elapsed_ms;
        Ok((run, done.recycle))
    }
}

/// Run `python -c "import pandas"` outside any sandbox (the cold start the
/// warm pool avoids; for the benchmark). True when it succeeded.
pub fn time_cold_import(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import pandas"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// CLOCK_MONOTONIC in nanoseconds (the clock the kernel reports `started_ns` in).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
