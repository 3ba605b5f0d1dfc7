//! # quarry-sandbox: worker processes and their limits
//!
//! The only crate that spawns processes. A kernel (SQL today, Python next)
//! runs as `quarry worker <kind>` in a child process with a clean
//! environment (no API keys, no secrets), rlimits on address space, CPU time,
//! file size, core dumps and open files, and a wall-clock deadline enforced
//! by the parent. The parent talks to it over pipes only: a request on stdin,
//! a JSON header line plus an Arrow IPC stream on stdout. A worker that dies
//! is reported as a clear [`WorkerError`] and the caller's process lives on.
//!
//! Namespaces, Landlock and seccomp are the Python kernel's next walls; they
//! slot into [`Launcher::spawn`]'s `pre_exec`.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource};
use serde::{Deserialize, Serialize};

/// Resource limits for one piece of generated work, shared by every kernel.
/// Documented here and nowhere else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Memory pool for a query's operators (default 2 GiB). Exceeding it
    /// fails the query cleanly; nothing spills to disk.
    pub memory_bytes: usize,
    /// Address space of the whole worker process (default memory_bytes + 2 GiB).
    /// Allocations the pool does not track (a string doubled in a recursive
    /// CTE, `repeat('x', 4e9)`) hit this wall and end the worker, not Quarry.
    pub address_space_bytes: u64,
    /// Wall-clock limit (default 30 s): the engine cancels the plan, and the
    /// parent kills the worker a few seconds later if it has not returned.
    #[serde(with = "secs")]
    pub time: Duration,
    /// Rows returned for display (default 10 000); `truncated` says when more existed.
    pub max_rows: usize,
    /// Bytes of results returned from the worker (default 256 MiB).
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 << 30,
            address_space_bytes: 4 << 30,
            time: Duration::from_secs(30),
            max_rows: 10_000,
            max_result_bytes: 256 << 20,
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
    }
}

/// How a worker failed, in words a person and the model can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerError {
    /// The worker could not be started.
    Spawn(String),
    /// The worker ran past the wall-clock limit and was killed.
    Timeout(Duration),
    /// The worker died: killed by a limit or crashed.
    Died { signal: Option<i32>, code: Option<i32>, stderr: String },
    /// The worker sent more than the result cap.
    TooMuchOutput(usize),
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Spawn(e) => write!(f, "the worker process could not be started ({e})"),
            WorkerError::Timeout(t) => {
                write!(f, "stopped at the time limit: the worker ran longer than {} s and was killed", t.as_secs_f64())
            }
            WorkerError::Died { signal: Some(s), .. } => write!(
                f,
                "stopped by the worker's OS limits: the worker process was killed ({}), most likely by its memory or CPU limit; \
                 aggregate earlier or avoid building huge values",
                signal_name(*s)
            ),
            WorkerError::Died { code, stderr, .. } => write!(
                f,
                "the worker process failed (exit {}){}",
                code.map_or("?".into(), |c| c.to_string()),
                stderr.lines().last().map(|l| format!(": {l}")).unwrap_or_default()
            ),
            WorkerError::TooMuchOutput(n) => write!(f, "the result is larger than the {} MiB cap", n >> 20),
        }
    }
}

impl std::error::Error for WorkerError {}

fn signal_name(s: i32) -> String {
    match nix::sys::signal::Signal::try_from(s) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => format!("signal {s}"),
    }
}

/// What a worker sent back.
pub struct WorkerOutput {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Starts workers: the same `quarry` binary in worker mode.
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
}

impl Launcher {
    /// A launcher for the running executable (which must understand `worker`).
    pub fn current() -> Result<Launcher, WorkerError> {
        let exe = std::env::current_exe().map_err(|e| WorkerError::Spawn(e.to_string()))?;
        Ok(Launcher { exe })
    }

    pub fn with_exe(exe: PathBuf) -> Launcher {
        Launcher { exe }
    }

    /// Run `exe worker <args…>` with `input` on stdin, under `limits`.
    pub fn run(&self, args: &[String], input: &[u8], limits: &Limits) -> Result<WorkerOutput, WorkerError> {
        let started = Instant::now();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("worker").args(args);
        // No secrets in the worker: a clean environment.
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C.UTF-8");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let as_bytes = limits.address_space_bytes;
        let cpu = limits.time.as_secs().saturating_mul(2).saturating_add(5);
        // SAFETY: only async-signal-safe calls (setrlimit) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let set = |r, v| setrlimit(r, v, v).map_err(std::io::Error::from);
                set(Resource::RLIMIT_AS, as_bytes)?;
                set(Resource::RLIMIT_CPU, cpu)?;
                set(Resource::RLIMIT_CORE, 0)?;
                set(Resource::RLIMIT_FSIZE, 0)?;
                set(Resource::RLIMIT_NOFILE, 256)?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| WorkerError::Spawn(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let cap = limits.max_result_bytes + (1 << 20);
        let mut out = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || -> (Vec<u8>, bool) {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 64 * 1024];
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => return (buf, false),
                    Ok(n) => {
                        if buf.len() + n > cap {
                            return (buf, true);
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = (&mut err).take(64 * 1024).read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let deadline = limits.time + Duration::from_secs(5);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(WorkerError::Spawn(e.to_string())),
            }
        };
        let _ = writer.join();
        let (stdout, overflow) = reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        let Some(status) = status else {
            return Err(WorkerError::Timeout(limits.time));
        };
        if overflow {
            return Err(WorkerError::TooMuchOutput(limits.max_result_bytes));
        }
        if let Some(sig) = status.signal() {
            return Err(WorkerError::Died { signal: Some(sig), code: None, stderr });
        }
        if !status.success() && stdout.is_empty() {
            return Err(WorkerError::Died { signal: None, code: status.code(), stderr });
        }
        Ok(WorkerOutput { stdout, stderr, elapsed: started.elapsed() })
    }
}
