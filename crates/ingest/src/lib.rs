//! # quarry-ingest: any tabular file → typed Arrow → Parquet + catalog
//!
//! This crate owns everything between a file a person uploads and a clean,
//! typed table the engines can query. It knows nothing of SQL engines, LLMs or
//! HTTP.
//!
//! Where work happens:
//! - [`detect`] reads the first bytes and names the format (never trusting
//!   the extension alone).
//! - [`text`] streams delimited text twice (shape + inference, then build);
//!   [`sheet`] reads workbooks through `calamine` with zip-bomb and cell caps;
//!   [`json`] and [`parquet_in`] handle the rest.
//! - [`shape`] finds headers below titles, joins two-row headers, and keeps
//!   totals, footnotes and ragged rows out of the data (recorded, recoverable).
//! - [`infer`] types every column over all its values; [`build`] makes Arrow.
//! - [`stats`] profiles the built batches; [`catalog`] writes Parquet and the
//!   SQLite catalog, one version per content hash.
//!
//! Entry points: [`prepare`] (inspect a file into [`Prepared`] tables) and
//! [`catalog::Catalog::load`]. Uploaded files are untrusted: sinks load them
//! through [`worker::IngestWorkers`], which runs the parse in a worker process
//! under limits so a hostile file cannot take the server down.

pub mod build;
pub mod catalog;
pub mod cell;
pub mod detect;
pub mod error;
pub mod infer;
pub mod json;
pub mod names;
pub mod parquet_in;
pub mod shape;
pub mod sheet;
pub mod stats;
pub mod table;
pub mod text;
pub mod worker;

use std::collections::{BTreeMap, HashMap};

use ahash::AHashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use error::{ErrorKind, IngestError, Result};
pub use table::{ColumnMeta, ColumnType, ExcludeReason, ExcludedRow, Note, NoteKind, TableMeta};

use infer::ColumnPlan;
use shape::{Layout, RowLike, Shaper};

/// Limits and switches for ingest, documented in one place.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestOptions {
    /// Largest total uncompressed size of a zipped workbook (XLSX, ODS).
    /// Default 512 MiB: a zip bomb stops here, before anything inflates.
    pub max_inflated_bytes: u64,
    /// Most non-empty cells a sheet may hold (default 50 million). Text files
    /// stream and have no cell limit.
    pub max_cells: u64,
    /// Longest single record of a text file (default 64 MiB): longer means a
    /// quote that never closes.
    pub max_record_bytes: usize,
    /// Largest JSON file read whole (default 1 GiB).
    pub max_json_bytes: u64,
    /// Most columns a table may have (default 16 384, Excel's own limit):
    /// a 2 MB CSV with 200 000 columns is refused, not laid out.
    pub max_columns: usize,
    /// Values a Parquet file may hold per byte of file (default 256, plus
    /// 10 million free): run-length and dictionary bombs claim billions.
    pub max_values_per_byte: u64,
    /// Bytes one decoded batch of 8 192 Parquet rows may expand to
    /// (default 256 MiB), checked before text is expanded.
    pub max_batch_bytes: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_inflated_bytes: 512 << 20,
            max_cells: 50_000_000,
            max_record_bytes: 64 << 20,
            max_json_bytes: 1 << 30,
            max_columns: 16_384,
            max_values_per_byte: 256,
            max_batch_bytes: 256 << 20,
        }
    }
}

impl IngestOptions {
    /// The names a user may set (`quarry --ingest-limit NAME=N`, the
    /// server's `--ingest-limit`): the fields above, named as written.
    pub fn names() -> Vec<String> {
        match serde_json::to_value(IngestOptions::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Set one limit from `NAME=N` (N a whole number; `_` separators and a
    /// K, M or G suffix, powers of 1024, allowed), or say what is wrong.
    pub fn set(&mut self, assignment: &str) -> std::result::Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("'{assignment}': write NAME=N, e.g. max_cells=100000000"))?;
        let (name, value) = (name.trim(), value.trim().replace('_', ""));
        let (digits, shift) = match value.char_indices().last() {
            Some((i, 'K' | 'k')) => (&value[..i], 10),
            Some((i, 'M' | 'm')) => (&value[..i], 20),
            Some((i, 'G' | 'g')) => (&value[..i], 30),
            _ => (value.as_str(), 0),
        };
        let n = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1u64 << shift))
            .ok_or_else(|| format!("'{assignment}': {name} needs a whole number (K, M or G allowed)"))?;
        let mut v = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        match v.get_mut(name) {
            Some(slot) => *slot = n.into(),
            None => return Err(format!("unknown ingest limit '{name}': one of {}", IngestOptions::names().join(", "))),
        }
        *self = serde_json::from_value(v).map_err(|_| format!("'{assignment}': {n} is too large for {name}"))?;
        Ok(())
    }
}

/// Progress of long reads, for progress bars. `done` and `total` are bytes.
pub trait Progress {
    fn advance(&self, phase: &str, done: u64, total: u64);
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {
    fn advance(&self, _: &str, _: u64, _: u64) {}
}

/// The outcome of shaping and inference for one table, shared by every reader.
#[derive(Debug, Clone)]
pub struct Finished {
    pub meta: TableMeta,
    pub schema: SchemaRef,
    /// Source column for each output column.
    pub sources: Vec<usize>,
    /// One plan per source column.
    pub plans: Vec<ColumnPlan>,
    /// Data-row index → why it is out.
    pub excluded: BTreeMap<u64, ExcludedRow>,
    pub rows: u64,
}

/// What the layout says about the header: two rows joined, rows skipped above it, or none.
fn header_notes(layout: &Layout) -> Vec<Note> {
    let mut notes: Vec<Note> = Vec::new();
    if let Some(h) = layout.header_row {
        let line = |i: usize| i + 1;
        if let Some(g) = layout.group_row {
            notes.push(Note::table(
                NoteKind::Header,
                format!(
                    "two-row header on rows {} and {} of the table region, joined into one name per column",
                    line(g),
                    line(h)
                ),
            ));
        }
        if layout.skipped_above > 0 {
            notes.push(Note::table(
                NoteKind::Header,
                format!("header found below {} title or blank rows, which were skipped", layout.skipped_above),
            ));
        }
    } else if !layout.labels.is_empty() {
        notes.push(Note::table(
            NoteKind::Header,
            "no header row: the first row holds values, so columns are numbered (column_1, column_2, …)",
        ));
    }
    notes
}

/// One note per reason rows were kept out of the data, naming the rows.
fn excluded_notes(excluded: &BTreeMap<u64, ExcludedRow>) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut by_reason: BTreeMap<ExcludeReason, Vec<u64>> = BTreeMap::new();
    for e in excluded.values() {
        by_reason.entry(e.reason).or_default().push(e.row);
    }
    for (reason, rows) in by_reason {
        let kind = reason.note_kind();
        let reason = reason.describe();
        let list = rows.iter().take(10).map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
        let more = if rows.len() > 10 { format!(" and {} more", rows.len() - 10) } else { String::new() };
        notes.push(Note::table(
            kind,
            format!(
                "{} row(s) kept out of the data as {reason} (source row {list}{more}); kept verbatim as excluded rows (after loading: `quarry excluded TABLE`)",
                rows.len()
            ),));
    }
    notes
}

/// Turn a finished walk over the rows into columns, names, types and notes.
pub(crate) fn finish_columns<R: RowLike>(
    layout: &Layout,
    shaper: &Shaper<R>,
    prefer_decimal_comma: bool,
    path: &Path,
    sheet: Option<&str>,
    format: &str,
) -> Finished {
    // Text files declare their fields, so only trailing unlabelled blank
    // columns (a trailing delimiter) go; in sheets every unlabelled blank column goes.
    let text_file = format == "csv";
    let last_used = (0..layout.labels.len())
        .rev()
        .find(|&i| !layout.labels[i].trim().is_empty() || shaper.column_nonblank[i] > 0)
        .map_or(0, |i| i + 1);
    let mut notes = header_notes(layout);
    let plans: Vec<ColumnPlan> = shaper.columns.iter().map(|c| c.plan(prefer_decimal_comma)).collect();
    let mut sources = Vec::new();
    let mut dropped = 0;
    for (i, label) in layout.labels.iter().enumerate() {
        if label.trim().is_empty() && shaper.column_nonblank[i] == 0 && (!text_file || i >= last_used) {
            dropped += 1;
            continue;
        }
        sources.push(i);
    }
    if dropped > 0 {
        notes.push(Note::table(NoteKind::BlankColumns, format!("{dropped} blank columns without a header dropped")));
    }
    let labels: Vec<String> = sources
        .iter()
        .map(|&i| {
            let l = layout.labels[i].trim();
            if l.is_empty() {
                format!("column_{}", i + 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    let names = names::column_names(&labels);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (k, l) in labels.iter().enumerate() {
        if let Some(&first) = seen.get(l.as_str()) {
            notes.push(Note::column(
                NoteKind::DuplicateHeader,
                &names[k],
                format!(
                    "header '{l}' appears more than once; this copy is named {} (the first is {})",
                    names[k], names[first]
                ),
            ));
        } else {
            seen.insert(l, k);
        }
    }
    let columns: Vec<ColumnMeta> = sources
        .iter()
        .zip(labels.iter().zip(&names))
        .map(|(&i, (l, n))| ColumnMeta { name: n.clone(), label: l.clone(), dtype: plans[i].dtype })
        .collect();
    for (k, &i) in sources.iter().enumerate() {
        notes.extend(shaper.columns[i].notes(&labels[k], &names[k], &plans[i]));
        if let Some(n) = observe_text_column(&shaper.columns[i], &plans[i], &labels[k], &names[k]) {
            notes.extend(n);
        }
    }
    if shaper.blank_rows > 0 {
        notes.push(Note::table(NoteKind::BlankRows, format!("{} blank rows skipped", shaper.blank_rows)));
    }
    notes.extend(excluded_notes(&shaper.excluded));
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let meta = TableMeta {
        name: names::table_name(&stem, sheet),
        source: path.display().to_string(),
        sheet: sheet.map(str::to_string),
        format: format.to_string(),
        columns,
        notes,
        excluded: shaper.excluded.values().cloned().collect(),
    };
    let schema = Arc::new(meta.schema());
    Finished { meta, schema, sources, plans, excluded: shaper.excluded.clone(), rows: shaper.rows }
}

/// Notes about what a text column looks like: shared prefixes and suffixes
/// (`kw `, ` Local Government Area`) and low cardinality. Meanings are not
/// guessed; these are facts the analyst can use.
fn observe_text_column(c: &infer::ColumnInfer, plan: &ColumnPlan, label: &str, name: &str) -> Option<Vec<Note>> {
    if plan.dtype != ColumnType::Text {
        return None;
    }
    // Counts after spelling variants are folded.
    let mut folded: AHashMap<&str, u64> = AHashMap::new();
    for (v, n) in c.distinct_values()? {
        let canon = plan.canonical.get(v).unwrap_or(v);
        *folded.entry(canon.as_str()).or_default() += n;
    }
    if folded.len() < 2 {
        return None;
    }
    let mut notes = Vec::new();
    let values: Vec<&str> = folded.keys().copied().collect();
    for suffix in [false, true] {
        if let Some((affix, without)) = common_affix(&values, suffix) {
            let which = if suffix { "suffix" } else { "prefix" };
            let text = if without.is_empty() {
                format!("'{label}': every value has the {which} '{affix}'")
            } else {
                let list = without
                    .iter()
                    .take(3)
                    .map(|v| format!("'{}'", infer::truncate(v, 40)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "'{label}': {} of {} distinct values have the {which} '{affix}' (not: {list})",
                    values.len() - without.len(),
                    values.len()
                )
            };
            notes.push(Note::column(NoteKind::SharedAffix, name, text));
        }
    }
    if folded.len() <= 50 && c.non_null >= 4 * folded.len() as u64 {
        let mut top: Vec<(&str, u64)> = folded.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let list =
            top.iter().take(6).map(|(v, _)| format!("'{}'", infer::truncate(v, 40))).collect::<Vec<_>>().join(", ");
        notes.push(Note::column(
            NoteKind::Categorical,
            name,
            format!(
                "'{label}': categorical, {} distinct values ({list}{})",
                top.len(),
                if top.len() > 6 { ", …" } else { "" }
            ),
        ));
    }
    Some(notes)
}

/// The longest word-aligned prefix (or suffix) that at least 80% of the
/// values share, with the values that lack it.
fn common_affix<'v>(values: &[&'v str], suffix: bool) -> Option<(String, Vec<&'v str>)> {
    let need = (values.len() * 4).div_ceil(5).max(2);
    // Candidates come from every value's word boundaries; the longest shared by enough values wins.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in values {
        let words: Vec<&str> = v.split_inclusive(' ').collect();
        let n = words.len();
        for k in 1..n {
            let cand = if suffix { words[n - k..].concat() } else { words[..k].concat() };
            *counts.entry(cand).or_default() += 1;
        }
    }
    let mut cands: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= need).collect();
    cands.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    let (b, _) = cands.into_iter().next()?;
    let without: Vec<&str> = values
        .iter()
        .copied()
        .filter(|v| !(v.len() > b.len() && if suffix { v.ends_with(&b) } else { v.starts_with(&b) }))
        .collect();
    let t = if suffix { format!(" {}", b.trim()) } else { b };
    (t.trim().len() >= 2).then_some((t, without))
}

/// A table ready to be built: its metadata, and a way to stream its rows.
pub struct Prepared {
    pub meta: TableMeta,
    pub schema: SchemaRef,
    source: Source,
}

enum Source {
    Text(Box<text::TextPlan>),
    Sheet(Box<sheet::SheetPlan>),
    Parquet(Box<parquet_in::ParquetPlan>),
}

impl Prepared {
    /// Stream the table's rows as Arrow batches.
    pub fn batches(&self, progress: &dyn Progress, sink: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        match &self.source {
            Source::Text(p) => text::batches(p, progress, sink),
            Source::Sheet(p) => sheet::batches(p, sink),
            Source::Parquet(p) => parquet_in::batches(p, sink),
        }
    }
}

/// What a file turned into: tables, and notes about the file as a whole
/// (sheets skipped, extension mismatches).
pub struct PreparedFile {
    pub tables: Vec<Prepared>,
    pub notes: Vec<Note>,
    pub format: detect::Format,
}

/// Inspect a file: detect its format, find its tables, infer their columns.
/// Errors name the file and say what to do.
pub fn prepare(path: &Path, opts: &IngestOptions, progress: &dyn Progress) -> Result<PreparedFile> {
    let label = path.display().to_string();
    prepare_inner(path, opts, progress).map_err(|e| e.in_file(label))
}

fn prepare_inner(path: &Path, opts: &IngestOptions, progress: &dyn Progress) -> Result<PreparedFile> {
    let (format, head) = detect::detect(path)?;
    let mut notes = Vec::new();
    if let Some(n) = detect::extension_note(path, format) {
        notes.push(n);
    }
    let mut tables = Vec::new();
    match format {
        detect::Format::Text => {
            let plan = text::prepare(path, &head, opts, progress)?;
            tables.push(Prepared {
                meta: plan.finished.meta.clone(),
                schema: plan.finished.schema.clone(),
                source: Source::Text(Box::new(plan)),
            });
        }
        detect::Format::Xlsx | detect::Format::Xls | detect::Format::Ods => {
            let grids = sheet::read_workbook(path, format.name(), opts)?;
            let several = grids.len() > 1;
            for (name, grid) in grids {
                match sheet::prepare_sheet(path, format.name(), Some(name), grid, several) {
                    sheet::SheetOutcome::Table(p) => tables.push(Prepared {
                        meta: p.finished.meta.clone(),
                        schema: p.finished.schema.clone(),
                        source: Source::Sheet(p),
                    }),
                    sheet::SheetOutcome::Skipped { sheet, why } => notes
                        .push(Note::table(NoteKind::SheetSkipped, format!("sheet '{sheet}' was not loaded: {why}"))),
                }
            }
        }
        detect::Format::Json | detect::Format::Ndjson => {
            let grid = json::read(path, format, opts)?;
            match sheet::prepare_sheet(path, format.name(), None, grid, false) {
                sheet::SheetOutcome::Table(p) => tables.push(Prepared {
                    meta: p.finished.meta.clone(),
                    schema: p.finished.schema.clone(),
                    source: Source::Sheet(p),
                }),
                sheet::SheetOutcome::Skipped { why, .. } => {
                    return Err(IngestError::new(
                        ErrorKind::Empty,
                        format!("the JSON holds no table: {why}"),
                        "give an array of objects, an array of arrays, or one object per line",
                    ))
                }
            }
        }
        detect::Format::Parquet => {
            let (meta, plan) = parquet_in::prepare(path, opts)?;
            tables.push(Prepared { meta, schema: plan.schema(), source: Source::Parquet(Box::new(plan)) });
        }
    }
    if tables.is_empty() {
        return Err(IngestError::new(
            ErrorKind::Empty,
            "no table was found in the file",
            notes.iter().map(|n| n.text.clone()).collect::<Vec<_>>().join("; "),
        ));
    }
    Ok(PreparedFile { tables, notes, format })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_limits_are_set_by_name() {
        let mut o = IngestOptions::default();
        o.set("max_cells=100_000_000").unwrap();
        o.set("max_inflated_bytes = 2G").unwrap();
        assert_eq!((o.max_cells, o.max_inflated_bytes), (100_000_000, 2 << 30));
        assert!(o.set("max_rows=5").unwrap_err().contains("max_cells"), "the error lists the names");
        assert!(o.set("max_cells").is_err() && o.set("max_cells=lots").is_err());
        assert_eq!(IngestOptions::names().len(), 7);
    }
}
