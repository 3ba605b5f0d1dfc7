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
pub mod chunks;
pub mod columns;
pub mod detect;
pub mod error;
pub mod formula;
pub mod grid;
pub mod infer;
pub mod json;
pub mod names;
pub mod parallel;
pub mod parquet_in;
pub mod period;
mod pieces;
mod records;
pub mod region;
pub mod shape;
pub mod sheet;
pub mod sources;
mod speculate;
pub mod stats;
pub mod table;
pub mod text;
pub mod watch;
pub mod worker;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use error::{ErrorKind, IngestError, Result};
pub use grid::CellRange;
pub use shape::HeaderChoice;
pub use table::{ColumnMeta, ColumnType, ExcludeReason, ExcludedRow, Note, NoteKind, SourceLayout, TableMeta};

pub(crate) use columns::finish_columns;
use infer::ColumnPlan;

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
    /// Address space of each ingest worker process (default 8 GiB): a file
    /// that needs more ends its worker with an error naming the file, and
    /// Quarry goes on. Text and Parquet files stream, so files far larger
    /// than this load (`--ingest-limit worker_memory_bytes=512M`).
    pub worker_memory_bytes: u64,
    /// Bytes per piece when a UTF-8 text file is read on several threads
    /// (default 8 MiB; 0 reads every text file on one thread). Files under
    /// two pieces are read on one thread.
    pub text_chunk_bytes: u64,
    /// Data rows per piece when a workbook's or JSON document's table is
    /// shaped and built on several threads (default 16 384; 0 uses one
    /// thread). The result is the same either way.
    pub sheet_chunk_rows: u64,
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
            worker_memory_bytes: quarry_types::Limits::for_ingest().address_space_bytes,
            text_chunk_bytes: chunks::CHUNK_BYTES,
            sheet_chunk_rows: pieces::CHUNK_ROWS,
        }
    }
}

impl IngestOptions {
    /// The process limits an ingest worker runs under with these options.
    pub fn worker_limits(&self) -> quarry_types::Limits {
        let base = quarry_types::Limits::for_ingest();
        quarry_types::Limits {
            address_space_bytes: self.worker_memory_bytes,
            memory_bytes: base.memory_bytes.min(self.worker_memory_bytes as usize),
            ..base
        }
    }

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

/// How a person says a file is laid out, when the guess was wrong:
/// `quarry load FILE [--sheet S] [--range A5:F40] [--header none|auto|ROW]
/// [--one-table] [--split-at ROW]`, or a table's card in the page. Stored
/// with the source by the catalog and applied again to every later
/// version of the file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayoutChoice {
    /// The sheet it applies to; none: every sheet, and text files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Only these cells are the table (sheets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<CellRange>,
    /// Where the header is: found (`auto`), `none`, or a 1-based row.
    #[serde(default)]
    pub header: HeaderChoice,
    /// The sheet is one table, whatever blank rows or titles it has.
    #[serde(default)]
    pub one_table: bool,
    /// Start a new table at these 1-based sheet rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_at: Vec<u64>,
}

impl LayoutChoice {
    /// True when it changes nothing: every decision is left to the evidence.
    pub fn is_auto(&self) -> bool {
        self.range.is_none() && self.header == HeaderChoice::Auto && !self.one_table && self.split_at.is_empty()
    }

    /// The choice that applies to a sheet (or, with `None`, a text file):
    /// the one naming it, else one naming no sheet, else none.
    pub fn for_sheet(choices: &[LayoutChoice], sheet: Option<&str>) -> LayoutChoice {
        choices
            .iter()
            .find(|c| c.sheet.is_some() && c.sheet.as_deref() == sheet)
            .or_else(|| choices.iter().find(|c| c.sheet.is_none()))
            .cloned()
            .unwrap_or_default()
    }

    /// Words for a note: what the person chose.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.range {
            parts.push(format!("cells {r}"));
        }
        match self.header {
            HeaderChoice::Auto => {}
            HeaderChoice::None => parts.push("no header row".into()),
            HeaderChoice::Row(n) => parts.push(format!("header on row {n}")),
        }
        if self.one_table {
            parts.push("one table".into());
        }
        for r in &self.split_at {
            parts.push(format!("a new table from row {r}"));
        }
        parts.join(", ")
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
    /// Non-blank cells per source column among kept rows.
    pub filled: Vec<u64>,
}

/// A table ready to be built: its metadata, and a way to stream its rows.
pub struct Prepared {
    pub meta: TableMeta,
    pub schema: SchemaRef,
    source: Source,
    /// The table, already written ([`prepare_writing`]).
    written: Mutex<Option<catalog::Written>>,
}

#[derive(Clone)]
enum Source {
    Text(Arc<text::TextPlan>),
    Sheet(Arc<sheet::SheetPlan>),
    Parquet(Arc<parquet_in::ParquetPlan>),
    /// The long form of another table: its rows, unpivoted as they stream.
    Long(Box<Source>, Arc<period::LongSpec>),
}

impl Source {
    fn batches(
        &self,
        progress: &dyn Progress,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        long: &SchemaRef,
    ) -> Result<()> {
        match self {
            Source::Text(p) => text::batches(p, progress, sink),
            Source::Sheet(p) => sheet::batches(p, sink),
            Source::Parquet(p) => parquet_in::batches(p, sink),
            Source::Long(wide, spec) => wide.batches(progress, &mut |b| sink(period::unpivot(&b, spec, long)?), long),
        }
    }
}

impl Prepared {
    fn new(meta: TableMeta, schema: SchemaRef, source: Source) -> Prepared {
        Prepared { meta, schema, source, written: Mutex::new(None) }
    }

    /// When the table was written while its file was read: move that file
    /// to `dest` and give its profile.
    pub(crate) fn move_written(&self, dest: &Path) -> Result<Option<stats::TableStats>> {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner()).take();
        written.map(|w| w.move_to(dest)).transpose()
    }

    /// Stream the table's rows as Arrow batches.
    pub fn batches(&self, progress: &dyn Progress, sink: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        self.source.batches(progress, sink, &self.schema)
    }

    /// Its long form, when its columns are periods (see [`period`]); the
    /// note for this table says where the long form is.
    fn long_form(&mut self) -> Option<Prepared> {
        // Files laid out by people (text, sheets); typed Parquet is left as it is.
        let rows = match &self.source {
            Source::Text(p) => p.finished.rows,
            Source::Sheet(p) => p.finished.rows,
            Source::Parquet(_) | Source::Long(..) => return None,
        };
        let spec = period::long_spec(&self.meta)?;
        let long_rows = rows.saturating_mul(spec.periods.len() as u64);
        if long_rows > period::MAX_LONG_ROWS {
            self.meta.notes.push(Note::table(
                NoteKind::Periods,
                format!(
                    "{} columns are periods; no long form was made, as it would have {long_rows} rows",
                    spec.periods.len()
                ),
            ));
            return None;
        }
        let (meta, note) = period::long_meta(&self.meta, &spec);
        self.meta.notes.push(note);
        let schema = Arc::new(meta.schema());
        Some(Prepared::new(meta, schema, Source::Long(Box::new(self.source.clone()), Arc::new(spec))))
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
    prepare_with(path, opts, &[], progress)
}

/// [`prepare`], with the layout a person chose for some sheets.
pub fn prepare_with(
    path: &Path,
    opts: &IngestOptions,
    choices: &[LayoutChoice],
    progress: &dyn Progress,
) -> Result<PreparedFile> {
    let label = path.display().to_string();
    prepare_inner(path, opts, choices, None, progress).map_err(|e| e.in_file(label))
}

/// [`prepare_with`], also writing a large text file's table into a
/// `*.tmp` Parquet file in `scratch` while the file is read, when the types
/// its first rows give hold for every row (see `speculate`): then
/// [`catalog::write_parquet_tmp`] only moves that file (on the same file
/// system) instead of reading the text again.
pub fn prepare_writing(
    path: &Path,
    opts: &IngestOptions,
    choices: &[LayoutChoice],
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<PreparedFile> {
    let label = path.display().to_string();
    prepare_inner(path, opts, choices, Some(scratch), progress).map_err(|e| e.in_file(label))
}

fn prepare_inner(
    path: &Path,
    opts: &IngestOptions,
    choices: &[LayoutChoice],
    scratch: Option<&Path>,
    progress: &dyn Progress,
) -> Result<PreparedFile> {
    let (format, head) = detect::detect(path)?;
    let mut notes = Vec::new();
    if let Some(n) = detect::extension_note(path, format) {
        notes.push(n);
    }
    let mut tables = Vec::new();
    match format {
        detect::Format::Text => {
            check_sheets(choices, &[])?;
            let choice = LayoutChoice::for_sheet(choices, None);
            if choice.range.is_some() {
                notes.push(Note::table(
                    NoteKind::Header,
                    "a cell range applies to spreadsheets; this text file was read whole",
                ));
            }
            match text::prepare(path, &head, opts, &choice, scratch, progress)? {
                text::TextPrepared::Stream(mut plan) => {
                    let written = Mutex::new(plan.written.take());
                    let mut meta = plan.finished.meta.clone();
                    if !choice.is_auto() {
                        meta.notes.insert(0, chosen_note(&choice));
                    }
                    if !choice.split_at.is_empty() {
                        let big = std::fs::metadata(path).map(|m| m.len() > text::BLOCKS_MAX_BYTES).unwrap_or(true);
                        let text = if big {
                            format!("a split was chosen, but text files are cut into tables only up to {} MiB; this one was read as one table", text::BLOCKS_MAX_BYTES >> 20)
                        } else {
                            "a split was chosen at a row inside no table (or at a table's first row); the file was read as one table".to_string()
                        };
                        meta.notes.insert(0, Note::table(NoteKind::Header, text));
                    }
                    if let HeaderChoice::Row(n) = choice.header {
                        if meta.layout.as_ref().and_then(|l| l.header_row) != Some(n) {
                            let text = format!("row {n} was chosen as the header, but a header is looked for in the first 50 rows only; it was found as usual");
                            meta.notes.insert(0, Note::table(NoteKind::Header, text));
                        }
                    }
                    let schema = plan.finished.schema.clone();
                    tables.push(Prepared { meta, schema, source: Source::Text(Arc::from(plan)), written });
                }
                text::TextPrepared::Blocks { grid, notes: text_notes } => {
                    for outcome in sheet::prepare_sheet(path, "csv", None, grid, false, &choice) {
                        if let sheet::SheetOutcome::Table(p) = outcome {
                            let mut t = sheet_table(p, &choice);
                            t.meta.notes.splice(0..0, text_notes.iter().cloned());
                            tables.push(t);
                        }
                    }
                }
            }
        }
        detect::Format::Xlsx | detect::Format::Xls | detect::Format::Ods => {
            let grids = sheet::read_workbook(path, format.name(), opts)?;
            check_sheets(choices, &grids.iter().map(|g| g.0.as_str()).collect::<Vec<_>>())?;
            let several = grids.len() > 1;
            for (name, grid) in grids {
                let choice = LayoutChoice::for_sheet(choices, Some(&name));
                for outcome in sheet::prepare_sheet(path, format.name(), Some(name), grid, several, &choice) {
                    match outcome {
                        sheet::SheetOutcome::Table(p) => tables.push(sheet_table(p, &choice)),
                        sheet::SheetOutcome::Skipped { sheet, why, cells } => notes.push(
                            Note::table(NoteKind::SheetSkipped, format!("sheet '{sheet}' was not loaded: {why}"))
                                .counting(cells),
                        ),
                    }
                }
            }
        }
        detect::Format::Json | detect::Format::Ndjson => {
            let mut grid = json::read(path, format, opts)?;
            grid.chunk_rows = opts.sheet_chunk_rows.try_into().unwrap_or(usize::MAX);
            let choice = LayoutChoice::for_sheet(choices, None);
            for outcome in sheet::prepare_sheet(path, format.name(), None, grid, false, &choice) {
                match outcome {
                    sheet::SheetOutcome::Table(p) => tables.push(sheet_table(p, &choice)),
                    sheet::SheetOutcome::Skipped { why, .. } => {
                        return Err(IngestError::new(
                            ErrorKind::Empty,
                            format!("the JSON holds no table: {why}"),
                            "give an array of objects, an array of arrays, or one object per line",
                        ))
                    }
                }
            }
        }
        detect::Format::Parquet => {
            let (meta, plan) = parquet_in::prepare(path, opts)?;
            tables.push(Prepared::new(meta, plan.schema(), Source::Parquet(Arc::new(plan))));
        }
    }
    if tables.is_empty() {
        return Err(IngestError::new(
            ErrorKind::Empty,
            "no table was found in the file",
            notes.iter().map(|n| n.text.clone()).collect::<Vec<_>>().join("; "),
        ));
    }
    let longs: Vec<Prepared> = tables.iter_mut().filter_map(Prepared::long_form).collect();
    tables.extend(longs);
    Ok(PreparedFile { tables, notes, format })
}

/// A choice naming a sheet the file lacks is an error, not a silent no-op.
fn check_sheets(choices: &[LayoutChoice], sheets: &[&str]) -> Result<()> {
    for c in choices {
        let Some(s) = &c.sheet else { continue };
        if !sheets.contains(&s.as_str()) {
            let hint = if sheets.is_empty() {
                "this file has no sheets: leave --sheet out".to_string()
            } else {
                format!("its sheets are: {}", sheets.join(", "))
            };
            return Err(IngestError::new(ErrorKind::Layout, format!("the file has no sheet named '{s}'"), hint));
        }
    }
    Ok(())
}

fn chosen_note(choice: &LayoutChoice) -> Note {
    Note::table(NoteKind::Header, format!("layout chosen when loading: {}", choice.describe()))
}

/// A sheet's table, with a note when its layout was chosen by a person.
fn sheet_table(p: Box<sheet::SheetPlan>, choice: &LayoutChoice) -> Prepared {
    let mut meta = p.finished.meta.clone();
    if !choice.is_auto() {
        meta.notes.insert(0, chosen_note(choice));
    }
    Prepared::new(meta, p.finished.schema.clone(), Source::Sheet(Arc::from(p)))
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
        assert_eq!(IngestOptions::names().len(), 10);
        o.set("worker_memory_bytes=512M").unwrap();
        assert_eq!(o.worker_limits().address_space_bytes, 512 << 20);
    }
}
