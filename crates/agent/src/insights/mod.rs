//! Insights with no model: a deterministic pass over one table version that
//! finds what a data officer checks first — impossible values (a part
//! larger than its whole), outliers, sudden changes between periods, missing
//! reporting periods per entity, duplicated rows, near-constant and mostly
//! empty columns, spelling variants — each a [`Finding`] stated as a fact
//! with numbers, with the SQL that shows it, its result and, where one
//! helps, a chart. Every number comes from a query run on the workspace's
//! SQL kernel (behind its guard, in its workers); nothing here calls a model.
//!
//! Which columns play which part is read from the data and the names, never
//! assumed from fixed names: a "whole" is a column the other stays below in
//! nearly every row and whose name says so (or shares a word with it), an
//! "entity" is the coarsest text column that, with the period, identifies
//! the rows. Each finding says which columns it read.

mod checks;
pub mod phrase;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use quarry_ingest::catalog::TableEntry;
use quarry_types::{ColumnType, Limits, SqlKernel, Table};

/// The kinds of finding, named once for the CLI, the API and the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsightKind {
    ImpossibleValues,
    DuplicateRows,
    MissingPeriods,
    Outliers,
    SuddenChange,
    SpellingVariants,
    MostlyEmpty,
    NearConstant,
}

impl InsightKind {
    /// In the order findings rank by default (most serious first).
    pub const ALL: [InsightKind; 8] = [
        InsightKind::ImpossibleValues,
        InsightKind::DuplicateRows,
        InsightKind::MissingPeriods,
        InsightKind::Outliers,
        InsightKind::SuddenChange,
        InsightKind::SpellingVariants,
        InsightKind::MostlyEmpty,
        InsightKind::NearConstant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InsightKind::ImpossibleValues => "impossible_values",
            InsightKind::DuplicateRows => "duplicate_rows",
            InsightKind::MissingPeriods => "missing_periods",
            InsightKind::Outliers => "outliers",
            InsightKind::SuddenChange => "sudden_change",
            InsightKind::SpellingVariants => "spelling_variants",
            InsightKind::MostlyEmpty => "mostly_empty",
            InsightKind::NearConstant => "near_constant",
        }
    }

    /// A title for people.
    pub fn label(self) -> &'static str {
        match self {
            InsightKind::ImpossibleValues => "Impossible values",
            InsightKind::DuplicateRows => "Duplicated rows",
            InsightKind::MissingPeriods => "Missing reports",
            InsightKind::Outliers => "Outliers",
            InsightKind::SuddenChange => "Sudden change",
            InsightKind::SpellingVariants => "Spelling variants",
            InsightKind::MostlyEmpty => "Mostly empty column",
            InsightKind::NearConstant => "Near-constant column",
        }
    }

    /// Base rank: serious kinds first; each finding adds its own weight.
    fn weight(self) -> f64 {
        let i = InsightKind::ALL.iter().position(|k| *k == self).unwrap_or(InsightKind::ALL.len());
        (InsightKind::ALL.len() - i) as f64 * 100.0
    }
}

/// One finding: a fact with numbers, and how to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: InsightKind,
    /// Rank within the table's findings (higher first).
    pub score: f64,
    /// The fact, in a sentence or two, with the numbers.
    pub text: String,
    /// The columns it is about.
    pub columns: Vec<String>,
    /// The query that shows it (runs as it is in the SQL console).
    pub sql: String,
    /// That query's result (its first rows).
    pub result: Option<Table>,
    /// A Vega-Lite spec over `result`, where one helps.
    pub chart: Option<Value>,
}

/// Every finding for one table version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insights {
    pub table: String,
    pub version: u32,
    pub rows: u64,
    /// Ranked, most serious first.
    pub findings: Vec<Finding>,
    /// Checks that could not run on this table, and why (e.g. no period column).
    pub skipped: Vec<String>,
}

impl Insights {
    /// Findings of one kind.
    pub fn of(&self, kind: InsightKind) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.kind == kind).collect()
    }
}

/// What the checks need to know about a table.
pub(crate) struct Shape<'a> {
    pub table: &'a str,
    pub rows: u64,
    pub numeric: Vec<&'a str>,
    pub text: Vec<(&'a str, u64)>,
    pub period: Option<&'a str>,
    /// Columns that say where a row is (for people): a few text columns and the period.
    pub locators: Vec<&'a str>,
    pub all: Vec<&'a str>,
    kernel: &'a dyn SqlKernel,
    limits: &'a Limits,
}

impl Shape<'_> {
    /// Run a query of the pass; its result as a table.
    pub(crate) fn query(&self, sql: &str) -> Result<Table, String> {
        self.kernel.query(sql, self.limits).map(|r| Table::from_result(&r)).map_err(|e| format!("{QUERY_FAILED}: {e}"))
    }
}

/// An integer column of years named as a period (`period`, `year`; DHIS2's
/// `periodname`), when no date column is there.
fn year_column(cols: &[quarry_ingest::stats::ColumnStats]) -> Option<&str> {
    let year = |v: &Option<Value>| v.as_ref().and_then(Value::as_i64).is_some_and(|y| (1900..=2100).contains(&y));
    cols.iter()
        .find(|c| {
            let n = c.name.to_lowercase();
            c.dtype == ColumnType::Integer
                && (n.contains("period") || n.contains("year"))
                && year(&c.min)
                && year(&c.max)
        })
        .map(|c| c.name.as_str())
}

/// How a check that could not query says so.
const QUERY_FAILED: &str = "its query failed";

/// Most numeric columns a pass reads (pairs grow with their square).
const MAX_NUMERIC: usize = 16;

/// Bumped whenever a check changes what it finds (part of the stored file's name).
pub const INSIGHTS_VERSION: u32 = 1;

/// The insights of `entry`, stored under `<data>/insights/` once computed
/// for its data version (written whole to a temporary file and renamed), so
/// a table card and `quarry insights` do not query again for the same data.
pub fn stored_or_analyse(
    data: &std::path::Path,
    entry: &TableEntry,
    kernel: &dyn SqlKernel,
    limits: &Limits,
) -> Insights {
    let dir = data.join("insights");
    let hash: String = entry.content_hash.chars().take(16).collect();
    let path = dir.join(format!("{}_v{}_{hash}_{INSIGHTS_VERSION}.json", entry.name, entry.version));
    if let Some(i) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Insights>(&b).ok()) {
        return i;
    }
    let ins = analyse(entry, kernel, limits);
    // A check whose query failed (a time limit, a worker lost) is tried again next time.
    if ins.skipped.iter().all(|s| !s.contains(QUERY_FAILED)) {
        if let Ok(text) = serde_json::to_vec(&ins) {
            let _ = crate::files::write_atomic(&path, &text);
        }
    }
    ins
}

/// The insights of `entry` (the latest version of its table), from queries
/// on `kernel`. A check that fails is reported in `skipped`, never fatal.
pub fn analyse(entry: &TableEntry, kernel: &dyn SqlKernel, limits: &Limits) -> Insights {
    let cols = &entry.stats.columns;
    let of = |f: fn(ColumnType) -> bool| -> Vec<&str> {
        cols.iter().filter(|c| f(c.dtype) && c.nulls < entry.rows).map(|c| c.name.as_str()).collect()
    };
    let mut numeric: Vec<&str> =
        of(ColumnType::is_numeric).into_iter().filter(|c| Some(*c) != year_column(cols)).collect();
    numeric.truncate(MAX_NUMERIC);
    let text: Vec<(&str, u64)> = cols
        .iter()
        .filter(|c| c.dtype == ColumnType::Text && c.distinct > 1)
        .map(|c| (c.name.as_str(), c.distinct))
        .collect();
    let period =
        of(|t| matches!(t, ColumnType::Date | ColumnType::DateTime)).into_iter().next().or_else(|| year_column(cols));
    let mut locators: Vec<&str> = text.iter().take(3).map(|(n, _)| *n).collect();
    locators.extend(period);
    let shape = Shape {
        table: &entry.name,
        rows: entry.rows,
        numeric,
        text,
        period,
        locators,
        all: cols.iter().map(|c| c.name.as_str()).collect(),
        kernel,
        limits,
    };
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    for (name, check) in checks::ALL {
        match check(&shape) {
            Ok(f) => findings.extend(f),
            Err(why) => skipped.push(format!("{name}: {why}")),
        }
    }
    for mut f in checks::column_health(entry) {
        f.result = shape.query(&f.sql).ok();
        findings.push(f);
    }
    for f in &mut findings {
        f.score += f.kind.weight();
        if let Some(c) = f.chart.as_mut() {
            crate::chart::with_labels(c, std::slice::from_ref(entry));
        }
    }
    findings.sort_by(|a, b| b.score.total_cmp(&a.score));
    Insights { table: entry.name.clone(), version: entry.version, rows: entry.rows, findings, skipped }
}
