//! Errors the model can fix: refusals say which rule; unknown names come with
//! the closest names (by edit distance over names and labels) and the
//! table's columns. Redaction is a property of the type: [`EngineError::redacted`]
//! never contains anything taken from cell values, only from the schema.

use datafusion::error::DataFusionError;
use serde::{Deserialize, Serialize};

use crate::guard::Refusal;
use crate::TableInfo;

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
    fn new(kind: ErrorKind, message: impl Into<String>, hint: impl Into<String>) -> Self {
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

    pub fn from_ingest(e: quarry_ingest::IngestError) -> Self {
        Self::new(ErrorKind::Catalog, e.to_string(), "")
    }

    /// The error with nothing but its kind and schema-derived hint: safe to
    /// send to an LLM in privacy mode `strict`.
    pub fn redacted(&self) -> String {
        let what = match self.kind {
            ErrorKind::Refused => match &self.refusal {
                Some(r) => format!("refused by rule {:?}", r.rule),
                None => "refused".into(),
            },
            ErrorKind::UnknownName => "a table or column name does not exist".into(),
            ErrorKind::Invalid => "the query is invalid (types, ambiguity or syntax)".into(),
            ErrorKind::MemoryLimit => "the query exceeded its memory limit".into(),
            ErrorKind::Timeout => "the query exceeded its time limit".into(),
            ErrorKind::ResultTooLarge => "the result exceeded the size cap".into(),
            ErrorKind::Catalog => "the catalog could not be read".into(),
            ErrorKind::Internal => "an internal error occurred".into(),
        };
        if self.hint.is_empty() {
            what
        } else {
            format!("{what} — {}", self.hint)
        }
    }

    pub fn from_datafusion(e: DataFusionError, tables: &[TableInfo]) -> Self {
        // One line: DataFusion's messages may span several.
        let msg = e.find_root().to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if msg.contains("Resources exhausted") || msg.contains("ResourcesExhausted") {
            return Self::new(
                ErrorKind::MemoryLimit,
                msg,
                "the query needs more memory than its limit: aggregate earlier, select fewer columns, or avoid large joins",
            );
        }
        if let Some(name) = quoted_after(&msg, "table '").or_else(|| quoted_after(&msg, "table \"")) {
            if msg.contains("not found") {
                return Self::new(ErrorKind::UnknownName, msg, table_hint(&name, tables));
            }
        }
        if msg.contains("No field named") || msg.contains("Schema error") && msg.contains("not found") {
            let name = quoted_after(&msg, "No field named ")
                .or_else(|| quoted_after(&msg, "field named "))
                .unwrap_or_default();
            return Self::new(ErrorKind::UnknownName, msg, column_hint(&name, tables));
        }
        if msg.contains("Ambiguous reference") {
            let name = quoted_after(&msg, "Ambiguous reference to unqualified field ").unwrap_or_default();
            let owners: Vec<String> = tables
                .iter()
                .filter(|t| t.columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(name.trim_matches('"'))))
                .map(|t| format!("{}.{}", t.name, name.trim_matches('"')))
                .collect();
            return Self::new(ErrorKind::Invalid, msg, format!("qualify the column: one of {}", owners.join(", ")));
        }
        if msg.contains("Cannot coerce")
            || msg.contains("type") && msg.contains("coerc")
            || msg.contains("Cannot infer common")
        {
            let types: Vec<String> = tables
                .iter()
                .map(|t| {
                    format!("{}({})", t.name, t.columns.iter().map(|c| c.0.clone()).collect::<Vec<_>>().join(", "))
                })
                .collect();
            return Self::new(
                ErrorKind::Invalid,
                msg,
                format!(
                    "check the column types; cast with CAST(x AS DOUBLE) or try_cast. Tables: {}",
                    types.join("; ")
                ),
            );
        }
        Self::new(ErrorKind::Invalid, msg, "")
    }
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
