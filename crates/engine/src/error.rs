//! Errors the model can fix, made from DataFusion's: refusals say which rule;
//! unknown names come with the closest names (by edit distance over names and
//! labels) and the table's columns. The error type itself
//! ([`EngineError`], with its redaction) is `quarry-types`'; this module
//! classifies DataFusion's typed errors — `SchemaError` variants and
//! `ResourcesExhausted` — and reads the message only where DataFusion has no
//! type for the case (a missing table is a plan error in words).

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;

pub use quarry_types::sql::{EngineError, ErrorKind};
use quarry_types::TableInfo;

const MEMORY_HINT: &str =
    "the query needs more memory than its limit: aggregate earlier, select fewer columns, or avoid large joins";

/// The catalog could not be read.
pub fn from_ingest(e: quarry_ingest::IngestError) -> EngineError {
    EngineError::new(ErrorKind::Catalog, e.to_string(), "")
}

/// A DataFusion error as one the model can fix.
pub fn from_datafusion(e: DataFusionError, tables: &[TableInfo]) -> EngineError {
    let root = e.find_root();
    // One line: DataFusion's messages may span several.
    let msg = root.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    match root {
        DataFusionError::ResourcesExhausted(_) => EngineError::new(ErrorKind::MemoryLimit, msg, MEMORY_HINT),
        DataFusionError::External(e) if e.downcast_ref::<crate::sources::RowCapReached>().is_some() => {
            let table = e.downcast_ref::<crate::sources::RowCapReached>().map(|c| c.table.as_str()).unwrap_or("");
            let hint = format!(
                "read fewer rows of {table}: add WHERE conditions on its columns (they run in the database); to work \
                 on all of it, snapshot it (quarry snapshot {table}) and query the snapshot"
            );
            EngineError::new(ErrorKind::LiveRowCap, msg, hint)
        }
        DataFusionError::SchemaError(s, _) => from_schema_error(s, msg, tables),
        _ => from_message(msg, tables),
    }
}

fn from_schema_error(s: &SchemaError, msg: String, tables: &[TableInfo]) -> EngineError {
    match s {
        SchemaError::FieldNotFound { field, .. } => {
            EngineError::new(ErrorKind::UnknownName, msg, column_hint(field.name(), tables))
        }
        SchemaError::AmbiguousReference { field } => ambiguous(field.name(), msg, tables),
        _ => EngineError::new(ErrorKind::Invalid, msg, ""),
    }
}

/// Cases DataFusion reports in words only (and errors that arrive wrapped in
/// text, e.g. from an execution task): matched on the message.
fn from_message(msg: String, tables: &[TableInfo]) -> EngineError {
    if msg.contains("Resources exhausted") || msg.contains("ResourcesExhausted") {
        return EngineError::new(ErrorKind::MemoryLimit, msg, MEMORY_HINT);
    }
    if let Some(name) = quoted_after(&msg, "table '").or_else(|| quoted_after(&msg, "table \"")) {
        if msg.contains("not found") {
            let hint = table_hint(&name, tables);
            return EngineError::new(ErrorKind::UnknownName, msg, hint);
        }
    }
    if msg.contains("No field named") {
        let name = quoted_after(&msg, "No field named ").unwrap_or_default();
        let hint = column_hint(&name, tables);
        return EngineError::new(ErrorKind::UnknownName, msg, hint);
    }
    if msg.contains("Ambiguous reference") {
        let name = quoted_after(&msg, "Ambiguous reference to unqualified field ").unwrap_or_default();
        return ambiguous(&name, msg, tables);
    }
    if msg.contains("Cannot coerce")
        || msg.contains("type") && msg.contains("coerc")
        || msg.contains("Cannot infer common")
    {
        let types: Vec<String> = tables
            .iter()
            .map(|t| format!("{}({})", t.name, t.columns.iter().map(|c| c.0.clone()).collect::<Vec<_>>().join(", ")))
            .collect();
        let hint =
            format!("check the column types; cast with CAST(x AS DOUBLE) or try_cast. Tables: {}", types.join("; "));
        return EngineError::new(ErrorKind::Invalid, msg, hint);
    }
    EngineError::new(ErrorKind::Invalid, msg, "")
}

fn ambiguous(name: &str, msg: String, tables: &[TableInfo]) -> EngineError {
    let name = name.trim_matches('"');
    let owners: Vec<String> = tables
        .iter()
        .filter(|t| t.columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|t| format!("{}.{name}", t.name))
        .collect();
    EngineError::new(ErrorKind::Invalid, msg, format!("qualify the column: one of {}", owners.join(", ")))
}

/// The identifier right after `prefix`, without quotes or qualifiers.
fn quoted_after(msg: &str, prefix: &str) -> Option<String> {
    let i = msg.find(prefix)? + prefix.len();
    let rest = &msg[i..];
    let name: String =
        rest.trim_start_matches(['\'', '"']).chars().take_while(|c| !matches!(c, '\'' | '"' | ' ' | ',')).collect();
    let name = name.rsplit('.').next().unwrap_or("").to_string();
    (!name.is_empty()).then_some(name)
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<&'a str> {
    let n = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .map(|(c, label)| {
            let s = strsim::jaro_winkler(&n, &c.to_lowercase()).max(strsim::jaro_winkler(&n, &label.to_lowercase()));
            (s, c)
        })
        .collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    scored.into_iter().filter(|(s, _)| *s > 0.6).take(3).map(|(_, c)| c).collect()
}

fn table_hint(name: &str, tables: &[TableInfo]) -> String {
    let near = closest(name, tables.iter().map(|t| (t.name.as_str(), t.name.as_str())));
    let all: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    match near.first() {
        Some(best) => format!("did you mean {best}? Tables: {}", all.join(", ")),
        None => format!("tables: {}", all.join(", ")),
    }
}

fn column_hint(name: &str, tables: &[TableInfo]) -> String {
    let cols = tables.iter().flat_map(|t| t.columns.iter().map(|(n, l)| (n.as_str(), l.as_str())));
    let near = closest(name, cols);
    let listing: Vec<String> = tables
        .iter()
        .map(|t| format!("{}({})", t.name, t.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ")))
        .collect();
    match near.is_empty() {
        false => format!("closest columns: {}. {}", near.join(", "), listing.join("; ")),
        true => listing.join("; "),
    }
}
