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
pub mod params;
mod protocol;
mod runtime;

use protocol::{DataReply, FromKernel, RunLimits, ToKernel};

pub use runtime::{Runtime, RuntimeInfo, SetupProgress};

use std::collections::HashMap;
use std::path::Path;
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
    /// Variables set before the code runs (a saved analysis's parameters,
    /// [`params`]): name → a string, number or null.
    pub params: &'a [(String, serde_json::Value)],
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
                .recv(Duration::from_secs(60), |f| match f.parse::<FromKernel>()? {
                    FromKernel::Ready {} => Ok(Step::Done(())),
                    other => Err(WorkerError::Protocol(format!("expected ready, got {other:?}"))),
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
        let request = Frame::json(&ToKernel::Run {
            code: req.code,
            tables: req.tables,
            params: req.params.iter().cloned().collect(),
            limits: RunLimits {
                max_rows: limits.max_rows,
                max_output: 64 * 1024,
                max_figures: 10,
                cpu_seconds: limits.time.as_secs().saturating_mul(2).saturating_add(5),
            },
        });
        let mut run = PyRun::default();
        let mut bytes = 0usize;
        let cap = limits.max_result_bytes;
        let done = w.worker.converse(&request, limits.time, |frame, reply| {
            let header: FromKernel = frame.parse()?;
            if matches!(header, FromKernel::Table { .. } | FromKernel::Figure {}) {
                bytes += frame.payload.len();
                if bytes > cap {
                    return Err(WorkerError::TooMuchOutput(cap));
                }
            }
            let answer = match header {
                FromKernel::Table { name, rows, truncated } => {
                    run.tables.push(PyTable { name, rows, truncated, ipc: frame.payload });
                    return Ok(Step::More);
                }
                FromKernel::Figure {} => {
                    run.figures.push(frame.payload);
                    return Ok(Step::More);
                }
                FromKernel::Done(done) => return Ok(Step::Done(done)),
                FromKernel::Ready {} => return Err(WorkerError::Protocol("a second ready".into())),
                FromKernel::Sql { sql } => {
                    let answer = data.sql(&sql);
                    run.queries.push(sql);
                    answer
                }
                FromKernel::TableRequest { name } => data.table(&name),
            };
            let frame = match answer {
                Ok(a) => Frame::json(&DataReply::rows(a.rows, a.truncated)).with_payload(a.ipc),
                Err(e) => Frame::json(&DataReply::failed(e)),
            };
            reply.send(&frame)?;
            Ok(Step::More)
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
