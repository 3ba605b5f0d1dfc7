//! Both passes over a UTF-8 text file, chunk by chunk on every core.
//!
//! The file is cut at record boundaries ([`crate::chunks`]). Pass 1 shapes
//! and infers each chunk on its own and merges the results in file order
//! ([`Shaper::merge`]), which gives what one walk over the whole file gives.
//! Pass 2 builds each chunk's rows into Arrow on its own and hands the
//! batches on in file order, re-cut to [`crate::build::BATCH_ROWS`], so the Parquet file
//! is byte for byte the one a single thread writes. A few chunks are in
//! flight at a time, so memory stays flat whatever the file's size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use arrow::record_batch::RecordBatch;

use crate::build::{BatchBuilder, Recut};
use crate::chunks::{self, Chunk};
use crate::error::{IngestError, Result};
use crate::records;
use crate::shape::{Layout, RowLike, Shaper};
use crate::speculate::{ChunkBuild, Speculation};
use crate::{IngestOptions, Progress};

/// A chunk, and the number of its first record in the file (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub chunk: Chunk,
    pub first_record: u64,
}

/// A text file read in pieces: where it is, how its records are written,
/// and the pieces, for pass 2 to read them as pass 1 did.
#[derive(Debug, Clone)]
pub struct Pieces {
    pub path: PathBuf,
    /// Bytes of BOM before the text.
    pub bom: u64,
    pub delimiter: u8,
    /// Records before the first data row.
    pub data_start: u64,
    pub list: Vec<Piece>,
}

/// What pass 1 over the chunks found.
pub(crate) struct Scanned {
    pub shaper: Shaper<csv::StringRecord>,
    pub records: u64,
    pub pieces: Pieces,
}

/// Threads to read with: the cores this process may use.
pub(crate) fn threads(chunks: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks).max(1)
}

/// One chunk walked by itself.
struct ChunkScan {
    shaper: Shaper<csv::StringRecord>,
    records: u64,
    unclosed: Option<u64>,
    /// The last piece held fewer rows than one walk looks back over for
    /// trailing totals and footnotes.
    short_tail: bool,
    /// Its rows built with a [`Speculation`]'s plan.
    built: Option<Vec<RecordBatch>>,
}

/// Where pass 1 reads: a UTF-8 file cut into chunks.
pub(crate) struct Cut<'a> {
    pub path: &'a Path,
    /// Bytes of BOM skipped.
    pub bom: u64,
    pub chunks: &'a [Chunk],
    pub dialect: records::Dialect,
}

/// Pass 1 over the chunks of a file, building them too while `spec` is
/// live. `None` when the header does not lie inside the first chunk (then
/// one thread reads the file, as it always could).
pub(crate) fn scan(
    cut: &Cut<'_>,
    opts: &IngestOptions,
    layout: &Layout,
    spec: Option<&Speculation>,
    progress: &dyn Progress,
) -> Result<Option<Scanned>> {
    let Cut { path, bom, chunks, dialect } = *cut;
    let work = |k: usize| scan_chunk(cut, k, opts, layout, spec.and_then(Speculation::building));
    let mut merged: Option<Shaper<csv::StringRecord>> = None;
    let mut pieces = Vec::with_capacity(chunks.len());
    let mut records = 0u64;
    let mut done = 0u64;
    let total: u64 = chunks.iter().map(|c| c.len).sum();
    let outcome = in_order(chunks.len(), threads(chunks.len()), work, |k, scanned: Result<ChunkScan>| {
        let s = scanned?;
        if let Some(line) = s.unclosed {
            return Err(records::unclosed_quote(line));
        }
        if s.short_tail {
            // Rows of the piece before may be trailing too: one thread decides.
            return Err(IngestError::internal(SHORT_TAIL));
        }
        let data_start = layout.data_start as u64;
        pieces.push(Piece { chunk: chunks[k], first_record: records });
        match merged.as_mut() {
            None if s.records < data_start => return Err(IngestError::internal(HEADER_BEYOND)),
            None => merged = Some(s.shaper),
            Some(m) => m.merge(s.shaper, records - data_start),
        }
        if let (Some(spec), Some(m)) = (spec, merged.as_ref()) {
            spec.take(m, s.built)?;
        }
        records += s.records;
        done += chunks[k].len;
        progress.advance("scanning", done, total);
        Ok(())
    });
    match outcome {
        Err(e) if e.problem == HEADER_BEYOND || e.problem == SHORT_TAIL => Ok(None),
        Err(e) => Err(e),
        Ok(()) => Ok(merged.map(|shaper| {
            let (path, delimiter, data_start) = (path.to_path_buf(), dialect.delimiter, layout.data_start as u64);
            Scanned { shaper, records, pieces: Pieces { path, bom, delimiter, data_start, list: pieces } }
        })),
    }
}

const HEADER_BEYOND: &str = "the header lies beyond the first chunk";
const SHORT_TAIL: &str = "the last chunk holds fewer rows than a walk holds back";

/// Shape and infer chunk `k`, and build it with `plan` when given. Rows
/// are numbered from 0 within the chunk (after the header rows, in the
/// first); lines are the file's.
fn scan_chunk(
    cut: &Cut<'_>,
    k: usize,
    opts: &IngestOptions,
    layout: &Layout,
    plan: Option<&crate::Finished>,
) -> Result<ChunkScan> {
    let (chunk, last) = (&cut.chunks[k], k + 1 == cut.chunks.len());
    let (path, bom, dialect) = (cut.path, cut.bom, cut.dialect);
    let mut build = plan.map(ChunkBuild::new);
    let input = Box::new(chunks::open(path, bom, chunk)?);
    let mut rdr = records::reader_at(input, dialect, opts.max_record_bytes, chunk.line);
    let mut shaper = Shaper::new(layout, true);
    let skip = if chunk.start == 0 { layout.data_start as u64 } else { 0 };
    let (mut n, mut last_multiline) = (0u64, None);
    let mut rec = csv::StringRecord::new();
    loop {
        match records::next_record(&mut rdr, &mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => return Err(records::utf8_retry()),
            Err(e) => return Err(records::read_error(&rdr, e)),
        }
        let line = records::record_line(&rdr, &rec, n);
        records::check_record(&rec, line, opts.max_record_bytes, opts.max_columns)?;
        last_multiline = rec.as_slice().contains('\n').then_some(line);
        if n >= skip {
            if let Some(b) = build.as_mut() {
                b.push(n - skip, &rec)?;
            }
            rec = shaper.push(n - skip, line, rec).unwrap_or_default();
        }
        n += 1;
    }
    let short_tail = last && !shaper.tail_full();
    let unclosed = if last {
        shaper.finish();
        records::unclosed(&rdr, last_multiline)
    } else {
        shaper.flush_tail();
        None
    };
    let built = build.map(|b| b.finish(&shaper.excluded)).transpose()?;
    Ok(ChunkScan { shaper, records: n, unclosed, short_tail, built })
}

/// Pass 2 over the pieces pass 1 found: the kept rows as batches of
/// [`crate::build::BATCH_ROWS`], in file order.
pub(crate) fn batches(
    p: &Pieces,
    f: &crate::Finished,
    progress: &dyn Progress,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let pieces = &p.list;
    let total: u64 = pieces.iter().map(|p| p.chunk.len).sum();
    let mut done = 0u64;
    let work = |k: usize| build_piece(p, f, &pieces[k]);
    let built = |k: usize| {
        done += pieces[k].chunk.len;
        progress.advance("converting", done, total);
    };
    built_in_order(pieces.len(), f.schema.clone(), work, built, sink)
}

/// Build `n` pieces on every core (`work`) and hand their batches to `sink`
/// in piece order, re-cut ([`Recut`]) — the batches one thread makes;
/// `built(k)` after piece `k` is handed on.
pub(crate) fn built_in_order(
    n: usize,
    schema: arrow::datatypes::SchemaRef,
    work: impl Fn(usize) -> Result<Vec<RecordBatch>> + Sync,
    mut built: impl FnMut(usize),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut recut = Recut::new(schema);
    in_order(n, threads(n), work, |k, batches: Result<Vec<RecordBatch>>| {
        for b in batches? {
            recut.push(b, sink)?;
        }
        built(k);
        Ok(())
    })?;
    recut.finish(sink)
}

/// One piece's kept rows, built.
fn build_piece(p: &Pieces, f: &crate::Finished, piece: &Piece) -> Result<Vec<RecordBatch>> {
    let mut builder = BatchBuilder::new(f.schema.clone(), f.sources.clone(), &f.plans);
    let input = chunks::open(&p.path, p.bom, &piece.chunk)?;
    let mut rdr = records::reader(Box::new(input), p.delimiter, usize::MAX >> 1);
    let mut rec = csv::StringRecord::new();
    let start = p.data_start;
    let mut n = piece.first_record;
    let mut out = Vec::new();
    while records::next_record(&mut rdr, &mut rec).map_err(records::csv_error)? {
        if n >= start && !f.excluded.contains_key(&(n - start)) && !RowLike::is_blank(&rec) {
            builder.push_row(|i| rec.cell(i));
            if builder.is_full() {
                out.push(builder.finish()?);
            }
        }
        n += 1;
    }
    if !builder.is_empty() {
        out.push(builder.finish()?);
    }
    Ok(out)
}

/// Run `work(k)` for `k` in `0..n` on `threads` threads, and `take` each
/// result on this thread in order of `k`. At most `2 × threads` results
/// wait at a time; after an error, no new work starts.
pub(crate) fn in_order<T: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(usize) -> T + Sync,
    mut take: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let window = 2 * threads;
    let next = AtomicUsize::new(0);
    let taken = Mutex::new(0usize);
    let moved = Condvar::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, T)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (work, next, taken, moved, stop) = (&work, &next, &taken, &moved, &stop);
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= n {
                    return;
                }
                let mut t = taken.lock().unwrap_or_else(|p| p.into_inner());
                while k >= *t + window && !stop.load(Ordering::SeqCst) {
                    t = moved.wait(t).unwrap_or_else(|p| p.into_inner());
                }
                drop(t);
                if stop.load(Ordering::SeqCst) || tx.send((k, work(k))).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut want = 0;
        let result = (|| {
            for (k, t) in &rx {
                waiting.insert(k, t);
                while let Some(t) = waiting.remove(&want) {
                    take(want, t)?;
                    want += 1;
                    *taken.lock().unwrap_or_else(|p| p.into_inner()) = want;
                    moved.notify_all();
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::SeqCst);
        moved.notify_all();
        drop(rx);
        result
    })
}
