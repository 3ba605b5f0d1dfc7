//! The bridge between the Python kernel and the SQL engine: the kernel's
//! `df`, `dfs[...]` and `sql()` are answered here, outside the sandbox, by
//! the [`SqlKernel`] (itself sandboxed), as Arrow IPC streams.

use std::ops::Deref;

use quarry_sandbox::python::{ArrowData, DataAccess, PyTable};
use quarry_types::sql::quoted;
use quarry_types::{Limits, QueryResult, SqlKernel};

use crate::answer::Table;

/// Rows a kernel may pull from one table or one `sql()` call.
pub const MAX_ROWS_TO_PYTHON: usize = 2_000_000;

/// [`DataAccess`] over a [`SqlKernel`] (owned, `Arc`, or borrowed, `&`).
pub struct EngineData<K = std::sync::Arc<dyn SqlKernel>> {
    kernel: K,
    limits: Limits,
}

impl<'k, K: Deref<Target = dyn SqlKernel + 'k> + Send + Sync> EngineData<K> {
    /// `limits` bound each query (time, memory); rows and bytes are raised
    /// to what a DataFrame may reasonably hold.
    pub fn new(kernel: K, limits: &Limits) -> EngineData<K> {
        let limits = Limits {
            max_rows: MAX_ROWS_TO_PYTHON,
            max_result_bytes: limits.max_result_bytes.max(512 << 20),
            ..limits.clone()
        };
        EngineData { kernel, limits }
    }

    fn run(&self, sql: &str) -> Result<ArrowData, String> {
        let r = self.kernel.query(sql, &self.limits).map_err(|e| e.to_string())?;
        Ok(ArrowData { ipc: r.to_ipc().map_err(|e| e.to_string())?, rows: r.rows, truncated: r.truncated })
    }
}

impl<'k, K: Deref<Target = dyn SqlKernel + 'k> + Send + Sync> DataAccess for EngineData<K> {
    fn table(&self, name: &str) -> Result<ArrowData, String> {
        self.run(&format!("SELECT * FROM {}", quoted(name)))
    }

    fn sql(&self, sql: &str) -> Result<ArrowData, String> {
        self.run(sql)
    }
}

/// A table returned by Python code, decoded from its Arrow stream.
pub fn decode(t: &PyTable) -> Result<QueryResult, String> {
    QueryResult::from_ipc(&t.ipc, t.truncated).map_err(|e| e.to_string())
}

/// The same, as the analyst's [`Table`].
pub fn table_of(t: &PyTable) -> Option<Table> {
    decode(t).ok().map(|r| Table::from_result(&r))
}
