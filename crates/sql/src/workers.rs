//! [`SqlWorkers`]: warm `quarry worker sql` processes over one data
//! directory, behind [`SqlKernel`]. A worker that died is reported as an
//! [`EngineError`] and replaced on the next query; one that timed out is
//! retired.

use std::path::{Path, PathBuf};

use quarry_types::sql::Param;
use quarry_types::{EngineError, EngineTarget, ErrorKind, Limits, QueryResult, SqlKernel};
use quarry_worker::{Frame, Launcher, Pool, Step, WorkerError};

use crate::protocol::{Header, Request};

/// Warm SQL workers over one data directory.
pub struct SqlWorkers {
    pool: Pool,
    data: PathBuf,
    target: EngineTarget,
}

impl SqlWorkers {
    /// A pool of at most `max` workers for `data`, each process under `limits`
    /// (per-query limits may be lower, not higher, than these).
    pub fn new(launcher: Launcher, data: &Path, limits: Limits, max: usize) -> SqlWorkers {
        SqlWorkers::on(&EngineTarget::Local, launcher, data, limits, max)
    }

    /// [`SqlWorkers::new`], whose workers plan on `target`.
    pub fn on(target: &EngineTarget, launcher: Launcher, data: &Path, limits: Limits, max: usize) -> SqlWorkers {
        let mut args = vec!["sql".to_string(), "--data".into(), absolute(data).display().to_string()];
        if *target != EngineTarget::Local {
            args.extend(["--engine".to_string(), target.as_url()]);
        }
        // A cluster's object store: its endpoint and credentials, from the environment.
        let launcher = if target.store().is_some() { launcher.passing("AWS_") } else { launcher };
        SqlWorkers { pool: Pool::new(launcher, args, limits, max), data: data.to_path_buf(), target: target.clone() }
    }

    /// Worker processes started so far.
    pub fn started(&self) -> u64 {
        self.pool.started()
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl SqlKernel for SqlWorkers {
    fn query(&self, sql: &str, limits: &Limits) -> Result<QueryResult, EngineError> {
        self.query_with(sql, &[], limits)
    }

    fn engine(&self) -> String {
        self.target.describe()
    }

    fn query_with(&self, sql: &str, params: &[Param], limits: &Limits) -> Result<QueryResult, EngineError> {
        let mut worker = self.pool.get().map_err(worker_error)?;
        let passwords = quarry_types::sources::Passwords::for_workspace(&self.data);
        let request = Frame::json(&Request {
            sql: sql.to_string(),
            limits: limits.clone(),
            params: params.to_vec(),
            passwords,
            test_source: None,
        });
        let answer = worker
            .call(&request, limits.time, |frame| {
                let header: Header = frame.parse()?;
                if !header.ok {
                    let e =
                        header.error.unwrap_or_else(|| EngineError::internal("the worker failed without saying why"));
                    return Ok(Step::Done(Err(e)));
                }
                let mut r = QueryResult::from_ipc(&frame.payload, header.truncated)
                    .map_err(|e| WorkerError::Protocol(format!("bad result: {e}")))?;
                r.rows = header.rows;
                Ok(Step::Done(Ok(r)))
            })
            .map_err(worker_error)?;
        if matches!(&answer, Err(e) if e.kind == ErrorKind::Timeout) {
            // The worker exits after a timeout; never hand it out again.
            worker.retire();
        }
        answer
    }
}

impl SqlWorkers {
    /// Connect to `source` from a worker (where the database drivers are)
    /// and describe its tables; the error says what failed, never the password.
    pub fn test_source(
        &self,
        source: &quarry_types::Source,
        limits: &Limits,
    ) -> Result<Vec<quarry_types::LiveTable>, String> {
        let mut worker = self.pool.get().map_err(|e| e.to_string())?;
        let request = Frame::json(&Request {
            sql: String::new(),
            limits: limits.clone(),
            params: Vec::new(),
            passwords: quarry_types::sources::Passwords::from_env(std::slice::from_ref(source)),
            test_source: Some(source.clone()),
        });
        let answer = worker.call(&request, limits.time, |frame| {
            let header: Header = frame.parse()?;
            Ok(Step::Done(match header.error {
                Some(e) => Err(e.message),
                None => Ok(header.tables),
            }))
        });
        answer.map_err(|e| worker_error(e).message)?
    }
}

fn worker_error(e: WorkerError) -> EngineError {
    let kind = match e {
        WorkerError::Timeout(_) => ErrorKind::Timeout,
        // SIGXCPU: the CPU-time rlimit; any other signal is almost always the address-space limit.
        WorkerError::Died { signal: Some(24), .. } => ErrorKind::Timeout,
        WorkerError::Died { signal: Some(_), .. } => ErrorKind::MemoryLimit,
        WorkerError::TooMuchOutput(_) => ErrorKind::ResultTooLarge,
        _ => ErrorKind::Internal,
    };
    let hint = match kind {
        ErrorKind::ResultTooLarge => "select fewer columns or rows, or aggregate",
        ErrorKind::MemoryLimit => "aggregate earlier, select fewer columns, or avoid building huge values",
        ErrorKind::Timeout => "aggregate earlier, filter more, or avoid joins that multiply rows",
        _ => "",
    };
    EngineError { kind, message: e.to_string(), hint: hint.into(), refusal: None }
}
