//! `quarry connect`: a workspace's live databases — added after a test
//! connection (its tables listed and described), listed with their
//! passwords hidden, removed. Stored by `quarry_ingest::sources` (0600);
//! read by the engine (`quarry_engine::sources`) as a schema per
//! connection. `quarry snapshot`: a live table copied into the catalog as a
//! versioned table, for answers that must be reproducible.

use std::path::Path;

use quarry_ingest::sources;
use quarry_ingest::IngestOptions;
use quarry_types::{Limits, Source, SqlKernel};

use crate::fail;

pub(crate) struct Request {
    pub name: Option<String>,
    pub url: Option<String>,
    pub password_env: Option<String>,
    pub list: bool,
    pub remove: Option<String>,
}

fn list(data: &Path) -> bool {
    match sources::load(data) {
        Ok(all) if all.is_empty() => {
            eprintln!("no connections yet: `quarry connect NAME postgres://USER@HOST/DB` adds one");
            true
        }
        Ok(all) => {
            for s in all {
                let pw = s.password_env.as_ref().map(|v| format!(" (password from ${v})")).unwrap_or_default();
                println!("{}  {}  {}{pw}", s.name, s.kind.as_str(), s.redacted_url());
            }
            true
        }
        Err(e) => fail(e),
    }
}

fn remove(data: &Path, name: &str) -> bool {
    match sources::remove(data, name) {
        Ok(true) => {
            eprintln!("removed connection {name}");
            true
        }
        Ok(false) => fail(format!("there is no connection '{name}' (see `quarry connect --list`)")),
        Err(e) => fail(e),
    }
}

fn add(data: &Path, source: Source) -> bool {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let tables = match rt.block_on(quarry_engine::sources::test(&source, &Limits::default())) {
        Ok(t) => t,
        Err(e) => return fail(format!("not saved: {e}")),
    };
    // The workspace's catalog, empty until files are loaded: the SQL workers
    // open it and may not write files themselves.
    if let Err(e) = crate::loading::open_repaired(data) {
        return fail(e);
    }
    if let Err(e) = sources::add(data, &source, &tables) {
        return fail(e);
    }
    eprintln!(
        "connected {} ({}, read-only): {} table(s), queried as {}.TABLE",
        source.name,
        source.redacted_url(),
        tables.len(),
        source.name
    );
    for t in tables {
        println!("{}", t.name);
    }
    true
}

pub(crate) fn run(r: Request, data: &Path) -> bool {
    if r.list {
        return list(data);
    }
    if let Some(name) = &r.remove {
        return remove(data, name);
    }
    let (Some(name), Some(url)) = (r.name, r.url) else {
        return fail("write `quarry connect NAME URL` (postgres://USER@HOST:5432/DATABASE, mysql://USER@HOST:3306/DATABASE or sqlite:PATH), --list or --remove NAME");
    };
    match Source::parse(&name, &url, r.password_env) {
        Ok(s) => add(data, s),
        Err(e) => fail(e),
    }
}

pub(crate) struct Snapshot {
    pub table: String,
    pub filter: Option<String>,
    pub name: Option<String>,
    pub max_rows: usize,
}

pub(crate) fn snapshot(s: &Snapshot, data: &Path, opts: &IngestOptions) -> bool {
    let (sql, name) = match sources::snapshot_query(data, &s.table, s.filter.as_deref(), s.name.as_deref()) {
        Ok(x) => x,
        Err(e) => return fail(format!("{e} (see `quarry connect --list`)")),
    };
    let workers = match crate::loading::sql_worker(data) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let r = match workers.query(&sql, &sources::snapshot_limits(s.max_rows)) {
        Ok(r) => r,
        Err(e) => return fail(format!("snapshot of {}: {e}", s.table)),
    };
    let path = match sources::write_snapshot(data, &s.table, &name, &r, s.max_rows) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let at = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let picked = s.filter.as_deref().map(|w| format!(" where {w}")).unwrap_or_default();
    eprintln!("snapshot of {}{picked} at {at}: {} rows → table {name}", s.table, r.rows);
    crate::loading::load_files_named(&[path], data, opts).is_some()
}
