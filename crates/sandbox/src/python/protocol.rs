//! The frames between Quarry and `python/kernel.py`, typed: what Quarry
//! sends ([`ToKernel`], [`DataReply`]) and what the kernel sends
//! ([`FromKernel`]). Each is one JSON header; tables and figures travel as
//! the frame's binary payload (Arrow IPC, PNG). `kernel.py` is the other
//! half and uses the same names.

use serde::{Deserialize, Serialize};

use super::PyFailure;

/// A request to the kernel.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum ToKernel<'a> {
    /// Run code; the kernel answers with frames until [`FromKernel::Done`].
    Run {
        code: &'a str,
        tables: &'a [String],
        /// Variables set before the code runs.
        #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
        params: serde_json::Map<String, serde_json::Value>,
        limits: RunLimits,
    },
}

/// What the kernel itself enforces for one run.
#[derive(Debug, Serialize)]
pub(crate) struct RunLimits {
    pub max_rows: usize,
    pub max_output: usize,
    pub max_figures: usize,
    pub cpu_seconds: u64,
}

/// A frame from the kernel.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum FromKernel {
    /// Started, walls up, packages imported.
    Ready {},
    /// A result table (payload: Arrow IPC).
    Table {
        #[serde(default = "table_name")]
        name: String,
        #[serde(default)]
        rows: usize,
        #[serde(default)]
        truncated: bool,
    },
    /// A figure (payload: PNG).
    Figure {},
    /// Code called `sql(…)`: Quarry answers with a [`DataReply`].
    Sql { sql: String },
    /// Code used `df` or `dfs[name]`: Quarry answers with a [`DataReply`].
    TableRequest { name: String },
    /// The run ended.
    Done(Done),
}

fn table_name() -> String {
    "table".into()
}

/// How a run ended.
#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    pub ok: bool,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stdout_dropped: u64,
    pub value: Option<serde_json::Value>,
    pub error: Option<PyFailure>,
    #[serde(default)]
    pub started_ns: u64,
    #[serde(default)]
    pub elapsed_ms: f64,
    #[serde(default)]
    pub recycle: bool,
}

/// Quarry's answer to a data request (payload: Arrow IPC when `ok`).
#[derive(Debug, Serialize)]
pub(crate) struct DataReply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DataReply {
    pub fn rows(rows: usize, truncated: bool) -> DataReply {
        DataReply { ok: true, rows: Some(rows), truncated: Some(truncated), error: None }
    }

    pub fn failed(error: String) -> DataReply {
        DataReply { ok: false, rows: None, truncated: None, error: Some(error) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_as_kernel_py_writes_them() {
        let f: FromKernel =
            serde_json::from_str(r#"{"kind": "ready", "import_ms": 812.5, "python": "3.13.5"}"#).unwrap();
        assert!(matches!(f, FromKernel::Ready {}));
        let f: FromKernel = serde_json::from_str(r#"{"kind": "figure", "n": 1}"#).unwrap();
        assert!(matches!(f, FromKernel::Figure {}));
        let f: FromKernel =
            serde_json::from_str(r#"{"kind": "done", "ok": false, "error": {"type": "Protocol", "message": "x", "line": null, "source": null, "hint": null}}"#)
                .unwrap();
        assert!(matches!(f, FromKernel::Done(Done { ok: false, error: Some(_), .. })));
        let run = ToKernel::Run {
            code: "1",
            tables: &[],
            params: Default::default(),
            limits: RunLimits { max_rows: 1, max_output: 2, max_figures: 3, cpu_seconds: 4 },
        };
        assert_eq!(serde_json::to_value(&run).unwrap()["op"], "run");
        assert_eq!(serde_json::to_string(&DataReply::failed("no".into())).unwrap(), r#"{"ok":false,"error":"no"}"#);
    }
}
