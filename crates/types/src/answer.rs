//! The answer object every sink shows and stores, and the result table as
//! JSON (converted once from a query's Arrow batches).

use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::column::ColumnType;
use crate::privacy::Privacy;
use crate::sql::QueryResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// integer, float, boolean, date, datetime or text — the types ingest
    /// gives columns — or `None`, written "other" (lists, structs, …).
    #[serde(rename = "type", with = "crate::column::result_type")]
    pub dtype: Option<ColumnType>,
}

impl Column {
    pub fn new(name: impl Into<String>, dtype: ColumnType) -> Column {
        Column { name: name.into(), dtype: Some(dtype) }
    }

    pub fn is_numeric(&self) -> bool {
        self.dtype.is_some_and(ColumnType::is_numeric)
    }

    /// The type's name as shown ("other" for none).
    pub fn type_name(&self) -> &'static str {
        self.dtype.map_or("other", ColumnType::as_str)
    }
}

/// A result table as JSON: what the answer shows and exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// True when the query produced more rows than are kept here.
    pub truncated: bool,
}

impl Table {
    pub fn from_result(r: &QueryResult) -> Table {
        let columns: Vec<Column> = r
            .schema
            .fields()
            .iter()
            .map(|f| Column { name: f.name().clone(), dtype: ColumnType::from_arrow(f.data_type()) })
            .collect();
        let mut rows = Vec::with_capacity(r.rows);
        let opts = FormatOptions::default().with_null("");
        for b in &r.batches {
            let fmts: Vec<Option<ArrayFormatter>> =
                b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).ok()).collect();
            for i in 0..b.num_rows() {
                let row = b
                    .columns()
                    .iter()
                    .zip(&fmts)
                    .zip(&columns)
                    .map(|((c, f), col)| {
                        if c.is_null(i) {
                            return Value::Null;
                        }
                        let s = f.as_ref().map(|f| f.value(i).to_string()).unwrap_or_default();
                        match col.dtype {
                            Some(ColumnType::Integer) => s.parse::<i64>().map(Value::from).unwrap_or(Value::String(s)),
                            Some(ColumnType::Float) => s
                                .parse::<f64>()
                                .ok()
                                .and_then(|v| serde_json::Number::from_f64(v).map(Value::Number))
                                .unwrap_or(Value::Null),
                            Some(ColumnType::Boolean) => Value::Bool(s == "true"),
                            _ => Value::String(s),
                        }
                    })
                    .collect();
                rows.push(row);
            }
        }
        Table { columns, rows, truncated: r.truncated }
    }

    /// The shape alone: what the model sees in `strict` and `sample` modes.
    pub fn shape(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{} ({})", c.name, c.type_name())).collect();
        format!(
            "{} row{}{} × {} column{}: {}",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            if self.truncated { " (truncated)" } else { "" },
            self.columns.len(),
            if self.columns.len() == 1 { "" } else { "s" },
            cols.join(", ")
        )
    }
}

/// A value as a person reads it: numbers rounded sensibly, nulls empty.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let s = if f.abs() >= 100.0 { format!("{f:.1}") } else { format!("{f:.3}") };
                let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
                if s.is_empty() || s == "-" {
                    "0".into()
                } else {
                    s
                }
            }
        },
        other => other.to_string(),
    }
}

/// One piece of code that ran (or failed) on the way to the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub language: String,
    pub code: String,
    pub ok: bool,
    /// Rows returned, or the error shown to the user.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataVersion {
    pub table: String,
    pub version: u32,
    pub content_hash: String,
}

/// Enough to reproduce an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub model: String,
    pub privacy: Privacy,
    /// BLAKE3 of the first request sent to the model (system prompt, context, question).
    pub prompt_hash: String,
    pub data_versions: Vec<DataVersion>,
    pub llm_ms: u64,
    pub exec_ms: u64,
    pub total_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Which SQL engine ran the code ("DataFusion on this machine",
    /// "Ballista cluster at HOST:PORT"); empty in answers stored before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    /// True when the question was answered from executed code.
    pub ok: bool,
    /// The narrative.
    pub answer: String,
    /// The code that produced `table` (or the last code tried).
    pub code: String,
    pub language: String,
    /// Attempts the final step took (1 = first try).
    pub attempts: usize,
    pub steps: Vec<Step>,
    pub table: Option<Table>,
    /// A Vega-Lite spec bound to `table`.
    pub chart: Option<Value>,
    /// What Python code printed (empty for SQL).
    #[serde(default)]
    pub output: String,
    /// Figures drawn by Python code, PNG in base64.
    #[serde(default)]
    pub figures: Vec<String>,
    pub provenance: Provenance,
    #[serde(default)]
    pub cached: bool,
    /// The narrative as the model wrote it, with its slots (`{row 1 tpr}`)
    /// unfilled, when it has any: a saved analysis fills it again from each
    /// new result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    /// The workspace definitions the answer used, each as a line for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<String>,
    /// Set when the analyst asked the user a question instead of answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clarify: Option<Clarification>,
}

/// A question the analyst asks back when the user's question is ambiguous:
/// the run resumes with the answer, the next message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clarification {
    pub question: String,
    /// The choices offered (the user may also write their own).
    pub options: Vec<String>,
}
