//! The narrative Quarry writes itself from executed results (privacy modes
//! `strict` and `sample`, where the model never sees values), and the
//! answer's pieces built from Python values. The answer's types live in
//! `quarry-types` and are re-exported here.

use serde_json::Value;

pub use quarry_types::answer::{plain, Answer, Column, DataVersion, Provenance, Step, Table};
use quarry_types::ColumnType;

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
    let key = table
        .columns
        .iter()
        .position(|c| matches!(c.dtype, Some(ColumnType::Text | ColumnType::Date | ColumnType::DateTime)));
    let num = table.columns.iter().rposition(Column::is_numeric);
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

/// The final narrative: the model's words (when it read the result, written after
/// reading it) or the model's words plus Quarry's own statement of
/// the numbers (where the model saw no values; the policy says which).
pub fn narrative(model_text: &str, table: Option<&Table>, model_read_result: bool) -> String {
    let model_text = model_text.trim();
    match (model_read_result, table) {
        (true, _) if !model_text.is_empty() => model_text.to_string(),
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
            columns: vec![Column::new("value", if v.is_number() { ColumnType::Float } else { ColumnType::Text })],
            rows: vec![vec![v.clone()]],
            truncated: false,
        }),
        Value::Object(o) if !o.contains_key("repr") && o.values().all(|x| x.is_number() || x.is_string()) => {
            Some(Table {
                columns: vec![Column::new("name", ColumnType::Text), Column::new("value", ColumnType::Float)],
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

/// The failed answer when the model kept answering without running code.
pub fn no_code_ran(attempts: usize) -> String {
    format!(
        "I could not answer this: the model replied {attempts} time{} without running any code, and an answer about the data must come from code Quarry ran. Ask again, or use a model that calls tools.",
        if attempts == 1 { "" } else { "s" }
    )
}
