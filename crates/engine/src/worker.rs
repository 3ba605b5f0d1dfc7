//! The SQL kernel across the process boundary.
//!
//! [`serve`] runs inside `quarry worker sql`: a loop that reads a request
//! frame (`{sql, limits}`) on stdin, runs it with [`crate::Engine`], and
//! answers with a JSON header and the result as an Arrow IPC payload. The
//! session stays warm between requests and is rebuilt only when the catalog
//! changed (SQLite's `data_version`), the live sources changed, or the
//! memory limit differs. After a
//! timeout the worker answers and exits: a worker that hit a limit is not
//! reused.
//!
//! [`SqlWorkers`] is the caller's side: a pool of such workers for one data
//! directory, implementing [`crate::SqlKernel`]. A worker that died is
//! reported as an [`EngineError`] and replaced on the next query.

use std::io::{Read, Write};
use std::path::Path;

use quarry_ingest::catalog::Catalog;
use quarry_sql::protocol::{Header, Request};
pub use quarry_sql::SqlWorkers;
use quarry_types::sources::Passwords;
use quarry_worker::Frame;

use crate::error::{EngineError, ErrorKind};
use crate::{Engine, QueryResult};

/// What a session was built for: the catalog's data_version, the live
/// sources' file and their passwords (its memory limit is kept beside it).
type Built = (i64, Vec<u8>, Passwords);

/// Inside the worker: answer requests until stdin closes, planning on
/// `target` (this process, or a Ballista cluster). Returns the exit code.
pub fn serve(data: &Path, target: &quarry_types::EngineTarget, input: &mut impl Read, out: &mut impl Write) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return reply_err(out, EngineError::internal(format!("starting the runtime: {e}"))),
    };
    let catalog = match Catalog::open(data) {
        Ok(c) => c,
        Err(e) => return reply_err(out, crate::error::from_ingest(e)),
    };
    let mut session: Option<(Built, usize, Engine)> = None;
    let mut code = 0;
    loop {
        let req: Request = match quarry_worker::read_request(input) {
            Ok(Some(f)) => match f.parse() {
                Ok(r) => r,
                Err(e) => return reply_err(out, EngineError::internal(e.to_string())),
            },
            Ok(None) => break,
            Err(e) => return reply_err(out, EngineError::internal(e.to_string())),
        };
        quarry_worker::arm_cpu_limit(&req.limits);
        if let Some(s) = req.test_source {
            code = reply_tested(out, rt.block_on(crate::sources::test(&req.passwords.apply(s), &req.limits)));
            if code == 3 {
                break;
            }
            continue;
        }
        let sources = std::fs::read(quarry_ingest::sources::path(data)).unwrap_or_default();
        let version = (catalog.data_version().unwrap_or(-1), sources, req.passwords.clone());
        let stale = match &session {
            Some((v, m, _)) => *v != version || *m != req.limits.memory_bytes,
            None => true,
        };
        if stale {
            session = None;
            match rt.block_on(Engine::open_on(target, &catalog, req.limits.clone(), &req.passwords)) {
                Ok(e) => session = Some((version, req.limits.memory_bytes, e)),
                Err(e) => {
                    reply_err(out, e);
                    continue;
                }
            }
        }
        let Some((_, _, engine)) = session.as_mut() else { continue };
        engine.set_limits(req.limits.clone());
        let result = rt.block_on(engine.query_with(&req.sql, &req.params));
        let timed_out = matches!(&result, Err(e) if e.kind == ErrorKind::Timeout);
        code = match result {
            Ok(r) => reply_ok(out, &r),
            Err(e) => reply_err(out, e),
        };
        if timed_out || code == 3 {
            break;
        }
    }
    // Do not wait for plan tasks still running after a timeout.
    rt.shutdown_background();
    code
}

fn reply_ok(out: &mut impl Write, r: &QueryResult) -> i32 {
    let header = Header { ok: true, rows: r.rows, truncated: r.truncated, error: None, tables: Vec::new() };
    let payload = match r.to_ipc() {
        Ok(p) => p,
        Err(e) => return reply_err(out, EngineError::internal(format!("encoding the result: {e}"))),
    };
    match Frame::json(&header).with_payload(payload).write_to(out) {
        Ok(()) => 0,
        Err(_) => 3,
    }
}

fn reply_tested(out: &mut impl Write, r: Result<Vec<quarry_types::LiveTable>, String>) -> i32 {
    let header = match r {
        Ok(tables) => Header { ok: true, rows: 0, truncated: false, error: None, tables },
        Err(e) => {
            Header { ok: false, rows: 0, truncated: false, error: Some(EngineError::internal(e)), tables: Vec::new() }
        }
    };
    match Frame::json(&header).write_to(out) {
        Ok(()) => 0,
        Err(_) => 3,
    }
}

fn reply_err(out: &mut impl Write, e: EngineError) -> i32 {
    let header = Header { ok: false, rows: 0, truncated: false, error: Some(e), tables: Vec::new() };
    match Frame::json(&header).write_to(out) {
        Ok(()) => 2,
        Err(_) => 3,
    }
}
