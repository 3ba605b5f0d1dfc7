//! Writing a prepared table: streamed into a temporary Parquet file and
//! profiled on the way (or only profiled), each stage on its own thread.

use std::fs::File;
use std::path::Path;

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{ErrorKind, IngestError, Result};
use crate::stats::{StatsBuilder, TableStats};
use crate::Progress;

/// Stream a prepared table into the Parquet file `tmp`, profiling it on the
/// way. The caller renames it into place; on error it is removed here.
pub fn write_parquet_tmp(p: &crate::Prepared, tmp: &Path, progress: &dyn Progress) -> Result<TableStats> {
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = File::create(tmp)?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let werr = |e: parquet::errors::ParquetError| {
        IngestError::new(ErrorKind::Io, format!("writing Parquet failed ({e})"), "check free disk space")
    };
    let writer = ArrowWriter::try_new(file, p.schema.clone(), Some(props)).map_err(werr)?;
    // Three stages: this thread builds batches (on every core for large
    // text), one profiles them, one encodes Parquet; batches are shared.
    let (stats, result) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<arrow::record_batch::RecordBatch>(4);
        let (stx, srx) = std::sync::mpsc::sync_channel::<arrow::record_batch::RecordBatch>(4);
        let meta = &p.meta;
        let profiler = s.spawn(move || {
            let mut stats = StatsBuilder::new(meta);
            for b in srx {
                stats.update(&b);
            }
            stats.finish()
        });
        let consumer = s.spawn(move || -> Result<()> {
            let mut writer = writer;
            for b in rx {
                writer.write(&b).map_err(werr)?;
            }
            writer.close().map_err(werr)?;
            Ok(())
        });
        let produced = p.batches(progress, &mut |b| {
            stx.send(b.clone()).map_err(|_| IngestError::internal("the profiling thread stopped"))?;
            tx.send(b).map_err(|_| IngestError::new(ErrorKind::Io, "writing Parquet stopped", "check free disk space"))
        });
        drop((tx, stx));
        let written = consumer.join().unwrap_or_else(|_| Err(IngestError::internal("the Parquet writer panicked")));
        let profiled = profiler.join().map_err(|_| IngestError::internal("the profiling thread panicked"));
        (written.and(profiled), produced)
    });
    // A writer error explains a failed send better than the send itself.
    let outcome = match (stats, result) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(st), Ok(())) => Ok(st),
    };
    if outcome.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    outcome
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
