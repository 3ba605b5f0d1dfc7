//! `quarry watch DIR`: files load as they arrive (and again when they
//! change), once their size and time have held still between two looks, so
//! a file still being copied is not read half-written; the analyses reading
//! a table that got a new version run again. Polling, so it works the same
//! on local disks and network shares.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quarry_ingest::catalog::Outcome;
use quarry_ingest::IngestOptions;

use crate::loading::catalog_workers;
use crate::{fail, printable, Bar};

/// What a file looked like at the last look.
type Seen = HashMap<PathBuf, (u64, SystemTime)>;

/// Files worth loading: not hidden, not a partial download or an editor's backup.
fn candidates(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(PathBuf, u64, SystemTime)> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let partial = name.starts_with('.')
                || name.starts_with("~$")
                || [".tmp", ".part", ".crdownload", "~"].iter().any(|s| name.ends_with(s));
            let meta = e.metadata().ok().filter(|m| m.is_file() && !partial)?;
            Some((e.path(), meta.len(), meta.modified().ok()?))
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn run(dir: &Path, data: &Path, every: f64, once: bool, opts: &IngestOptions) -> bool {
    if !dir.is_dir() {
        return fail(format!("{}: not a directory", dir.display()));
    }
    let workers = match catalog_workers(data) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut loaded: Seen = HashMap::new();
    let mut last_look: Seen = HashMap::new();
    eprintln!("watching {} (every {every} s; Ctrl-C stops)", dir.display());
    loop {
        let mut changed_tables = Vec::new();
        for (path, size, mtime) in candidates(dir) {
            let stable = once || last_look.get(&path) == Some(&(size, mtime));
            last_look.insert(path.clone(), (size, mtime));
            if !stable || loaded.get(&path) == Some(&(size, mtime)) {
                continue;
            }
            loaded.insert(path.clone(), (size, mtime));
            let shown = path.display().to_string();
            match Bar::around(&path, |bar| workers.load_as(&path, &shown, opts, None, bar, &|| false)) {
                Ok(report) => {
                    for l in &report.tables {
                        let what = match l.outcome {
                            Outcome::New => "new".to_string(),
                            Outcome::NewVersion => format!("version {}", l.table.version),
                            Outcome::Unchanged => continue,
                        };
                        println!("loaded {}: {} ({what}, {} rows)", printable(&shown), l.table.name, l.table.rows);
                        if l.outcome == Outcome::NewVersion {
                            changed_tables.push(l.table.name.clone());
                        }
                    }
                }
                Err(e) => eprintln!("{}: not loaded: {e}", printable(&shown)),
            }
        }
        crate::analysis::rerun_after_load(data, &changed_tables);
        if once {
            return true;
        }
        std::thread::sleep(Duration::from_secs_f64(every.max(0.2)));
    }
}
