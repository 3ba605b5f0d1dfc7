//! Parsing files in a worker process.
//!
//! [`serve`] runs inside `quarry worker ingest`: for each request it loads
//! the file into the catalog with [`Catalog::load`] (or, for `quarry
//! profile`, only prepares and profiles it, writing nothing), sending
//! progress frames while it reads and one final frame with the
//! [`LoadReport`], the [`Profile`] or the [`IngestError`]. [`IngestWorkers`]
//! is the caller's side; a call can be cancelled, which kills the worker.
//! A file that crashes the parser or exhausts the worker's memory ends the
//! worker, not the caller, and is reported as an error naming the file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quarry_worker::{Frame, Launcher, Limits, Pool, Step, WorkerError};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, LoadReport};
use crate::error::{ErrorKind, IngestError};
use crate::stats::TableStats;
use crate::{IngestOptions, Progress};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Load {
        path: PathBuf,
        options: IngestOptions,
        #[serde(default)]
        choice: Option<crate::LayoutChoice>,
    },
    Profile {
        path: PathBuf,
        options: IngestOptions,
        #[serde(default)]
        choice: Option<crate::LayoutChoice>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Progress { phase: String, done: u64, total: u64 },
    Loaded { report: LoadReport },
    Profiled { profile: Profile },
    Failed { error: IngestError },
}

/// One file profiled without loading it: each table's metadata, statistics
/// and every note (the table's, its data's and the file's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub tables: Vec<ProfiledTable>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfiledTable {
    pub meta: crate::TableMeta,
    pub stats: TableStats,
    pub notes: Vec<crate::Note>,
}

/// Prepare and profile a file, in this process (the worker's side).
pub fn profile_file(
    path: &Path,
    opts: &IngestOptions,
    choice: Option<&crate::LayoutChoice>,
    progress: &dyn Progress,
) -> Result<Profile, IngestError> {
    let pf = crate::prepare_with(path, opts, choice.map(std::slice::from_ref).unwrap_or_default(), progress)?;
    let mut tables = Vec::new();
    for t in &pf.tables {
        let stats = crate::catalog::profile(t, progress).map_err(|e| e.in_file(path.display().to_string()))?;
        let mut notes = t.meta.notes.clone();
        notes.extend(stats.notes.iter().cloned());
        notes.extend(pf.notes.iter().cloned());
        tables.push(ProfiledTable { meta: t.meta.clone(), stats, notes });
    }
    Ok(Profile { tables })
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

/// Inside the worker: load or profile files until stdin closes. Returns
/// the exit code. The catalog is opened on the first load (a profiling
/// worker never creates one).
pub fn serve(data: Option<&Path>, input: &mut impl Read, out: &mut impl Write) -> i32 {
    let mut catalog: Option<Catalog> = None;
    loop {
        let req: Request = match quarry_worker::read_request(input) {
            Ok(Some(f)) => match f.parse() {
                Ok(r) => r,
                Err(e) => return fail(out, IngestError::internal(e.to_string())),
            },
            Ok(None) => return 0,
            Err(e) => return fail(out, IngestError::internal(e.to_string())),
        };
        let reply = {
            let progress = FrameProgress { out: Mutex::new(&mut *out), last: Mutex::new(None) };
            match req {
                Request::Profile { path, options, choice } => {
                    match profile_file(&path, &options, choice.as_ref(), &progress) {
                        Ok(profile) => Reply::Profiled { profile },
                        Err(error) => Reply::Failed { error },
                    }
                }
                Request::Load { path, options, choice } => match open_catalog(&mut catalog, data) {
                    Ok(c) => match c.load_with(&path, &options, choice.as_ref(), &progress) {
                        Ok(report) => Reply::Loaded { report },
                        Err(error) => Reply::Failed { error },
                    },
                    Err(error) => Reply::Failed { error },
                },
            }
        };
        if Frame::json(&reply).write_to(out).is_err() {
            return 3;
        }
    }
}

fn open_catalog<'c>(slot: &'c mut Option<Catalog>, data: Option<&Path>) -> Result<&'c mut Catalog, IngestError> {
    if slot.is_none() {
        let Some(dir) = data else {
            return Err(IngestError::internal("this ingest worker was started without a data directory"));
        };
        *slot = Some(Catalog::open(dir)?);
    }
    slot.as_mut().ok_or_else(|| IngestError::internal("catalog"))
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

    /// Workers with no data directory: they can only profile.
    pub fn profiling(launcher: Launcher, limits: Limits) -> IngestWorkers {
        IngestWorkers { pool: Pool::new(launcher, vec!["ingest".to_string()], limits, 1) }
    }

    /// Load one file into the catalog in a worker. Errors name the file as
    /// `path` is written.
    pub fn load(
        &self,
        path: &Path,
        options: &IngestOptions,
        progress: &dyn Progress,
    ) -> Result<LoadReport, IngestError> {
        self.load_as(path, &path.display().to_string(), options, None, progress, &|| false)
    }

    /// [`IngestWorkers::load`], naming the file `shown` in errors (a server
    /// shows the uploaded name, not its own directories), and stopping —
    /// the worker killed, nothing committed past that point — as soon as
    /// `cancelled` says so. A `choice` of layout is stored with the file
    /// and applied again to its later versions ([`Catalog::load_with`]).
    pub fn load_as(
        &self,
        path: &Path,
        shown: &str,
        options: &IngestOptions,
        choice: Option<&crate::LayoutChoice>,
        progress: &dyn Progress,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<LoadReport, IngestError> {
        let abs = std::path::absolute(path).map_err(|e| IngestError::io(e).in_file(shown))?;
        let request = Request::Load { path: abs, options: options.clone(), choice: choice.cloned() };
        let mut report: LoadReport = self.call(&request, shown, progress, cancelled, |r| match r {
            Reply::Loaded { report } => Some(report),
            _ => None,
        })?;
        report.file = shown.to_string();
        Ok(report)
    }

    /// Profile one file in a worker, writing nothing.
    pub fn profile(
        &self,
        path: &Path,
        options: &IngestOptions,
        choice: Option<&crate::LayoutChoice>,
        progress: &dyn Progress,
    ) -> Result<Profile, IngestError> {
        let shown = path.display().to_string();
        let abs = std::path::absolute(path).map_err(|e| IngestError::io(e).in_file(&shown))?;
        let request = Request::Profile { path: abs, options: options.clone(), choice: choice.cloned() };
        self.call(&request, &shown, progress, &|| false, |r| match r {
            Reply::Profiled { profile } => Some(profile),
            _ => None,
        })
    }

    fn call<T>(
        &self,
        request: &Request,
        shown: &str,
        progress: &dyn Progress,
        cancelled: &dyn Fn() -> bool,
        done: impl Fn(Reply) -> Option<T>,
    ) -> Result<T, IngestError> {
        let mut worker = self.pool.get().map_err(|e| worker_error(e, shown))?;
        let time = self.pool.limits().time;
        let reply = worker
            .call_cancellable(&Frame::json(request), time, cancelled, |frame| match frame.parse::<Reply>()? {
                Reply::Progress { phase, done, total } => {
                    progress.advance(&phase, done, total);
                    Ok(Step::More)
                }
                Reply::Failed { error } => Ok(Step::Done(Err(error))),
                other => match done(other) {
                    Some(t) => Ok(Step::Done(Ok(t))),
                    None => Err(WorkerError::Protocol("an answer to another request".into())),
                },
            })
            .map_err(|e| worker_error(e, shown))?;
        reply.map_err(|e| relabel(e, shown))
    }
}

/// The worker names files by the absolute path it was given; callers know
/// them as `shown`.
fn relabel(mut e: IngestError, shown: &str) -> IngestError {
    e.file = shown.to_string();
    e
}

fn worker_error(e: WorkerError, file: &str) -> IngestError {
    let (kind, hint) = match &e {
        WorkerError::Timeout(_) => (ErrorKind::TooLarge, "the file took too long to read; split it or load it as CSV"),
        WorkerError::Cancelled => (ErrorKind::Io, "the load was cancelled; nothing of it was kept"),
        WorkerError::Spawn(_) => (
            ErrorKind::Io,
            "Quarry could not start its ingest worker: check that the system allows new processes and enough memory (ulimit -v)",
        ),
        WorkerError::Died { signal: Some(_), .. } => (
            ErrorKind::TooLarge,
            "reading the file needed more memory than the ingest limit; split it or save it as CSV or Parquet",
        ),
        _ => (ErrorKind::Internal, "this is a bug in Quarry; please report it with the file if you can"),
    };
    IngestError::new(kind, format!("reading stopped: {e}"), hint).in_file(file)
}
