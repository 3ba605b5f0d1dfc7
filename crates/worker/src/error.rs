//! How a worker failed ([`WorkerError`]), in words a person can use, and
//! redacted for a model that may not read what the worker wrote.

use std::time::Duration;

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
    /// The worker broke the frame protocol (and was killed).
    Protocol(String),
    /// The caller gave up on the request (a cancelled load or upload); the
    /// worker was killed.
    Cancelled,
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Spawn(e) => write!(f, "the worker process could not be started ({e})"),
            WorkerError::Timeout(t) => {
                write!(f, "stopped at the time limit: the worker ran longer than {} s and was killed", t.as_secs_f64())
            }
            WorkerError::Died { signal: Some(s), .. }
                if [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE].contains(s) =>
            {
                write!(f, "the worker process crashed ({}) and was replaced", signal_name(*s))
            }
            WorkerError::Died { signal: Some(s), .. } => write!(
                f,
                "stopped by the worker's OS limits: the worker process was killed ({}), most likely by its memory or CPU limit",
                signal_name(*s)
            ),
            WorkerError::Died { code, stderr, .. } => write!(
                f,
                "the worker process failed (exit {}){}",
                code.map_or("?".into(), |c| c.to_string()),
                stderr.lines().last().map(|l| format!(": {l}")).unwrap_or_default()
            ),
            WorkerError::TooMuchOutput(n) => write!(f, "the result is larger than the {} MiB cap", n >> 20),
            WorkerError::Protocol(e) => write!(f, "the worker sent something unreadable ({e}) and was stopped"),
            WorkerError::Cancelled => write!(f, "cancelled: the worker was stopped"),
        }
    }
}

impl std::error::Error for WorkerError {}

impl WorkerError {
    /// The error without what the worker itself wrote (its last stderr
    /// line, a protocol detail), which may quote data: safe for a model in
    /// privacy mode `strict`.
    pub fn redacted(&self) -> String {
        match self {
            WorkerError::Died { signal: None, code, .. } => {
                format!(
                    "the worker process failed (exit {}; its message is withheld)",
                    code.map_or("?".into(), |c| c.to_string())
                )
            }
            WorkerError::Protocol(_) => "the worker sent something unreadable and was stopped".into(),
            other => other.to_string(),
        }
    }
}

fn signal_name(s: i32) -> String {
    match nix::sys::signal::Signal::try_from(s) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => format!("signal {s}"),
    }
}
