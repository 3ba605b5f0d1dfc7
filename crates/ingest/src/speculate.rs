//! One pass over a large text file when its first rows' types hold.
//!
//! Pass 1 (the scan of `parallel`) infers every column over all rows;
//! pass 2 reads the file again to build them. In most files the types are
//! plain from the first rows, so a [`Speculation`] takes a plan from them
//! ([`sample_plan`]) and, while pass 1 runs, also builds each chunk with
//! it ([`ChunkBuild`]) and writes the batches in file order. When pass 1
//! ends, the plan the whole file gives is compared with it
//! ([`Speculation::finish`]): the same table (schema, columns, the kept
//! columns' plans) → the file written is the table, byte for byte what
//! pass 2 writes (the same builder, plans, chunks and re-cutting into
//! batches); otherwise it is removed and pass 2 runs as before. A merged
//! column's type leaving the plan's stops the building at once. Rows pass 1
//! keeps out are taken out of each chunk's batches by their index, the
//! rows pass 2 would skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use arrow::array::BooleanArray;
use arrow::record_batch::RecordBatch;

use crate::build::{BatchBuilder, Recut};
use crate::catalog::{TableWriter, Written};
use crate::chunks::{self, Chunk};
use crate::error::{IngestError, Result};
use crate::records;
use crate::shape::{Layout, RowLike, Shaper};
use crate::table::ExcludedRow;
use crate::{Finished, IngestOptions};

/// Data rows the plan is taken from.
pub(crate) const SAMPLE_ROWS: u64 = 16_384;

/// The shaping of the first [`SAMPLE_ROWS`] data rows of `chunk` (the
/// file's first), for [`crate::finish_columns`] to make the plan from;
/// none when they cannot be read (the scan then says why).
pub(crate) fn sample_plan(
    path: &Path,
    bom: u64,
    chunk: &Chunk,
    dialect: records::Dialect,
    opts: &IngestOptions,
    layout: &Layout,
) -> Option<Shaper<csv::StringRecord>> {
    let input = Box::new(chunks::open(path, bom, chunk).ok()?);
    let mut rdr = records::reader_at(input, dialect, opts.max_record_bytes, chunk.line);
    let mut shaper = Shaper::new(layout, true);
    let skip = layout.data_start as u64;
    let mut rec = csv::StringRecord::new();
    let mut n = 0u64;
    while n < skip + SAMPLE_ROWS && records::next_record(&mut rdr, &mut rec).ok()? {
        if n >= skip {
            rec = shaper.push(n - skip, n + 1, rec).unwrap_or_default();
        }
        n += 1;
    }
    shaper.flush_tail();
    Some(shaper)
}

/// A table being written while its file is scanned, with the plan its
/// first rows gave.
pub(crate) struct Speculation {
    plan: Finished,
    prefer_comma: bool,
    /// Still building: no merged column has left the plan's type.
    live: AtomicBool,
    out: Mutex<Option<Out>>,
}

struct Out {
    writer: TableWriter,
    /// Cut as pass 2 cuts its pieces' batches.
    recut: Recut,
    path: PathBuf,
}

/// Scratch files of this process, numbered.
static SCRATCH: AtomicU64 = AtomicU64::new(0);

impl Speculation {
    /// Start writing a table with `plan` into a new `*.tmp` file in `scratch`.
    pub(crate) fn start(plan: Finished, prefer_comma: bool, scratch: &Path) -> Result<Speculation> {
        std::fs::create_dir_all(scratch)?;
        let n = SCRATCH.fetch_add(1, Ordering::SeqCst);
        let path = scratch.join(format!("reading-{}-{n}.parquet.tmp", std::process::id()));
        let writer = TableWriter::create(&path, plan.schema.clone(), &plan.meta)?;
        let recut = Recut::new(plan.schema.clone());
        let out = Mutex::new(Some(Out { writer, recut, path }));
        Ok(Speculation { plan, prefer_comma, live: AtomicBool::new(true), out })
    }

    /// The plan to build chunks with, while building is still worth it.
    pub(crate) fn building(&self) -> Option<&Finished> {
        self.live.load(Ordering::SeqCst).then_some(&self.plan)
    }

    /// Stop building: dropping the writer stops its threads and removes the file.
    fn give_up(&self) -> Result<()> {
        self.live.store(false, Ordering::SeqCst);
        drop(self.lock().take());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Out>> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next chunk in file order: `merged` is the shaping of the file up
    /// to and with it, `built` its rows as the plan builds them (none when
    /// building had stopped when the chunk was read).
    pub(crate) fn take(&self, merged: &Shaper<csv::StringRecord>, built: Option<Vec<RecordBatch>>) -> Result<()> {
        let Some(built) = built.filter(|_| self.live.load(Ordering::SeqCst)) else { return self.give_up() };
        let left = self
            .plan
            .sources
            .iter()
            .any(|&s| merged.columns[s].plan(self.prefer_comma).dtype != self.plan.plans[s].dtype);
        if left {
            return self.give_up();
        }
        let mut guard = self.lock();
        let Some(out) = guard.as_mut() else { return Ok(()) };
        let Out { writer, recut, .. } = out;
        let sent = built.into_iter().try_for_each(|b| recut.push(b, &mut |b| writer.push(b)));
        if let Err(e) = sent {
            // The writer's own error (a full disk) says more than the send's.
            let out = guard.take().expect("checked above");
            drop(guard);
            return Err(out.writer.finish(Err(e)).err().unwrap_or_else(|| IngestError::internal("writing stopped")));
        }
        crate::catalog::failpoint("load:reading");
        Ok(())
    }

    /// After the scan, with `whole`, the table the whole file gives: the
    /// written table when it is that table, else none (the file removed).
    pub(crate) fn finish(self, whole: &Finished) -> Result<Option<Written>> {
        let Some(mut out) = self.lock().take() else { return Ok(None) };
        if !self.live.load(Ordering::SeqCst) || !same_table(&self.plan, whole) {
            return Ok(None);
        }
        let Out { writer, recut, .. } = &mut out;
        let sent = recut.finish(&mut |b| writer.push(b));
        let stats = out.writer.finish(sent)?;
        Ok(Some(Written::new(out.path, stats)))
    }
}

/// Whether building with `a` makes the table `b` makes: the same schema,
/// columns (names, labels, types) and plans for the columns kept.
fn same_table(a: &Finished, b: &Finished) -> bool {
    let column = |c: &crate::ColumnMeta| (c.name.clone(), c.label.clone(), c.dtype);
    a.schema == b.schema
        && a.sources == b.sources
        && a.sources.iter().all(|&s| a.plans.get(s) == b.plans.get(s))
        && a.meta.columns.iter().map(column).eq(b.meta.columns.iter().map(column))
}

/// One chunk's rows built with the plan, each with its data-row index in
/// the chunk, so rows kept out can be taken out when the chunk is walked.
pub(crate) struct ChunkBuild<'p> {
    builder: BatchBuilder<'p>,
    batches: Vec<RecordBatch>,
    indices: Vec<u64>,
}

impl<'p> ChunkBuild<'p> {
    pub(crate) fn new(plan: &'p Finished) -> Self {
        ChunkBuild {
            builder: BatchBuilder::new(plan.schema.clone(), plan.sources.clone(), &plan.plans),
            batches: Vec::new(),
            indices: Vec::new(),
        }
    }

    /// Build data row `index` (pass 2 builds every row that is not blank
    /// and not kept out).
    pub(crate) fn push(&mut self, index: u64, rec: &csv::StringRecord) -> Result<()> {
        if RowLike::is_blank(rec) {
            return Ok(());
        }
        self.builder.push_row(|i| rec.cell(i));
        self.indices.push(index);
        if self.builder.is_full() {
            self.batches.push(self.builder.finish()?);
        }
        Ok(())
    }

    /// The batches, without the rows the chunk's walk kept out.
    pub(crate) fn finish(mut self, excluded: &BTreeMap<u64, ExcludedRow>) -> Result<Vec<RecordBatch>> {
        if !self.builder.is_empty() {
            self.batches.push(self.builder.finish()?);
        }
        if excluded.is_empty() {
            return Ok(self.batches);
        }
        let mut at = 0;
        let mut kept = Vec::with_capacity(self.batches.len());
        for b in self.batches {
            let rows = &self.indices[at..at + b.num_rows()];
            at += b.num_rows();
            let keep: BooleanArray = rows.iter().map(|i| Some(!excluded.contains_key(i))).collect();
            let b = arrow::compute::filter_record_batch(&b, &keep)
                .map_err(|e| IngestError::internal(format!("leaving rows out: {e}")))?;
            if b.num_rows() > 0 {
                kept.push(b);
            }
        }
        Ok(kept)
    }
}
