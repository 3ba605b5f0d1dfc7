//! Parquet input: already typed, so columns are only renamed to SQL-friendly
//! names and cast to Quarry's column types.
//!
//! A Parquet file can claim far more than it holds: run-length and
//! dictionary encodings let a few megabytes stand for billions of values or
//! gigabytes of repeated text. So the footer is checked before anything is
//! decoded (columns, values per byte of file), the file is streamed one batch
//! at a time, text columns are decoded as dictionaries first so the size of a
//! batch is known before its strings are expanded, and dates and timestamps
//! no calendar holds become null with a note instead of reaching a formatter
//! (found from the footer's statistics, or by one pass over the date columns
//! when those cannot tell).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::error::{ErrorKind, IngestError, Result};
use crate::table::{ColumnMeta, ColumnType, Note, NoteKind, TableMeta};
use crate::IngestOptions;

/// Rows per decoded batch.
const BATCH: usize = 8192;

fn bad(e: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        ErrorKind::Corrupt,
        format!("the Parquet file could not be read ({e})"),
        "check that the file is complete; write it again if it was cut short",
    )
}

/// Run a read of the `parquet` crate, turning a panic into an error: it
/// asserts on some corrupt footers (negative offsets, unknown enum values)
/// instead of returning one — found by the mutated-Parquet fuzz target. The
/// footer is also checked first ([`check_chunks`]) so the usual cases get a
/// precise message.
fn guarded<T>(read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a malformed structure".into());
        Err(bad(why))
    })
}

/// Every column chunk must lie inside the file.
fn check_chunks(md: &parquet::file::metadata::ParquetMetaData, file_len: u64) -> Result<()> {
    for (g, rg) in md.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let (start, len) = (start, c.compressed_size());
            if start < 0 || len < 0 || (start as u64).saturating_add(len as u64) > file_len {
                return Err(bad(format!(
                    "row group {} says a column's data is at bytes {start}…{}, outside the file's {file_len} bytes",
                    g + 1,
                    start.saturating_add(len)
                )));
            }
        }
    }
    Ok(())
}

/// A file that claims more than its limit `limit` allows.
fn too_large(problem: String, limit: &str) -> IngestError {
    IngestError::new(
        ErrorKind::TooLarge,
        problem,
        format!(
            "this looks like a decompression bomb; if the file is genuine, split it or raise {limit} (quarry --ingest-limit {limit}=N)"
        ),
    )
}

/// A Parquet file ready to stream: where it is, how to read it, and what
/// each column becomes.
#[derive(Debug, Clone)]
pub struct ParquetPlan {
    path: PathBuf,
    /// The file's schema with text columns read as dictionaries.
    read_schema: SchemaRef,
    out_schema: SchemaRef,
    types: Vec<ColumnType>,
    labels: Vec<String>,
    max_batch_bytes: u64,
}

/// The embedded Arrow schema (`ARROW:schema`, a flatbuffer in the footer)
/// is never decoded: arrow-ipc 59 panics on enum values it does not know
/// (a mutated file found it), and the Parquet schema says all Quarry needs.
fn open_builder(path: &Path, schema: Option<SchemaRef>) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let f = crate::detect::open_regular(path)?;
    let opts = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let opts = match schema {
        Some(s) => opts.with_schema(s),
        None => opts,
    };
    ParquetRecordBatchReaderBuilder::try_new_with_options(f, opts).map_err(bad)
}

/// Text read as `Dictionary(Int32, Utf8)`: keys and the file's dictionary,
/// not the expanded strings.
fn read_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Dictionary(Box::new(DataType::Int32), Box::new(t.clone())),
        other => other.clone(),
    }
}

/// Check the footer and plan the read. Nothing is decoded but date and
/// timestamp columns, which are scanned once for values no calendar holds.
pub fn prepare(path: &Path, opts: &IngestOptions) -> Result<(TableMeta, ParquetPlan)> {
    guarded(|| prepare_inner(path, opts))
}

fn prepare_inner(path: &Path, opts: &IngestOptions) -> Result<(TableMeta, ParquetPlan)> {
    let builder = open_builder(path, None)?;
    let schema = builder.schema().clone();
    let md = builder.metadata().clone();
    if schema.fields().len() > opts.max_columns {
        return Err(IngestError::new(
            ErrorKind::TooLarge,
            format!("the Parquet file has {} columns, above the limit of {}", schema.fields().len(), opts.max_columns),
            "select the columns you need into a new file, or raise max_columns (quarry --ingest-limit max_columns=N)",
        ));
    }
    let values: u64 =
        md.row_groups().iter().flat_map(|rg| rg.columns()).map(|c| c.num_values().max(0) as u64).sum::<u64>();
    let file_len = std::fs::metadata(path)?.len().max(1);
    check_chunks(&md, file_len)?;
    let allowed = file_len.saturating_mul(opts.max_values_per_byte).saturating_add(10_000_000);
    if values > allowed {
        return Err(too_large(
            format!(
                "the Parquet file claims {values} values in {file_len} bytes (more than {} per byte)",
                opts.max_values_per_byte
            ),
            "max_values_per_byte",
        ));
    }
    let labels: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let names = crate::names::column_names(&labels);
    let mut notes = Vec::new();
    let types: Vec<ColumnType> = schema
        .fields()
        .iter()
        .map(|f| {
            ColumnType::from_arrow(f.data_type()).unwrap_or_else(|| {
                notes.push(Note::column(
                    NoteKind::Converted,
                    f.name(),
                    format!("'{}' of type {} stored as text", f.name(), f.data_type()),
                ));
                ColumnType::Text
            })
        })
        .collect();
    let columns: Vec<ColumnMeta> = names
        .iter()
        .zip(&labels)
        .zip(&types)
        .map(|((n, l), t)| ColumnMeta { name: n.clone(), label: l.clone(), dtype: *t })
        .collect();
    let read_fields: Vec<Field> =
        schema.fields().iter().map(|f| f.as_ref().clone().with_data_type(read_type(f.data_type()))).collect();
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let mut meta = TableMeta {
        name: crate::names::table_name(&stem, None),
        source: path.display().to_string(),
        sheet: None,
        format: "parquet".into(),
        columns,
        notes,
        excluded: Vec::new(),
        part: None,
        layout: None,
    };
    let plan = ParquetPlan {
        path: path.to_path_buf(),
        read_schema: Arc::new(Schema::new_with_metadata(read_fields, schema.metadata().clone())),
        out_schema: Arc::new(meta.schema()),
        types,
        labels,
        max_batch_bytes: opts.max_batch_bytes,
    };
    meta.notes.extend(plan.calendar_notes(&meta)?);
    Ok((meta, plan))
}

impl ParquetPlan {
    pub fn schema(&self) -> SchemaRef {
        self.out_schema.clone()
    }

    /// One pass over the date and timestamp columns: a note for each that
    /// holds values outside the calendar (they are read as null).
    fn calendar_notes(&self, meta: &TableMeta) -> Result<Vec<Note>> {
        let builder = open_builder(&self.path, None)?;
        // Only columns whose footer statistics cannot rule it out are read.
        let cols: Vec<usize> = (0..self.types.len())
            .filter(|&i| matches!(self.types[i], ColumnType::Date | ColumnType::DateTime))
            .filter(|&i| !footer_proves_calendar(builder.metadata(), i, self.read_schema.field(i).data_type()))
            .collect();
        if cols.is_empty() {
            return Ok(Vec::new());
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), cols.iter().copied());
        let reader = builder.with_projection(mask).with_batch_size(BATCH).build().map_err(bad)?;
        let mut out_of_range = vec![0u64; cols.len()];
        for b in reader {
            let b = b.map_err(bad)?;
            for (k, &i) in cols.iter().enumerate() {
                let c = cast(b.column(k), &self.types[i].arrow()).map_err(bad)?;
                out_of_range[k] += (c.null_count() as u64).abs_diff(calendar_only(&c).null_count() as u64);
            }
        }
        Ok(cols
            .iter()
            .zip(out_of_range)
            .filter(|(_, n)| *n > 0)
            .map(|(&i, n)| {
                Note::column(
                    NoteKind::OutOfRange,
                    &meta.columns[i].name,
                    format!(
                        "'{}': {n} values lie outside the calendar (beyond year ±262 000) and were read as null",
                        self.labels[i]
                    ),
                )
            })
            .collect())
    }
}

const MIN_DAY: i32 = -96_465_658; // -262143-01-01
const MAX_DAY: i32 = 95_026_601; // +262142-12-31
const MS_PER_DAY: i64 = 86_400_000;

/// True when the footer's statistics show that root column `i` holds only
/// dates or times the calendar can show, so it need not be scanned.
/// Nanosecond timestamps always fit (i64 nanoseconds span ±292 years).
fn footer_proves_calendar(md: &parquet::file::metadata::ParquetMetaData, i: usize, t: &DataType) -> bool {
    use arrow::datatypes::TimeUnit;
    use parquet::file::statistics::Statistics;
    let per_day: i64 = match t {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => return true,
        DataType::Date32 => 1,
        DataType::Timestamp(TimeUnit::Second, _) => 86_400,
        DataType::Timestamp(TimeUnit::Millisecond, _) => MS_PER_DAY,
        DataType::Timestamp(TimeUnit::Microsecond, _) => MS_PER_DAY * 1000,
        _ => return false,
    };
    let schema = md.file_metadata().schema_descr();
    let Some(leaf) = (0..schema.num_columns()).find(|&j| schema.get_column_root_idx(j) == i) else { return false };
    let range = (MIN_DAY as i64).saturating_mul(per_day)..=(MAX_DAY as i64).saturating_mul(per_day);
    md.row_groups().iter().all(|rg| match rg.column(leaf).statistics() {
        Some(Statistics::Int32(v)) => v
            .min_opt()
            .zip(v.max_opt())
            .is_some_and(|(a, b)| range.contains(&(*a as i64)) && range.contains(&(*b as i64))),
        Some(Statistics::Int64(v)) => {
            v.min_opt().zip(v.max_opt()).is_some_and(|(a, b)| range.contains(a) && range.contains(b))
        }
        _ => false,
    })
}

/// Days and milliseconds that chrono (and so every formatter) can show;
/// anything else becomes null.
fn calendar_only(c: &ArrayRef) -> ArrayRef {
    match c.data_type() {
        DataType::Date32 => {
            let a = c.as_primitive::<arrow::datatypes::Date32Type>();
            let out: Date32Array = a.iter().map(|v| v.filter(|d| (MIN_DAY..=MAX_DAY).contains(d))).collect();
            Arc::new(out)
        }
        DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, tz) => {
            let a = c.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let range = (MIN_DAY as i64 * MS_PER_DAY)..=(MAX_DAY as i64 * MS_PER_DAY);
            let out: TimestampMillisecondArray = a.iter().map(|v| v.filter(|ms| range.contains(ms))).collect();
            Arc::new(out.with_timezone_opt(tz.clone()))
        }
        _ => c.clone(),
    }
}

/// Bytes a dictionary-encoded text column expands to in this batch,
/// computed from the keys and the dictionary's offsets.
fn expanded_bytes(c: &ArrayRef) -> u64 {
    let DataType::Dictionary(_, value) = c.data_type() else { return c.get_array_memory_size() as u64 };
    let d = c.as_dictionary::<Int32Type>();
    let values = d.values();
    let len = |i: usize| -> u64 {
        match value.as_ref() {
            DataType::Utf8 => values.as_string::<i32>().value_length(i).max(0) as u64,
            DataType::LargeUtf8 => values.as_string::<i64>().value_length(i).max(0) as u64,
            _ => 0,
        }
    };
    let n = values.len();
    d.keys().iter().flatten().map(|k| if (k as usize) < n { len(k as usize) } else { 0 }).sum::<u64>()
        + 4 * d.len() as u64
}

/// Stream the file as Quarry-typed batches, refusing any batch that would
/// expand past the budget before its text is expanded.
pub fn batches(plan: &ParquetPlan, sink: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    guarded(|| batches_inner(plan, sink))
}

fn batches_inner(plan: &ParquetPlan, sink: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    let reader =
        open_builder(&plan.path, Some(plan.read_schema.clone()))?.with_batch_size(BATCH).build().map_err(bad)?;
    let mut row: u64 = 0;
    for b in reader {
        let b = b.map_err(bad)?;
        let size: u64 = b.columns().iter().map(expanded_bytes).sum();
        if size > plan.max_batch_bytes {
            return Err(too_large(format!(
                "rows {}–{} of the Parquet file expand to {} MiB (the limit per {BATCH} rows is {} MiB): dictionary or run-length amplification",
                row + 1,
                row + b.num_rows() as u64,
                size >> 20,
                plan.max_batch_bytes >> 20
            ), "max_batch_bytes"));
        }
        row += b.num_rows() as u64;
        let cols = b
            .columns()
            .iter()
            .zip(&plan.types)
            .map(|(c, t)| cast(c, &t.arrow()).map(|c| calendar_only(&c)).map_err(bad))
            .collect::<Result<Vec<_>>>()?;
        sink(RecordBatch::try_new(plan.out_schema.clone(), cols).map_err(bad)?)?;
    }
    Ok(())
}
