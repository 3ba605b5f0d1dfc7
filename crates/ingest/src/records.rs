//! Reading records from delimited text under Quarry's limits: the CSV
//! reader with a record-length wall, the source line of each record, and
//! the errors a record can raise. Shared by the one-thread reader (`text`)
//! and the pieces read in parallel (`parallel`).

use std::io::{self, Read};

use crate::error::{ErrorKind, IngestError, Result};

pub(crate) const UTF8_RETRY: &str = "invalid UTF-8 after the sample";

/// Wraps a reader and remembers the last bytes it produced, to tell whether
/// the file ended inside a quoted field.
///
/// It also enforces the record-length limit *before* the CSV reader buffers
/// a record: once more than `max_record` bytes have been read since the last
/// record ended (`record_start`, kept up to date by [`next_record`]), reading
/// fails, so a 300 MB line costs 64 MiB, not gigabytes.
pub(crate) struct TailReader<R> {
    inner: R,
    tail: Vec<u8>,
    pub bytes: u64,
    record_start: std::cell::Cell<u64>,
    max_record: u64,
    /// Lines before the text this reader reads (a piece of a file).
    pub line_base: u64,
    /// Records end in CR LF: the reader stops after the CR, so the next
    /// record's position is still on the line before ([`record_line`]).
    pub crlf: bool,
}

/// The read error that stands for "this record is too long".
#[derive(Debug)]
struct RecordTooLong;
impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too long")
    }
}
impl std::error::Error for RecordTooLong {}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Slack for the CSV reader's own buffer, which reads ahead.
        if self.bytes.saturating_sub(self.record_start.get()) > self.max_record + (2 << 20) {
            return Err(io::Error::other(RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.bytes += n as u64;
            let take = n.min(64);
            self.tail.drain(..self.tail.len().saturating_sub(64 - take));
            self.tail.extend_from_slice(&buf[n - take..n]);
        }
        Ok(n)
    }
}

pub(crate) type Records = csv::Reader<TailReader<Box<dyn Read + Send>>>;

/// A reader for pass 1, whose records' lines are counted: the text is
/// written as `dialect` says and starts on `first_line` of the file.
pub(crate) fn reader_at(r: Box<dyn Read + Send>, dialect: Dialect, max_record: usize, first_line: u64) -> Records {
    let mut rdr = reader(r, dialect.delimiter, max_record);
    (rdr.get_mut().line_base, rdr.get_mut().crlf) = (first_line - 1, dialect.crlf);
    rdr
}

pub(crate) fn reader(r: Box<dyn Read + Send>, delimiter: u8, max_record: usize) -> Records {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(TailReader {
            inner: r,
            tail: Vec::new(),
            bytes: 0,
            record_start: std::cell::Cell::new(0),
            max_record: max_record as u64,
            line_base: 0,
            crlf: false,
        })
}

/// The 1-based source line a record starts on.
pub(crate) fn record_line(rdr: &Records, rec: &csv::StringRecord, n: u64) -> u64 {
    let r = rdr.get_ref();
    r.line_base + rec.position().map_or(n + 1, |p| p.line() + u64::from(r.crlf && p.byte() > 0))
}

/// Read the next record and move the record-length window past it.
pub(crate) fn next_record(rdr: &mut Records, rec: &mut csv::StringRecord) -> csv::Result<bool> {
    let more = rdr.read_record(rec)?;
    rdr.get_ref().record_start.set(rdr.position().byte());
    Ok(more)
}

fn record_too_long(rdr: &Records) -> IngestError {
    let line = rdr.get_ref().line_base + rdr.position().line() + 1;
    let max = rdr.get_ref().max_record;
    IngestError::new(
        ErrorKind::Corrupt,
        format!("the record starting on line {line} is longer than {} MiB", max >> 20),
        "a quote is probably never closed, or the file has no line breaks; fix the file near that line",
    )
}

/// A CSV error, with the record-length refusal told apart.
pub(crate) fn read_error(rdr: &Records, e: csv::Error) -> IngestError {
    if let csv::ErrorKind::Io(io) = e.kind() {
        if io.get_ref().is_some_and(|i| i.is::<RecordTooLong>()) {
            return record_too_long(rdr);
        }
    }
    csv_error_at(e, rdr.get_ref().line_base)
}

pub(crate) fn too_many_columns(line: u64, n: usize, max: usize) -> IngestError {
    IngestError::new(
        ErrorKind::TooLarge,
        format!("the record on line {line} has {n} fields, above the limit of {max} columns"),
        "keep the columns you need, or raise max_columns (quarry --ingest-limit max_columns=N)",
    )
}

pub(crate) fn csv_error(e: csv::Error) -> IngestError {
    csv_error_at(e, 0)
}

/// A CSV error in text that starts after `line_base` lines of the file.
fn csv_error_at(e: csv::Error, line_base: u64) -> IngestError {
    let line = e.position().map(|p| format!(" near line {}", line_base + p.line())).unwrap_or_default();
    match e.kind() {
        csv::ErrorKind::Io(io) => IngestError::io(io::Error::new(io.kind(), io.to_string())),
        _ => IngestError::new(
            ErrorKind::Corrupt,
            format!("the text could not be read as a table{line}: {e}"),
            "check that the file is a delimited text export",
        ),
    }
}

/// How records are written: what separates fields, what ends records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    pub delimiter: u8,
    pub crlf: bool,
}

/// The limits every record is held to: its fields and its length.
pub(crate) fn check_record(rec: &csv::StringRecord, line: u64, max_record: usize, max_columns: usize) -> Result<()> {
    if rec.len() > max_columns {
        return Err(too_many_columns(line, rec.len(), max_columns));
    }
    if rec.as_slice().len() > max_record {
        return Err(IngestError::new(
            ErrorKind::Corrupt,
            format!("the record starting on line {line} is {} MB long", rec.as_slice().len() >> 20),
            "a quote is probably never closed; fix the quoting near that line",
        ));
    }
    Ok(())
}

/// At the end of the text: `Some(line)` when the last record, starting on
/// `line` and spanning lines, ends without its closing quote.
pub(crate) fn unclosed(rdr: &Records, last_multiline: Option<u64>) -> Option<u64> {
    let line = last_multiline?;
    let tail = &rdr.get_ref().tail;
    let end = tail.iter().rposition(|b| !b.is_ascii_whitespace());
    end.is_none_or(|i| tail[i] != b'"').then_some(line)
}

pub(crate) fn unclosed_quote(line: u64) -> IngestError {
    IngestError::new(
        ErrorKind::Corrupt,
        format!("a quote opened in the record on line {line} is never closed, so the rest of the file would become one value"),
        "close the quote (or remove it) near that line and load the file again",
    )
}

/// The error that sends a file read as UTF-8 back to be read as Windows text.
pub(crate) fn utf8_retry() -> IngestError {
    IngestError::new(ErrorKind::Corrupt, UTF8_RETRY, "")
}
