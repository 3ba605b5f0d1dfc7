//! The SQL kernel across the process boundary.
//!
//! [`serve`] runs inside `quarry worker sql`: it reads one query on stdin,
//! runs it with [`crate::Engine`], and writes one JSON header line then the
//! result as an Arrow IPC stream on stdout. [`run_in_worker`] is the caller's
//! side: it starts the worker through `quarry-sandbox`'s launcher and turns
//! what comes back (or how the worker died) into a result or an [`EngineError`].
//! Results cross the boundary only as JSON and Arrow IPC.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use quarry_ingest::catalog::Catalog;
use quarry_sandbox::{Launcher, Limits, WorkerError};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, ErrorKind};
use crate::{Engine, QueryResult};

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    ok: bool,
    #[serde(default)]
    rows: usize,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    error: Option<EngineError>,
}

/// Inside the worker: answer one query. Returns the process exit code.
pub fn serve(data: &Path, limits: Limits, sql: &str, out: &mut impl Write) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return reply_err(out, EngineError::internal(format!("starting the runtime: {e}"))),
    };
    let result = rt.block_on(async {
        let catalog = Catalog::open(data).map_err(EngineError::from_ingest)?;
        let engine = Engine::open(&catalog, limits).await?;
        engine.query(sql).await
    });
    let code = match result {
        Ok(r) => reply_ok(out, &r),
        Err(e) => reply_err(out, e),
    };
    // Do not wait for plan tasks still running after a timeout.
    rt.shutdown_background();
    code
}

fn reply_ok(out: &mut impl Write, r: &QueryResult) -> i32 {
    let header = Header { ok: true, rows: r.rows, truncated: r.truncated, error: None };
    let mut write = || -> Result<(), Box<dyn std::error::Error>> {
        serde_json::to_writer(&mut *out, &header)?;
        out.write_all(b"\n")?;
        let mut w = StreamWriter::try_new(&mut *out, &r.schema)?;
        for b in &r.batches {
            w.write(b)?;
        }
        w.finish()?;
        out.flush()?;
        Ok(())
    };
    match write() {
        Ok(()) => 0,
        Err(_) => 3,
    }
}

fn reply_err(out: &mut impl Write, e: EngineError) -> i32 {
    let header = Header { ok: false, rows: 0, truncated: false, error: Some(e) };
    let _ = serde_json::to_writer(&mut *out, &header);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
    2
}

/// The caller's side: run one query in a fresh worker process under `limits`.
pub fn run_in_worker(launcher: &Launcher, data: &Path, sql: &str, limits: &Limits) -> Result<QueryResult, EngineError> {
    let limits_json = serde_json::to_string(limits).map_err(|e| EngineError::internal(e.to_string()))?;
    let args = vec!["sql".to_string(), "--data".into(), data.display().to_string(), "--limits".into(), limits_json];
    let out = launcher.run(&args, sql.as_bytes(), limits).map_err(worker_error)?;
    let nl = out.stdout.iter().position(|&b| b == b'\n').ok_or_else(|| {
        EngineError::internal(format!(
            "the worker sent no answer{}",
            out.stderr.lines().last().map(|l| format!(": {l}")).unwrap_or_default()
        ))
    })?;
    let header: Header = serde_json::from_slice(&out.stdout[..nl])
        .map_err(|e| EngineError::internal(format!("bad worker header: {e}")))?;
    if !header.ok {
        return Err(header.error.unwrap_or_else(|| EngineError::internal("the worker failed without saying why")));
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(&out.stdout[nl + 1..]), None)
        .map_err(|e| EngineError::internal(format!("bad worker result: {e}")))?;
    let schema = reader.schema();
    let batches =
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| EngineError::internal(format!("bad worker result: {e}")))?;
    Ok(QueryResult { schema, batches, rows: header.rows, truncated: header.truncated })
}

fn worker_error(e: WorkerError) -> EngineError {
    let kind = match e {
        WorkerError::Timeout(_) => ErrorKind::Timeout,
        // SIGXCPU: the CPU-time rlimit; any other signal is almost always the address-space limit.
        WorkerError::Died { signal: Some(24), .. } => ErrorKind::Timeout,
        WorkerError::Died { signal: Some(_), .. } => ErrorKind::MemoryLimit,
        _ => ErrorKind::Internal,
    };
    EngineError { kind, message: e.to_string(), hint: String::new(), refusal: None }
}
