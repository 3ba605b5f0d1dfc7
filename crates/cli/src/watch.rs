//! `quarry watch DIR`: files load as they arrive (and again when they
//! change), as `quarry_ingest::watch::Scanner` hands them out; the analyses
//! reading a table that got a new version run again.

use std::path::Path;
use std::time::Duration;

use quarry_ingest::catalog::Outcome;
use quarry_ingest::watch::Scanner;
use quarry_ingest::IngestOptions;

use crate::loading::catalog_workers;
use crate::{fail, printable, Bar};

pub(crate) fn run(dir: &Path, data: &Path, every: f64, once: bool, opts: &IngestOptions) -> bool {
    if !dir.is_dir() {
        return fail(format!("{}: not a directory", dir.display()));
    }
    let workers = match catalog_workers(data, opts) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut scanner = Scanner::new();
    eprintln!("watching {} (every {every} s; Ctrl-C stops)", dir.display());
    loop {
        let (mut changed_tables, mut new_tables) = (Vec::new(), Vec::new());
        for path in scanner.ready(dir, !once) {
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
                        match l.outcome {
                            Outcome::NewVersion => changed_tables.push(l.table.name.clone()),
                            _ => new_tables.push(l.table.name.clone()),
                        }
                    }
                }
                Err(e) => eprintln!("{}: not loaded: {e}", printable(&shown)),
            }
        }
        crate::analysis::rerun_after_load(data, &changed_tables, &new_tables);
        if once {
            return true;
        }
        std::thread::sleep(Duration::from_secs_f64(every.max(0.2)));
    }
}
