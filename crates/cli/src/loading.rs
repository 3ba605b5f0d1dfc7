//! Loading files into a catalog through ingest workers, for every command
//! that loads (`load`, `ask`, `chat`, `sql`, `python`): the catalog repaired
//! first, one progress bar per file.

use std::path::{Path, PathBuf};

use quarry_ingest::catalog::Catalog;
use quarry_ingest::worker::IngestWorkers;
use quarry_ingest::IngestOptions;

use crate::{fail, printable, Bar};

/// Files are parsed in an ingest worker process, never in this one.
pub(crate) fn ingest_workers(data: &Path, opts: &IngestOptions) -> Result<IngestWorkers, quarry_sandbox::WorkerError> {
    let launcher = quarry_sandbox::Launcher::current()?;
    Ok(IngestWorkers::new(launcher, data, opts.worker_limits(), 1))
}

/// One SQL worker over `data`'s catalog, under the default limits, on the
/// engine `QUARRY_ENGINE` or `quarry.toml` names (else local): what the
/// commands that run Quarry's own queries (insights, analyses, packs,
/// definition checks) use.
pub(crate) fn sql_worker(data: &Path) -> Result<quarry_engine::worker::SqlWorkers, String> {
    let launcher = quarry_sandbox::Launcher::current().map_err(|e| e.to_string())?;
    let target = crate::engine::from_env()?;
    Ok(quarry_engine::worker::SqlWorkers::on(&target, launcher, data, quarry_sandbox::Limits::default(), 1))
}

/// Ingest workers loading into `data`'s catalog, repaired first.
pub(crate) fn catalog_workers(data: &Path, opts: &IngestOptions) -> Result<IngestWorkers, String> {
    open_repaired(data).map_err(|e| e.to_string())?;
    ingest_workers(data, opts).map_err(|e| e.to_string())
}

/// Open the catalog, clearing what an interrupted load left behind (with a
/// line saying so).
pub(crate) fn open_repaired(data: &Path) -> quarry_ingest::Result<Catalog> {
    let mut cat = Catalog::open(data)?;
    let removed = cat.repair()?;
    if !removed.is_empty() {
        eprintln!(
            "note: {}: cleared what an interrupted load left: {}",
            data.display(),
            printable(&removed.join(", "))
        );
    }
    Ok(cat)
}

/// Load files through an ingest worker (stopping at the first failure).
pub(crate) fn load_files(files: &[PathBuf], data: &Path, opts: &IngestOptions) -> bool {
    load_files_named(files, data, opts).is_some()
}

/// The same, returning the names of the tables the files became.
pub(crate) fn load_files_named(files: &[PathBuf], data: &Path, opts: &IngestOptions) -> Option<Vec<String>> {
    if files.is_empty() {
        return Some(Vec::new());
    }
    let workers = match catalog_workers(data, opts) {
        Ok(w) => w,
        Err(e) => {
            fail(e);
            return None;
        }
    };
    let mut names = Vec::new();
    for f in files {
        match Bar::around(f, |bar| workers.load(f, opts, bar)) {
            Ok(report) => names.extend(report.tables.into_iter().map(|l| l.table.name)),
            Err(e) => {
                fail(e);
                return None;
            }
        }
    }
    Some(names)
}
