//! Writing a prepared table: streamed into a temporary Parquet file and
//! profiled on the way (or only profiled), each stage on its own thread.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{ErrorKind, IngestError, Result};
use crate::stats::{StatsBuilder, TableStats};
use crate::table::TableMeta;
use crate::Progress;

/// Stream a prepared table into the Parquet file `tmp`, profiling it on the
/// way. The caller renames it into place; on error it is removed here.
/// A table already written while its file was read ([`crate::prepare_writing`])
/// is only moved to `tmp`.
pub fn write_parquet_tmp(p: &crate::Prepared, tmp: &Path, progress: &dyn Progress) -> Result<TableStats> {
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if let Some(stats) = p.move_written(tmp)? {
        return Ok(stats);
    }
    let mut w = TableWriter::create(tmp, p.schema.clone(), &p.meta)?;
    let produced = p.batches(progress, &mut |b| w.push(b));
    w.finish(produced)
}

/// A Parquet file being written and profiled: batches go to a thread that
/// encodes Parquet and one that profiles, both fed as batches come. Dropped
/// unfinished, it stops both and removes the file.
pub struct TableWriter {
    path: PathBuf,
    to_writer: Option<SyncSender<RecordBatch>>,
    to_profiler: Option<SyncSender<RecordBatch>>,
    writer: Option<JoinHandle<Result<()>>>,
    profiler: Option<JoinHandle<TableStats>>,
    /// Finished well: the file stays.
    kept: bool,
}

fn werr(e: parquet::errors::ParquetError) -> IngestError {
    IngestError::new(ErrorKind::Io, format!("writing Parquet failed ({e})"), "check free disk space")
}

impl TableWriter {
    /// Start writing `path` (created or truncated) with `schema`, profiling
    /// the columns `meta` describes.
    pub fn create(path: &Path, schema: SchemaRef, meta: &TableMeta) -> Result<TableWriter> {
        let file = File::create(path)?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(werr)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
        let (stx, srx) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
        let mut stats = StatsBuilder::new(meta);
        let spawned = |e: std::io::Error| IngestError::internal(format!("starting a writing thread: {e}"));
        let mut w = TableWriter {
            path: path.to_path_buf(),
            to_writer: None,
            to_profiler: None,
            writer: None,
            profiler: None,
            kept: false,
        };
        w.writer = Some(
            std::thread::Builder::new()
                .name("parquet-writer".into())
                .spawn(move || -> Result<()> {
                    for b in rx {
                        writer.write(&b).map_err(werr)?;
                    }
                    writer.close().map_err(werr)?;
                    Ok(())
                })
                .map_err(spawned)?,
        );
        w.to_writer = Some(tx);
        w.profiler = Some(
            std::thread::Builder::new()
                .name("profiler".into())
                .spawn(move || {
                    for b in srx {
                        stats.update(&b);
                    }
                    stats.finish()
                })
                .map_err(spawned)?,
        );
        w.to_profiler = Some(stx);
        Ok(w)
    }

    /// Hand on one batch (shared by both threads, not copied).
    pub fn push(&mut self, b: RecordBatch) -> Result<()> {
        let stopped = || IngestError::new(ErrorKind::Io, "writing Parquet stopped", "check free disk space");
        let (Some(tx), Some(stx)) = (&self.to_writer, &self.to_profiler) else { return Err(stopped()) };
        stx.send(b.clone()).map_err(|_| IngestError::internal("the profiling thread stopped"))?;
        tx.send(b).map_err(|_| stopped())
    }

    /// Close the file and take the profile, once `produced` says whether
    /// every batch came. On any error the file is removed; a writer error
    /// explains a failed send better than the send itself.
    pub fn finish(mut self, produced: Result<()>) -> Result<TableStats> {
        let (written, stats) = self.stop();
        let outcome = match (written.and(stats), produced) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(st), Ok(())) => Ok(st),
        };
        self.kept = outcome.is_ok();
        outcome
    }

    fn stop(&mut self) -> (Result<()>, Result<TableStats>) {
        drop((self.to_writer.take(), self.to_profiler.take()));
        let written = match self.writer.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err(IngestError::internal("the Parquet writer panicked"))),
            None => Err(IngestError::internal("the Parquet writer was not started")),
        };
        let stats = match self.profiler.take() {
            Some(h) => h.join().map_err(|_| IngestError::internal("the profiling thread panicked")),
            None => Err(IngestError::internal("the profiling thread was not started")),
        };
        (written, stats)
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.stop();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Profile a prepared table without writing it anywhere.
pub fn profile(p: &crate::Prepared, progress: &dyn Progress) -> Result<TableStats> {
    let mut stats = StatsBuilder::new(&p.meta);
    p.batches(progress, &mut |b| {
        stats.update(&b);
        Ok(())
    })?;
    Ok(stats.finish())
}

/// A table written while its file was read ([`crate::prepare_writing`]):
/// its Parquet file, finished, and its profile. Removed when dropped
/// before it is moved into the catalog.
#[derive(Debug)]
pub struct Written {
    path: PathBuf,
    stats: Option<TableStats>,
    moved: bool,
}

impl Written {
    pub(crate) fn new(path: PathBuf, stats: TableStats) -> Written {
        Written { path, stats: Some(stats), moved: false }
    }

    /// Rename the file to `dest` (the same file system) and give its profile.
    pub(crate) fn move_to(mut self, dest: &Path) -> Result<TableStats> {
        std::fs::rename(&self.path, dest)?;
        self.moved = true;
        self.stats.take().ok_or_else(|| IngestError::internal("a written table was moved twice"))
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.moved {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
