//! The answer object every sink shows and stores, the result table as JSON,
//! and the narrative Quarry writes itself from executed results (privacy
//! modes `strict` and `sample`, where the model never sees values).

use arrow::array::Array;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use quarry_engine::QueryResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Privacy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// integer, float, boolean, date, datetime, text or other.
    #[serde(rename = "type")]
    pub dtype: String,
}

/// A result table as JSON: what the answer shows and exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// True when the query produced more rows than are kept here.
    pub truncated: bool,
}

fn type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "integer",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "integer",
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => "float",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(..) => "datetime",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        _ => "other",
    }
}

impl Table {
    pub fn from_result(r: &QueryResult) -> Table {
        let columns: Vec<Column> = r
            .schema
            .fields()
            .iter()
            .map(|f| Column { name: f.name().clone(), dtype: type_name(f.data_type()).into() })
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
                        match col.dtype.as_str() {
                            "integer" => s.parse::<i64>().map(Value::from).unwrap_or(Value::String(s)),
                            "float" => s
                                .parse::<f64>()
                                .ok()
                                .and_then(|v| serde_json::Number::from_f64(v).map(Value::Number))
                                .unwrap_or(Value::Null),
                            "boolean" => Value::Bool(s == "true"),
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
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{} ({})", c.name, c.dtype)).collect();
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

    /// The first `n` rows as pipe-separated text, for `full` mode.
    pub fn preview(&self, n: usize) -> String {
        let mut s = self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" | ");
        for r in self.rows.iter().take(n) {
            s.push('\n');
            s.push_str(&r.iter().map(|v| crate::context::data_str(&plain(v), 60)).collect::<Vec<_>>().join(" | "));
        }
        if self.rows.len() > n {
            s.push_str(&format!("\n… {} more rows", self.rows.len() - n));
        }
        s
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
}

/// What Quarry says about a result by itself, from the numbers the code
/// produced: no model involved, so nothing is invented.
pub fn describe(table: &Table) -> String {
    let n = table.rows.len();
    if n == 0 {
        return "The query returned no rows.".into();
    }
    if n == 1 {
        let parts: Vec<String> = table
            .columns
            .iter()
            .zip(&table.rows[0])
            .take(8)
            .map(|(c, v)| format!("{}: {}", c.name, plain(v)))
            .collect();
        return format!("{}.", parts.join(", "));
    }
    let mut s = format!("{n} rows{}.", if table.truncated { " (more exist; the table is truncated)" } else { "" });
    let key = table.columns.iter().position(|c| matches!(c.dtype.as_str(), "text" | "date" | "datetime"));
    let num = table.columns.iter().rposition(|c| matches!(c.dtype.as_str(), "integer" | "float"));
    if let (Some(k), Some(m)) = (key, num) {
        let vals: Vec<(f64, &Value)> = table.rows.iter().filter_map(|r| r[m].as_f64().map(|v| (v, &r[k]))).collect();
        if let (Some(hi), Some(lo)) =
            (vals.iter().max_by(|a, b| a.0.total_cmp(&b.0)), vals.iter().min_by(|a, b| a.0.total_cmp(&b.0)))
        {
            let col = &table.columns[m].name;
            s.push_str(&format!(
                " Highest {col}: {} ({}); lowest: {} ({}).",
                plain(hi.1),
                plain(&serde_json::json!(hi.0)),
                plain(lo.1),
                plain(&serde_json::json!(lo.0))
            ));
        }
    }
    s
}

/// The final narrative: the model's words (in `full` mode, written after
/// reading the result) or the model's words plus Quarry's own statement of
/// the numbers (in `strict`/`sample`, where the model saw no values).
pub fn narrative(model_text: &str, table: Option<&Table>, privacy: Privacy) -> String {
    let model_text = model_text.trim();
    match (privacy, table) {
        (Privacy::Full, _) if !model_text.is_empty() => model_text.to_string(),
        (_, Some(t)) if model_text.is_empty() => describe(t),
        (_, Some(t)) => format!("{model_text}\n\n{}", describe(t)),
        (_, None) => model_text.to_string(),
    }
}

/// A one-cell table for a plain value a Python step returned (a number, a
/// string), so the answer can state it from the result.
pub fn value_table(v: &Value) -> Option<Table> {
    match v {
        Value::Number(_) | Value::String(_) | Value::Bool(_) => Some(Table {
            columns: vec![Column { name: "value".into(), dtype: if v.is_number() { "float" } else { "text" }.into() }],
            rows: vec![vec![v.clone()]],
            truncated: false,
        }),
        Value::Object(o) if !o.contains_key("repr") && o.values().all(|x| x.is_number() || x.is_string()) => {
            Some(Table {
                columns: vec![
                    Column { name: "name".into(), dtype: "text".into() },
                    Column { name: "value".into(), dtype: "float".into() },
                ],
                rows: o.iter().map(|(k, x)| vec![Value::String(k.clone()), x.clone()]).collect(),
                truncated: false,
            })
        }
        _ => None,
    }
}

/// A PNG as base64, for JSON.
pub fn png_base64(png: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(png)
}
