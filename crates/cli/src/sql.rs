//! `quarry sql`: one read-only query over files (loaded first), the
//! catalog and the live sources, in an SQL worker; the result printed as a
//! table or written as CSV, JSON or Parquet.

use std::io::Write;
use std::path::{Path, PathBuf};

use quarry_engine::SqlKernel;
use quarry_ingest::IngestOptions;

use crate::{fail, loading};

pub(crate) fn cmd_sql(
    files: &[PathBuf],
    query: &str,
    data: &Path,
    (format, out): (&str, Option<&Path>),
    (limits, target): (&quarry_sandbox::Limits, &quarry_engine::EngineTarget),
    opts: &IngestOptions,
) -> bool {
    if !["table", "csv", "json", "parquet"].contains(&format) {
        return fail(format!("unknown format '{format}': use table, csv, json or parquet"));
    }
    if format == "parquet" && out.is_none() {
        return fail("--format parquet needs --out PATH");
    }
    if !files.is_empty() {
        if !loading::load_files(files, data, opts) {
            return false;
        }
    } else if !data.join("catalog.sqlite").exists() {
        return fail(format!(
            "{}: no catalog here — load files first, name them before --query, or `quarry connect` a database",
            data.display()
        ));
    }
    let launcher = match quarry_sandbox::Launcher::current() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let workers = quarry_engine::worker::SqlWorkers::on(target, launcher, data, limits.clone(), 1);
    let result = match workers.query(query, limits) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let written = write_result(&result, format, out);
    if let Err(e) = written {
        return fail(format!("writing the result failed: {e}"));
    }
    if result.truncated {
        eprintln!("note: showing the first {} rows; the query returned more", result.rows);
    }
    true
}

pub(crate) fn write_result(r: &quarry_engine::QueryResult, format: &str, out: Option<&Path>) -> anyhow::Result<()> {
    if format == "parquet" {
        let path = out.ok_or_else(|| anyhow::anyhow!("--format parquet needs --out PATH"))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, r.schema.clone(), None)?;
        for b in &r.batches {
            w.write(b)?;
        }
        w.close()?;
        return Ok(());
    }
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    // No rows still has columns: a header in CSV and in the table.
    let none = [arrow::record_batch::RecordBatch::new_empty(r.schema.clone())];
    let batches: &[arrow::record_batch::RecordBatch] = if r.batches.is_empty() { &none } else { &r.batches };
    match format {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut sink);
            for b in batches {
                w.write(b)?;
            }
        }
        "json" => {
            let mut w = arrow::json::ArrayWriter::new(&mut sink);
            for b in &r.batches {
                w.write(b)?;
            }
            w.finish()?;
            sink.write_all(b"\n")?;
        }
        _ => {
            writeln!(sink, "{}", arrow::util::pretty::pretty_format_batches(batches)?)?;
            writeln!(sink, "({} rows)", r.rows)?;
        }
    }
    sink.flush()?;
    Ok(())
}
