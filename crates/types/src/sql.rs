//! The seam SQL runs behind: [`SqlKernel`] (DataFusion in sandboxed workers
//! today, a Ballista cluster tomorrow), its [`QueryResult`], and the
//! [`EngineError`] the model can fix — whose redaction is a property of the
//! type: [`EngineError::redacted`] never contains anything taken from cell
//! values, only from the schema.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// A table as the engine knows it: for error hints and for the agent's context.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    /// (name, label) per column.
    pub columns: Vec<(String, String)>,
}

/// A query's result, capped by [`Limits`].
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Rows returned in `batches`.
    pub rows: usize,
    /// True when the query produced more than `max_rows` rows or `max_result_bytes`.
    pub truncated: bool,
}

impl QueryResult {
    /// The batches as one Arrow IPC stream: how results cross a process
    /// boundary (SQL worker → caller → Python kernel).
    pub fn to_ipc(&self) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut out = Vec::new();
        {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &self.schema)?;
            for b in &self.batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Ok(out)
    }

    /// A result read back from an Arrow IPC stream; `rows` counts what it holds.
    pub fn from_ipc(ipc: &[u8], truncated: bool) -> Result<QueryResult, arrow::error::ArrowError> {
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)?;
        let schema = reader.schema();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        Ok(QueryResult { schema, batches, rows, truncated })
    }
}

/// A name as a quoted SQL identifier.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// (signature, what it does) for every function Quarry adds to SQL: the
/// engine registers exactly these (its tests hold it) and the prompt lists
/// them.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("safe_div(a, b)", "a / b as a float; NULL when b is 0 or NULL (never an error or infinity)"),
    ("pct(a, b)", "100 * a / b; NULL when b is 0 or NULL — e.g. test positivity rate pct(positive, tested)"),
    ("excel_date(n)", "the date of an Excel serial day number (1900 system: 45292 → 2024-01-01)"),
    ("year_month(d)", "'YYYY-MM' of a date or timestamp, for monthly grouping"),
    ("year_quarter(d)", "'YYYY-Qn' of a date or timestamp, for quarterly grouping"),
];

pub use crate::engine_target::{ClusterStore, EngineTarget};

/// Where SQL runs. The agent and the sinks depend on this, not on a process
/// model: `quarry_sql::SqlWorkers` runs queries in warm worker processes,
/// on this machine's DataFusion or on a Ballista cluster ([`EngineTarget`]).
pub trait SqlKernel: Send + Sync {
    /// Check, plan and run one query under `limits`.
    fn query(&self, sql: &str, limits: &Limits) -> Result<QueryResult, EngineError>;

    /// The same with values bound to its named placeholders (`$state`): the
    /// values are data, never SQL text. A kernel that cannot bind refuses.
    fn query_with(&self, sql: &str, params: &[Param], limits: &Limits) -> Result<QueryResult, EngineError> {
        if params.is_empty() {
            return self.query(sql, limits);
        }
        Err(EngineError::internal("this SQL kernel cannot bind parameters"))
    }

    /// Which engine answers, for people ("DataFusion on this machine").
    fn engine(&self) -> String {
        EngineTarget::Local.describe()
    }
}

/// A value bound to the placeholder `$name` of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    /// A string, number, boolean or null.
    pub value: serde_json::Value,
}

/// Which rule refused a query. Stable names, so the agent can explain them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The text is not SQL the parser understands.
    Syntax,
    /// No statement at all.
    Empty,
    /// More than one statement (`SELECT 1; DROP TABLE t`).
    StackedStatements,
    /// A statement that is not a read-only query.
    NotAQuery,
    /// Planning found DDL, DML or a statement (layer 2).
    PlanNotReadOnly,
}

impl Rule {
    pub const ALL: [Rule; 5] =
        [Rule::Syntax, Rule::Empty, Rule::StackedStatements, Rule::NotAQuery, Rule::PlanNotReadOnly];

    /// The rule's stable name, as serialised: what users and the model read.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::Empty => "empty",
            Rule::StackedStatements => "stacked_statements",
            Rule::NotAQuery => "not_a_query",
            Rule::PlanNotReadOnly => "plan_not_read_only",
        }
    }
}

/// A refused query, with the rule, where, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub rule: Rule,
    /// What was refused, in one sentence.
    pub message: String,
    /// 1-based line and column where the problem starts, when known.
    pub at: Option<(u64, u64)>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused ({}): {}", self.rule.as_str(), self.message)?;
        if let Some((l, c)) = self.at {
            write!(f, " at line {l}, column {c}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The guard or the plan check refused the query.
    Refused,
    /// A table or column name that does not exist.
    UnknownName,
    /// The query is well-formed but wrong (types, ambiguity, syntax DataFusion rejects).
    Invalid,
    /// The memory pool was exhausted.
    MemoryLimit,
    /// The wall-time limit was reached; the query was cancelled.
    Timeout,
    /// The result was larger than the byte cap.
    ResultTooLarge,
    /// A scan of a live database table reached the rows one query may read
    /// from it (`Limits::max_live_rows`).
    LiveRowCap,
    /// Reading the catalog failed.
    Catalog,
    /// A bug in Quarry.
    Internal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineError {
    pub kind: ErrorKind,
    /// The message, which may quote values from the query or the data.
    pub message: String,
    /// What to do: closest names, the table's columns, the limit hit.
    /// Built only from schema names and labels, never from cell values.
    pub hint: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refusal: Option<Refusal>,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " — {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for EngineError {}

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, hint: impl Into<String>) -> Self {
        EngineError { kind, message: message.into(), hint: hint.into(), refusal: None }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message, "this is a bug in Quarry")
    }

    pub fn refused(r: Refusal) -> Self {
        EngineError {
            kind: ErrorKind::Refused,
            message: r.to_string(),
            hint: "write exactly one read-only query (SELECT, WITH, VALUES or EXPLAIN) over the loaded tables".into(),
            refusal: Some(r),
        }
    }

    pub fn timeout(limit: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("the query ran longer than {} s and was cancelled", limit.as_secs_f64()),
            "aggregate earlier, filter more, or avoid joins that multiply rows",
        )
    }

    /// The error with nothing but its kind and schema-derived hint: safe to
    /// send to an LLM in privacy mode `strict`.
    pub fn redacted(&self) -> String {
        let what = match self.kind {
            ErrorKind::Refused => match &self.refusal {
                Some(r) => format!("refused by rule {}", r.rule.as_str()),
                None => "refused".into(),
            },
            ErrorKind::UnknownName => "a table or column name does not exist".into(),
            ErrorKind::Invalid => "the query is invalid (types, ambiguity or syntax)".into(),
            ErrorKind::MemoryLimit => "the query exceeded its memory limit".into(),
            ErrorKind::Timeout => "the query exceeded its time limit".into(),
            ErrorKind::ResultTooLarge => "the result exceeded the size cap".into(),
            ErrorKind::LiveRowCap => "the query read more rows of a live table than one query may".into(),
            ErrorKind::Catalog => "the catalog could not be read".into(),
            ErrorKind::Internal => "an internal error occurred".into(),
        };
        if self.hint.is_empty() {
            what
        } else {
            format!("{what} — {}", self.hint)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_their_serialised_names() {
        for r in Rule::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
