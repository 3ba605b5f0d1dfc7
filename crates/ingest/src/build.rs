//! Cells to Arrow arrays, following the plan inference made.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;

use crate::cell::{self, Cell};
use crate::error::IngestError;
use crate::infer::ColumnPlan;
use crate::table::ColumnType;

/// Rows per Arrow batch (and Parquet row group slice).
pub const BATCH_ROWS: usize = 64 * 1024;

enum Col {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMillisecondBuilder),
    Text(StringBuilder),
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

struct ColumnBuilder<'p> {
    plan: &'p ColumnPlan,
    col: Col,
}

impl<'p> ColumnBuilder<'p> {
    fn new(plan: &'p ColumnPlan) -> Self {
        let col = match plan.dtype {
            ColumnType::Integer => Col::Int(Int64Builder::with_capacity(BATCH_ROWS)),
            ColumnType::Float => Col::Float(Float64Builder::with_capacity(BATCH_ROWS)),
            ColumnType::Boolean => Col::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            ColumnType::Date => Col::Date(Date32Builder::with_capacity(BATCH_ROWS)),
            ColumnType::DateTime => Col::Ts(TimestampMillisecondBuilder::with_capacity(BATCH_ROWS)),
            ColumnType::Text => Col::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8)),
        };
        ColumnBuilder { plan, col }
    }

    fn append(&mut self, c: Cell) {
        if c.is_null() {
            return self.append_null();
        }
        let plan = self.plan;
        match &mut self.col {
            Col::Int(b) => b.append_option(match c {
                Cell::Int(i) => Some(i),
                Cell::Float(f) => Some(f as i64),
                Cell::Text(s) => number_text(cell::trim(s), plan, |t| cell::parse_int(t, plan.num_fmt), |i| -i),
                _ => None,
            }),
            Col::Float(b) => b.append_option(match c {
                Cell::Int(i) => Some(i as f64),
                Cell::Float(f) => Some(f),
                Cell::Text(s) => number_text(cell::trim(s), plan, |t| cell::parse_number(t, plan.num_fmt), |f| -f),
                _ => None,
            }),
            Col::Bool(b) => b.append_option(match c {
                Cell::Bool(v) => Some(v),
                Cell::Text(s) => cell::parse_bool(cell::trim(s)),
                _ => None,
            }),
            Col::Date(b) => b.append_option(
                match c {
                    Cell::DateTime(d) => Some(d.date()),
                    Cell::Text(s) => cell::parse_date(cell::trim(s), plan.date_fmt).map(|d| d.date()),
                    _ => None,
                }
                .map(|d| (d - epoch()).num_days() as i32),
            ),
            Col::Ts(b) => b.append_option(
                match c {
                    Cell::DateTime(d) => Some(d),
                    Cell::Text(s) => cell::parse_date(cell::trim(s), plan.date_fmt),
                    _ => None,
                }
                .map(|d| d.and_utc().timestamp_millis()),
            ),
            Col::Text(b) => match c {
                Cell::Text(s) => {
                    let t = cell::trim(s);
                    match (!plan.canonical.is_empty()).then(|| plan.canonical.get(t)).flatten() {
                        Some(canon) => b.append_value(canon),
                        None => b.append_value(t),
                    }
                }
                other => b.append_value(other.display()),
            },
        }
    }

    fn append_null(&mut self) {
        match &mut self.col {
            Col::Int(b) => b.append_null(),
            Col::Float(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Ts(b) => b.append_null(),
            Col::Text(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match &mut self.col {
            Col::Int(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish()),
            Col::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// Read a number written as text, taking off the column's unit (`45%`,
/// `-$5`) when it has one.
fn number_text<T>(t: &str, plan: &ColumnPlan, parse: impl Fn(&str) -> Option<T>, negate: impl Fn(T) -> T) -> Option<T> {
    if plan.unit.is_some() {
        if let Some((_, rest, neg)) = cell::split_unit(t) {
            return parse(rest).map(|v| if neg { negate(v) } else { v });
        }
    }
    parse(t)
}

/// Batches built apart (pieces of a file) re-cut to [`BATCH_ROWS`] in the
/// order they come: the batches one thread building the whole table makes,
/// so the Parquet file is the same either way.
pub(crate) struct Recut(arrow::compute::BatchCoalescer);

impl Recut {
    pub(crate) fn new(schema: SchemaRef) -> Recut {
        Recut(arrow::compute::BatchCoalescer::new(schema, BATCH_ROWS))
    }

    /// Take `b`; hand each full batch to `sink`.
    pub(crate) fn push(
        &mut self,
        b: RecordBatch,
        sink: &mut dyn FnMut(RecordBatch) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        self.0.push_batch(b).map_err(join_error)?;
        self.send(sink)
    }

    /// Hand on what is left, the last (short) batch.
    pub(crate) fn finish(
        &mut self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        self.0.finish_buffered_batch().map_err(join_error)?;
        self.send(sink)
    }

    fn send(&mut self, sink: &mut dyn FnMut(RecordBatch) -> Result<(), IngestError>) -> Result<(), IngestError> {
        while let Some(b) = self.0.next_completed_batch() {
            sink(b)?;
        }
        Ok(())
    }
}

fn join_error(e: arrow::error::ArrowError) -> IngestError {
    IngestError::internal(format!("joining batches: {e}"))
}

/// Accumulates rows into record batches of [`BATCH_ROWS`].
pub struct BatchBuilder<'p> {
    schema: SchemaRef,
    /// Source column index for each output column.
    sources: Vec<usize>,
    cols: Vec<ColumnBuilder<'p>>,
    rows: usize,
}

impl<'p> BatchBuilder<'p> {
    pub fn new(schema: SchemaRef, sources: Vec<usize>, plans: &'p [ColumnPlan]) -> Self {
        let cols = sources.iter().map(|&s| ColumnBuilder::new(&plans[s])).collect();
        BatchBuilder { schema, sources, cols, rows: 0 }
    }

    pub fn push_row<'c>(&mut self, cell: impl Fn(usize) -> Cell<'c>) {
        for (b, &src) in self.cols.iter_mut().zip(&self.sources) {
            b.append(cell(src));
        }
        self.rows += 1;
    }

    pub fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(&mut self) -> Result<RecordBatch, IngestError> {
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(|c| c.finish()).collect();
        let n = self.rows;
        self.rows = 0;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| IngestError::internal(format!("building a batch: {e}")))
    }
}
