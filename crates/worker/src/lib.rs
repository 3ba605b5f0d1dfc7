//! # quarry-worker: worker processes, their protocol and their limits
//!
//! Spawns processes (with `quarry-sandbox`, the only crates that do). A
//! kernel (SQL, ingest, Python) runs as `quarry worker <kind>` in a child
//! process with a clean environment (no API keys, no secrets), its own
//! process group, and rlimits on address space, CPU time, file size, core
//! dumps and open files.
//!
//! Where work happens:
//! - [`Launcher::start`] spawns a worker; [`Worker::call`] sends one request
//!   and reads [`Frame`]s (a JSON header plus an optional binary payload:
//!   Arrow IPC or PNG, never anything deserialised into code) until the
//!   answer, enforcing the wall-clock limit by killing the process group.
//! - Workers are long-lived: a [`Pool`] (`pool`) keeps them warm between requests and
//!   drops any that died or were killed; the worker re-arms its CPU limit per
//!   request with [`arm_cpu_limit`].
//! - [`Limits`] (from `quarry-types`) is the one documented set of limits
//!   every kernel shares.
//!
//! A worker that dies is reported as a clear [`WorkerError`] and the
//! caller's process lives on. This crate is light on purpose: file parsers
//! and the SQL engine use it without linking a Python parser, Landlock or
//! seccomp. Namespaces, Landlock and seccomp — the Python kernel's walls —
//! and the Python checker are `quarry-sandbox`'s.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

pub use quarry_types::Limits;

mod error;
mod pool;

pub use error::WorkerError;
pub use pool::{Pool, Pooled};

/// One message across the process boundary: a JSON header and an optional
/// binary payload (an Arrow IPC stream, a PNG). Framed as
/// `u32 header length, header, u64 payload length, payload`, little-endian.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn json(header: &impl Serialize) -> Frame {
        Frame { header: serde_json::to_vec(header).unwrap_or_else(|_| b"{}".to_vec()), payload: Vec::new() }
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Frame {
        self.payload = payload;
        self
    }

    /// The header parsed as `T`.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T, WorkerError> {
        serde_json::from_slice(&self.header).map_err(|e| WorkerError::Protocol(format!("bad header: {e}")))
    }

    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&(self.header.len() as u32).to_le_bytes())?;
        w.write_all(&self.header)?;
        w.write_all(&(self.payload.len() as u64).to_le_bytes())?;
        w.write_all(&self.payload)?;
        w.flush()
    }

    /// Read one frame; `Ok(None)` at a clean end of stream. Payloads over
    /// `max_payload` are refused without being read.
    pub fn read_from(r: &mut impl Read, max_payload: usize) -> Result<Option<Frame>, WorkerError> {
        let mut len4 = [0u8; 4];
        match r.read_exact(&mut len4) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(WorkerError::Protocol(e.to_string())),
        }
        let hlen = u32::from_le_bytes(len4) as usize;
        if hlen > 16 << 20 {
            return Err(WorkerError::Protocol(format!("header of {hlen} bytes")));
        }
        let mut header = vec![0u8; hlen];
        r.read_exact(&mut header).map_err(|e| WorkerError::Protocol(e.to_string()))?;
        let mut len8 = [0u8; 8];
        r.read_exact(&mut len8).map_err(|e| WorkerError::Protocol(e.to_string()))?;
        let plen = u64::from_le_bytes(len8) as usize;
        if plen > max_payload {
            return Err(WorkerError::TooMuchOutput(max_payload));
        }
        let mut payload = vec![0u8; plen];
        r.read_exact(&mut payload).map_err(|e| WorkerError::Protocol(e.to_string()))?;
        Ok(Some(Frame { header, payload }))
    }
}

/// Starts workers: the same `quarry` binary in worker mode.
#[derive(Clone)]
pub struct Launcher {
    exe: PathBuf,
    /// Variables passed on from this process's environment (see [`Launcher::passing`]).
    pass: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl std::fmt::Debug for Launcher {
    /// The passed variables' names only: their values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.pass.iter().map(|(k, _)| k).collect();
        f.debug_struct("Launcher").field("exe", &self.exe).field("pass", &names).finish()
    }
}

impl Launcher {
    /// A launcher for the running executable (which must understand `worker`).
    pub fn current() -> Result<Launcher, WorkerError> {
        let exe = std::env::current_exe().map_err(|e| WorkerError::Spawn(e.to_string()))?;
        Ok(Launcher { exe, pass: Vec::new() })
    }

    pub fn with_exe(exe: PathBuf) -> Launcher {
        Launcher { exe, pass: Vec::new() }
    }

    /// The same launcher, whose workers also get this process's variables
    /// whose names start with `prefix` — only where a worker needs them to
    /// do its work (an object store's credentials for a cluster's SQL
    /// workers); every other variable stays out.
    pub fn passing(mut self, prefix: &str) -> Launcher {
        self.pass.extend(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with(prefix))));
        self
    }

    /// Start `exe worker <args…>` under `limits`: a clean environment, its
    /// own process group, and rlimits. The CPU limit's hard ceiling stays
    /// open so the worker can re-arm its soft limit per request
    /// ([`arm_cpu_limit`]); the parent's wall clock is the backstop.
    pub fn start(&self, args: &[String], limits: &Limits) -> Result<Worker, WorkerError> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("worker").args(args);
        // No secrets in the worker: a clean environment.
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C.UTF-8");
        cmd.envs(self.pass.iter().map(|(k, v)| (k, v)));
        // Tests stop workers at named points (`quarry_ingest::catalog::failpoint`).
        if let Some(v) = std::env::var_os("QUARRY_FAILPOINT") {
            cmd.env("QUARRY_FAILPOINT", v);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.process_group(0);
        // A limit cannot be raised above the hard limit this process runs
        // under (`ulimit -v` in a shell): the worker gets the lower one.
        let as_bytes = within_hard(Resource::RLIMIT_AS, limits.address_space_bytes);
        let cpu = within_hard(Resource::RLIMIT_CPU, cpu_budget(limits));
        let cpu_hard = within_hard(Resource::RLIMIT_CPU, nix::sys::resource::RLIM_INFINITY);
        let fsize = within_hard(Resource::RLIMIT_FSIZE, limits.file_size_bytes);
        let nofile = within_hard(Resource::RLIMIT_NOFILE, 256);
        let parent = std::process::id() as i32;
        // SAFETY: only async-signal-safe calls (prctl, getppid, setrlimit)
        // run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // The worker dies with the thread that started it (the
                // spawner thread, which lives as long as the process).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the parent exited before the worker started"));
                }
                let set = |r, soft, hard| setrlimit(r, soft, hard).map_err(std::io::Error::from);
                set(Resource::RLIMIT_AS, as_bytes, as_bytes)?;
                set(Resource::RLIMIT_CPU, cpu, cpu_hard)?;
                set(Resource::RLIMIT_CORE, 0, 0)?;
                set(Resource::RLIMIT_FSIZE, fsize, fsize)?;
                set(Resource::RLIMIT_NOFILE, nofile, nofile)?;
                Ok(())
            });
        }
        let mut child = spawn(cmd).map_err(|e| WorkerError::Spawn(e.to_string()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut out = child.stdout.take().expect("piped stdout");
        let max_payload = limits.max_result_bytes + (1 << 20);
        let (tx, frames) = mpsc::sync_channel(4);
        std::thread::spawn(move || loop {
            let f = Frame::read_from(&mut out, max_payload);
            let end = !matches!(f, Ok(Some(_)));
            if tx.send(f).is_err() || end {
                return;
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let tail = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.push_str(&String::from_utf8_lossy(&chunk[..n]));
                if t.len() > 16 * 1024 {
                    let cut = t.len() - 8 * 1024;
                    let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(t.len());
                    t.drain(..cut);
                }
            }
        });
        Ok(Worker { child, stdin: Some(stdin), frames, stderr, limits: limits.clone(), dead: None, requests: 0 })
    }
}

/// `want`, or this process's hard limit for `r` when that is lower.
fn within_hard(r: Resource, want: u64) -> u64 {
    match nix::sys::resource::getrlimit(r) {
        Ok((_, hard)) if hard != nix::sys::resource::RLIM_INFINITY => want.min(hard),
        _ => want,
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn on one long-lived thread. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child exits, and the threads that ask for
/// workers (a server's blocking pool) come and go; this one stays for the
/// life of the process, so workers die exactly when the process does —
/// by exit, a signal or kill -9.
fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: std::sync::OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = std::sync::OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("quarry-spawner".into())
            .spawn(move || {
                for (mut cmd, back) in rx {
                    let _ = back.send(cmd.spawn());
                }
            })
            .expect("the spawner thread starts");
        Mutex::new(tx)
    });
    let (back, answer) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, back))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// CPU seconds a request may use: twice the wall limit (two threads) plus slack.
fn cpu_budget(limits: &Limits) -> u64 {
    limits.time.as_secs().saturating_mul(2).saturating_add(5)
}

/// A running worker process that answers requests one at a time, staying
/// warm between them. Dropping it kills its whole process group.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: Receiver<Result<Option<Frame>, WorkerError>>,
    stderr: Arc<Mutex<String>>,
    limits: Limits,
    dead: Option<WorkerError>,
    requests: u64,
}

/// The way back to a worker in the middle of a request.
pub struct Reply<'a> {
    stdin: Option<&'a mut ChildStdin>,
}

impl Reply<'_> {
    /// Send `frame` to the worker (an answer to what it asked).
    pub fn send(&mut self, frame: &Frame) -> Result<(), WorkerError> {
        match self.stdin.as_mut() {
            Some(w) => frame.write_to(w).map_err(|e| WorkerError::Protocol(format!("reply: {e}"))),
            None => Err(WorkerError::Protocol("the worker's input is closed".into())),
        }
    }
}

/// What the caller makes of each frame a worker sends during a request.
pub enum Step<T> {
    /// An intermediate frame (progress, a figure): keep reading.
    More,
    /// The final frame: the request is answered.
    Done(T),
}

impl Worker {
    /// True until the worker died, was killed, or broke the protocol. A dead
    /// worker is never reused.
    pub fn is_alive(&mut self) -> bool {
        if self.dead.is_none() {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.dead = Some(WorkerError::Died { signal: None, code: None, stderr: String::new() });
            }
        }
        self.dead.is_none()
    }

    /// Requests this worker has answered.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send one request and read frames until `on_frame` says the request is
    /// answered. The request's time limit (plus 5 s of grace for the worker to
    /// report a timeout itself) is enforced here by killing the process group.
    pub fn call<T>(
        &mut self,
        request: &Frame,
        time: Duration,
        mut on_frame: impl FnMut(Frame) -> Result<Step<T>, WorkerError>,
    ) -> Result<T, WorkerError> {
        self.send_and_read(request, time, Duration::from_secs(5), &|| false, |f, _| on_frame(f))
    }

    /// [`Worker::call`] that also stops — killing the worker — as soon as
    /// `cancelled` returns true (checked every 50 ms).
    pub fn call_cancellable<T>(
        &mut self,
        request: &Frame,
        time: Duration,
        cancelled: &dyn Fn() -> bool,
        mut on_frame: impl FnMut(Frame) -> Result<Step<T>, WorkerError>,
    ) -> Result<T, WorkerError> {
        self.send_and_read(request, time, Duration::from_secs(5), cancelled, |f, _| on_frame(f))
    }

    /// Like [`Worker::call`], for workers that ask the caller for things
    /// mid-request (the Python kernel's `sql()`): `on_frame` may answer a
    /// frame through the [`Reply`] it is given. The worker is killed at
    /// `time` exactly (a kernel running user code cannot report its own timeout).
    pub fn converse<T>(
        &mut self,
        request: &Frame,
        time: Duration,
        on_frame: impl FnMut(Frame, &mut Reply<'_>) -> Result<Step<T>, WorkerError>,
    ) -> Result<T, WorkerError> {
        self.send_and_read(request, time, Duration::ZERO, &|| false, on_frame)
    }

    fn send_and_read<T>(
        &mut self,
        request: &Frame,
        time: Duration,
        grace: Duration,
        cancelled: &dyn Fn() -> bool,
        on_frame: impl FnMut(Frame, &mut Reply<'_>) -> Result<Step<T>, WorkerError>,
    ) -> Result<T, WorkerError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let sent = match self.stdin.as_mut() {
            Some(stdin) => request.write_to(stdin).is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.died());
        }
        self.read_frames(time, grace, cancelled, on_frame)
    }

    /// Wait for the worker to send frames without sending a request (a
    /// worker announcing it is ready), up to `time`.
    pub fn recv<T>(
        &mut self,
        time: Duration,
        mut on_frame: impl FnMut(Frame) -> Result<Step<T>, WorkerError>,
    ) -> Result<T, WorkerError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        self.read_frames(time, Duration::ZERO, &|| false, |f, _| on_frame(f))
    }

    fn read_frames<T>(
        &mut self,
        time: Duration,
        grace: Duration,
        cancelled: &dyn Fn() -> bool,
        mut on_frame: impl FnMut(Frame, &mut Reply<'_>) -> Result<Step<T>, WorkerError>,
    ) -> Result<T, WorkerError> {
        let deadline = Instant::now() + time + grace;
        loop {
            if cancelled() {
                return Err(self.kill(WorkerError::Cancelled));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(Duration::from_millis(50));
            match self.frames.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) if !left.is_zero() && wait < left => continue,
                Ok(Ok(Some(frame))) => {
                    let mut reply = Reply { stdin: self.stdin.as_mut() };
                    match on_frame(frame, &mut reply) {
                        Ok(Step::More) => continue,
                        Ok(Step::Done(t)) => {
                            self.requests += 1;
                            return Ok(t);
                        }
                        Err(e) => return Err(self.kill(e)),
                    }
                }
                Ok(Ok(None)) | Err(RecvTimeoutError::Disconnected) => return Err(self.died()),
                Ok(Err(e)) => return Err(self.kill(e)),
                Err(RecvTimeoutError::Timeout) => return Err(self.kill(WorkerError::Timeout(time))),
            }
        }
    }

    /// Stop this worker now (it hit a limit, or its state is suspect): it
    /// will not be reused.
    pub fn retire(&mut self) {
        self.kill(WorkerError::Protocol("retired".into()));
    }

    /// Kill the process group and remember why.
    fn kill(&mut self, why: WorkerError) -> WorkerError {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        self.stdin = None;
        self.dead = Some(why.clone());
        why
    }

    /// The worker ended on its own: find out how.
    fn died(&mut self) -> WorkerError {
        self.stdin = None;
        let status = {
            let until = Instant::now() + Duration::from_secs(2);
            loop {
                match self.child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                    _ => break None,
                }
            }
        };
        // Let the stderr reader catch the last words.
        std::thread::sleep(Duration::from_millis(20));
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let e = match status {
            Some(s) => WorkerError::Died { signal: s.signal(), code: s.code(), stderr },
            None => {
                let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
                let _ = self.child.wait();
                WorkerError::Died { signal: None, code: None, stderr }
            }
        };
        self.dead = Some(e.clone());
        e
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Inside a worker: set the CPU-time soft limit to what this process has used
/// so far plus the request's budget, so a long-lived worker gets a fresh
/// allowance per request. Exceeding it ends the worker with SIGXCPU.
pub fn arm_cpu_limit(limits: &Limits) {
    use nix::sys::resource::{getrusage, UsageWho};
    let used = getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| (u.user_time().tv_sec() + u.system_time().tv_sec()).max(0) as u64)
        .unwrap_or(0);
    let soft = used.saturating_add(cpu_budget(limits));
    let _ = setrlimit(Resource::RLIMIT_CPU, soft, nix::sys::resource::RLIM_INFINITY);
}

/// For a long-running service process Quarry starts itself (a Ballista
/// executor): the walls a worker gets that suit a service — no core dumps,
/// an address space of `address_space` bytes, at most 4096 open files (shuffles
/// and connections need more than a query worker's 256).
pub fn limit_this_process(address_space: u64) -> Result<(), String> {
    let set = |r: Resource, v: u64| {
        let v = within_hard(r, v);
        setrlimit(r, v, v).map_err(|e| format!("{r:?}: {e}"))
    };
    set(Resource::RLIMIT_CORE, 0)?;
    set(Resource::RLIMIT_AS, address_space)?;
    set(Resource::RLIMIT_NOFILE, 4096)
}

/// Inside a worker: the request loop's reading side (stdin).
pub fn read_request(stdin: &mut impl Read) -> Result<Option<Frame>, WorkerError> {
    Frame::read_from(stdin, 1 << 20)
}
