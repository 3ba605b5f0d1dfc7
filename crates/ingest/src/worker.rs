//! Parsing uploaded files in a worker process.
//!
//! [`serve`] runs inside `quarry worker ingest`: for each request (`{path,
//! options}`) it loads the file into the catalog with
//! [`Catalog::load`], sending progress frames while it reads and one final
//! frame with the [`LoadReport`] or the [`IngestError`]. [`IngestWorkers`] is
//! the caller's side. A file that crashes the parser or exhausts the
//! worker's memory ends the worker, not the caller, and is reported as an
//! error naming the file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quarry_sandbox::{Frame, Launcher, Limits, Pool, Step, WorkerError};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, LoadReport};
use crate::error::{ErrorKind, IngestError};
use crate::{IngestOptions, Progress};

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    path: PathBuf,
    options: IngestOptions,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Progress { phase: String, done: u64, total: u64 },
    Loaded { report: LoadReport },
    Failed { error: IngestError },
}

/// Sends progress as frames, at most every 100 ms.
struct FrameProgress<'a, W: Write> {
    out: Mutex<&'a mut W>,
    last: Mutex<Option<Instant>>,
}

impl<W: Write> Progress for FrameProgress<'_, W> {
    fn advance(&self, phase: &str, done: u64, total: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = Frame::json(&Reply::Progress { phase: phase.to_string(), done, total }).write_to(&mut **out);
    }
}

/// Inside the worker: load files until stdin closes. Returns the exit code.
pub fn serve(data: &Path, input: &mut impl Read, out: &mut impl Write) -> i32 {
    let mut catalog = match Catalog::open(data) {
        Ok(c) => c,
        Err(error) => {
            let _ = Frame::json(&Reply::Failed { error }).write_to(out);
            return 2;
        }
    };
    loop {
        let req: Request = match quarry_sandbox::read_request(input) {
            Ok(Some(f)) => match f.parse() {
                Ok(r) => r,
                Err(e) => return fail(out, IngestError::internal(e.to_string())),
            },
            Ok(None) => return 0,
            Err(e) => return fail(out, IngestError::internal(e.to_string())),
        };
        let result = {
            let progress = FrameProgress { out: Mutex::new(&mut *out), last: Mutex::new(None) };
            catalog.load(&req.path, &req.options, &progress)
        };
        let reply = match result {
            Ok(report) => Reply::Loaded { report },
            Err(error) => Reply::Failed { error },
        };
        if Frame::json(&reply).write_to(out).is_err() {
            return 3;
        }
    }
}

fn fail(out: &mut impl Write, error: IngestError) -> i32 {
    let _ = Frame::json(&Reply::Failed { error }).write_to(out);
    2
}

/// Ingest workers for one data directory.
pub struct IngestWorkers {
    pool: Pool,
}

impl IngestWorkers {
    /// At most `max` parses at once, each worker under `limits`
    /// (normally [`Limits::for_ingest`]).
    pub fn new(launcher: Launcher, data: &Path, limits: Limits, max: usize) -> IngestWorkers {
        let data = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
        let args = vec!["ingest".to_string(), "--data".into(), data.display().to_string()];
        IngestWorkers { pool: Pool::new(launcher, args, limits, max) }
    }

    /// Load one file into the catalog in a worker.
    pub fn load(
        &self,
        path: &Path,
        options: &IngestOptions,
        progress: &dyn Progress,
    ) -> Result<LoadReport, IngestError> {
        let shown = path.display().to_string();
        let abs = std::path::absolute(path).map_err(|e| IngestError::io(e).in_file(&shown))?;
        let mut worker = self.pool.get().map_err(|e| worker_error(e, &shown))?;
        let time = self.pool.limits().time;
        let request = Frame::json(&Request { path: abs, options: options.clone() });
        let reply = worker
            .call(&request, time, |frame| match frame.parse::<Reply>()? {
                Reply::Progress { phase, done, total } => {
                    progress.advance(&phase, done, total);
                    Ok(Step::More)
                }
                Reply::Loaded { report } => Ok(Step::Done(Ok(report))),
                Reply::Failed { error } => Ok(Step::Done(Err(error))),
            })
            .map_err(|e| worker_error(e, &shown))?;
        reply.map_err(|e| e.in_file(&shown))
    }
}

fn worker_error(e: WorkerError, file: &str) -> IngestError {
    let (kind, hint) = match &e {
        WorkerError::Timeout(_) => (ErrorKind::TooLarge, "the file took too long to read; split it or load it as CSV"),
        WorkerError::Died { signal: Some(_), .. } => (
            ErrorKind::TooLarge,
            "reading the file needed more memory than the ingest limit; split it or save it as CSV or Parquet",
        ),
        _ => (ErrorKind::Internal, "this is a bug in Quarry; please report it with the file if you can"),
    };
    IngestError::new(kind, format!("reading stopped: {e}"), hint).in_file(file)
}
