//! Delimited text: CSV, TSV, semicolon files from Excel, pipe files.
//!
//! Two streaming passes over the file, so memory stays flat whatever its
//! size: the first detects the shape and infers every column over all rows;
//! the second builds Arrow batches — unless the first already built them
//! with a plan the whole file confirmed (`speculate`). Encoding
//! is detected once, from the BOM, the bytes, or (for legacy 8-bit text)
//! `chardetng`.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use encoding_rs::Encoding;

use crate::error::{ErrorKind, IngestError, Result};
use crate::records::{
    check_record, csv_error, next_record, read_error, reader, reader_at, record_line, too_many_columns, unclosed,
    unclosed_quote, utf8_retry, Dialect, Records, UTF8_RETRY,
};
use crate::shape::{find_layout_with, Layout, RowLike, Shaper};
use crate::speculate::{self, Speculation};
use crate::{finish_columns, Finished, IngestOptions, Progress};

const SAMPLE: usize = 64 * 1024;
/// Records handed between the two scanning threads at a time.
const CHUNK: usize = 4096;

#[derive(Debug)]
pub struct TextPlan {
    pub path: PathBuf,
    /// `None` for UTF-8 (BOM skipped), else the encoding to decode from.
    pub encoding: Option<&'static Encoding>,
    pub delimiter: u8,
    pub layout: Layout,
    pub finished: Finished,
    /// The pieces pass 1 read in parallel, for pass 2 to do the same;
    /// none when one thread read the file.
    pub pieces: Option<crate::parallel::Pieces>,
    /// The table, already written while pass 1 read the file
    /// (`speculate`); pass 2 is then not needed.
    pub written: Option<crate::catalog::Written>,
}

fn open_decoded(path: &Path, encoding: Option<&'static Encoding>) -> Result<Box<dyn Read + Send>> {
    let f = crate::detect::open_regular(path)?;
    let r: Box<dyn Read + Send> = match encoding {
        None => {
            let mut br = BufReader::with_capacity(1 << 20, f);
            let mut bom = [0u8; 3];
            let n = read_full(&mut br, &mut bom)?;
            if n == 3 && bom == [0xEF, 0xBB, 0xBF] {
                Box::new(br)
            } else {
                Box::new(io::Cursor::new(bom[..n].to_vec()).chain(br))
            }
        }
        Some(enc) => Box::new(BufReader::with_capacity(
            1 << 20,
            encoding_rs_io::DecodeReaderBytesBuilder::new().encoding(Some(enc)).bom_override(true).build(f),
        )),
    };
    Ok(r)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Decide the encoding from the first bytes. Errors if the bytes are binary.
pub fn detect_encoding(head: &[u8]) -> Result<Option<&'static Encoding>> {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(None);
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        return Ok(Some(encoding_rs::UTF_16LE));
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return Ok(Some(encoding_rs::UTF_16BE));
    }
    let n = head.len().min(4096);
    let sample = &head[..n];
    let nul_even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let nul_odd = sample.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    let half = n / 2;
    if half > 8 && nul_odd * 10 > half * 4 && nul_even * 10 < half {
        return Ok(Some(encoding_rs::UTF_16LE));
    }
    if half > 8 && nul_even * 10 > half * 4 && nul_odd * 10 < half {
        return Ok(Some(encoding_rs::UTF_16BE));
    }
    let control = sample
        .iter()
        .filter(|&&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f)
        .count();
    if control > 0 && (control * 100 > n || sample.contains(&0)) {
        return Err(IngestError::new(
            ErrorKind::NotTabular,
            "this is binary data, not text or a spreadsheet",
            "export the data as CSV, XLSX, ODS, Parquet or JSON and load that file",
        ));
    }
    match std::str::from_utf8(head) {
        Ok(_) => Ok(None),
        // An error only in the last 3 bytes is a character cut by the sample.
        Err(e) if e.error_len().is_none() => Ok(None),
        Err(_) => {
            let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
            det.feed(head, false);
            Ok(Some(det.guess(None, chardetng::Utf8Detection::Deny)))
        }
    }
}

/// Pick the delimiter that splits the sample's lines most consistently.
pub fn sniff_delimiter(sample: &str) -> u8 {
    let mut best = (b',', 0.0f64);
    for d in [b',', b';', b'\t', b'|'] {
        let mut rdr =
            csv::ReaderBuilder::new().delimiter(d).has_headers(false).flexible(true).from_reader(sample.as_bytes());
        let mut counts: Vec<usize> = Vec::new();
        for rec in rdr.records().take(100) {
            match rec {
                Ok(r) if r.iter().any(|f| !f.trim().is_empty()) => counts.push(r.len()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // The last line of the sample may be cut short.
        if counts.len() > 2 {
            counts.pop();
        }
        if counts.is_empty() {
            continue;
        }
        let mut freq = std::collections::HashMap::new();
        for &c in &counts {
            *freq.entry(c).or_insert(0usize) += 1;
        }
        let (&mode, &mode_n) = freq.iter().max_by_key(|(c, n)| (**n, **c)).expect("non-empty");
        if mode < 2 {
            continue;
        }
        let consistency = mode_n as f64 / counts.len() as f64;
        let score = consistency * (1.0 + (mode as f64).ln());
        if score > best.1 {
            best = (d, score);
        }
    }
    best.0
}

/// Pass 1: detect everything and infer all columns.
/// What pass 1 found: one table to stream, or — in a small file — several
/// table blocks one under another (a report saved as CSV), read whole into
/// a grid and shaped like a sheet's, with the notes about the text.
pub enum TextPrepared {
    Stream(Box<TextPlan>),
    Blocks { grid: crate::grid::Grid, notes: Vec<crate::table::Note> },
}

/// Text files up to this size are checked for several table blocks.
pub const BLOCKS_MAX_BYTES: u64 = 4 << 20;

/// With `scratch`, a large file's table may be written there while pass 1
/// reads it ([`TextPlan::written`]).
pub fn prepare(
    path: &Path,
    head: &[u8],
    opts: &IngestOptions,
    choice: &crate::LayoutChoice,
    scratch: Option<&Path>,
    progress: &dyn Progress,
) -> Result<TextPrepared> {
    let mut encoding = detect_encoding(head)?;
    loop {
        match prepare_with(path, encoding, opts, choice, scratch, progress) {
            Err(e) if encoding.is_none() && e.problem == UTF8_RETRY => {
                // Valid UTF-8 at the start, something else later: legacy Windows text.
                encoding = Some(encoding_rs::WINDOWS_1252);
            }
            other => return other,
        }
    }
}

fn prepare_with(
    path: &Path,
    encoding: Option<&'static Encoding>,
    opts: &IngestOptions,
    choice: &crate::LayoutChoice,
    scratch: Option<&Path>,
    progress: &dyn Progress,
) -> Result<TextPrepared> {
    let header = choice.header;
    let mut sample = Vec::with_capacity(SAMPLE);
    open_decoded(path, encoding)?.take(SAMPLE as u64).read_to_end(&mut sample)?;
    let sample_text = String::from_utf8_lossy(&sample);
    if sample_text.trim().is_empty() {
        return Err(IngestError::new(
            ErrorKind::Empty,
            "the file has no data (it is empty or only whitespace)",
            "export the table again, with its rows",
        ));
    }
    let delimiter = sniff_delimiter(&sample_text);
    let file_len = std::fs::metadata(path)?.len();
    if file_len <= BLOCKS_MAX_BYTES {
        let grid = read_grid(path, encoding, delimiter, opts)?;
        if crate::sheet::regions_for(&grid, choice).len() > 1 {
            return Ok(TextPrepared::Blocks { grid, notes: text_notes(encoding, delimiter) });
        }
    }
    let head_rows = head_rows(path, encoding, delimiter, opts)?;
    let layout = find_layout_with(&head_rows, header, 1);
    let dialect = Dialect { delimiter, crlf: memchr::memmem::find(&sample, b"\r\n").is_some() };
    let scanned = match encoding {
        None => scan_parallel(path, dialect, opts, &layout, scratch, progress)?,
        Some(_) => None,
    };
    let (shaper, records, pieces, spec) = match scanned {
        Some((p, spec)) => (p.shaper, p.records, Some(p.pieces), spec),
        None => {
            let (shaper, records) = scan_serial(path, encoding, dialect, opts, &layout, progress)?;
            (shaper, records, None, None)
        }
    };
    let mut finished = finish_columns(&layout, &shaper, delimiter == b';', path, None, "csv");
    let written = match spec {
        Some(spec) => spec.finish(&finished)?,
        None => None,
    };
    let header_cells = head_rows[..layout.data_start.min(head_rows.len())].iter().map(|r| r.filled() as u64).sum();
    finished.meta.layout = Some(crate::table::SourceLayout {
        range: format!("records 1-{records}"),
        header_row: layout.header_row.map(|h| h as u64 + 1),
        header,
        header_cells,
    });
    for (i, n) in text_notes(encoding, delimiter).into_iter().enumerate() {
        finished.meta.notes.insert(i, n);
    }
    let plan = TextPlan { path: path.to_path_buf(), encoding, delimiter, layout, finished, pieces, written };
    Ok(TextPrepared::Stream(Box::new(plan)))
}

/// Pass 1 on every core, when the UTF-8 file is large enough and can be
/// cut safely ([`crate::chunks`]); `None` otherwise. With `scratch`, the
/// table is built while it is read, with the plan its first rows give
/// (`speculate`).
fn scan_parallel(
    path: &Path,
    dialect: Dialect,
    opts: &IngestOptions,
    layout: &Layout,
    scratch: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Option<(crate::parallel::Scanned, Option<Speculation>)>> {
    let every = opts.text_chunk_bytes;
    if every == 0 || std::fs::metadata(path)?.len() < 2 * every {
        return Ok(None);
    }
    let mut head = [0u8; 3];
    let n = read_full(&mut crate::detect::open_regular(path)?, &mut head)?;
    let bom = if n == 3 && head == [0xEF, 0xBB, 0xBF] { 3 } else { 0 };
    let whole = crate::chunks::Chunk { start: 0, len: u64::MAX, line: 1 };
    let Some(chunks) = crate::chunks::split(crate::chunks::open(path, bom, &whole)?, dialect.delimiter, every)? else {
        return Ok(None);
    };
    let cut = crate::parallel::Cut { path, bom, chunks: &chunks, dialect };
    let prefer_comma = dialect.delimiter == b';';
    let sample =
        scratch.and_then(|dir| Some((dir, speculate::sample_plan(path, bom, &chunks[0], dialect, opts, layout)?)));
    let spec = match sample {
        Some((dir, sample)) => {
            let plan = finish_columns(layout, &sample, prefer_comma, path, None, "csv");
            Some(Speculation::start(plan, prefer_comma, dir)?)
        }
        None => None,
    };
    Ok(crate::parallel::scan(&cut, opts, layout, spec.as_ref(), progress)?.map(|s| (s, spec)))
}

/// Pass 1 on two threads: one splits records, the other shapes and infers.
/// Gives the shaping, finished, and the number of records.
fn scan_serial(
    path: &Path,
    encoding: Option<&'static Encoding>,
    dialect: Dialect,
    opts: &IngestOptions,
    layout: &Layout,
    progress: &dyn Progress,
) -> Result<(Shaper<csv::StringRecord>, u64)> {
    let file_len = std::fs::metadata(path)?.len();
    let mut shaper: Shaper<csv::StringRecord> = Shaper::new(layout, true);
    let rdr = reader_at(open_decoded(path, encoding)?, dialect, opts.max_record_bytes, 1);
    let max_record = opts.max_record_bytes;
    let max_columns = opts.max_columns;
    // Two stages on two threads: one splits records, this one shapes and
    // infers. Record buffers go back and forth, so nothing is allocated per row.
    let scanned = std::thread::scope(|s| -> Result<u64> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<(u64, csv::StringRecord)>, u64)>(4);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<csv::StringRecord>>();
        let splitter = s.spawn(move || split_records(rdr, encoding.is_none(), max_record, max_columns, tx, back_rx));
        let mut n: u64 = 0;
        for (chunk, bytes) in rx {
            let mut reuse = Vec::with_capacity(chunk.len());
            for (line, rec) in chunk {
                if (n as usize) >= layout.data_start {
                    if let Some(r) = shaper.push(n - layout.data_start as u64, line, rec) {
                        reuse.push(r);
                    }
                }
                n += 1;
            }
            let _ = back_tx.send(reuse);
            progress.advance("scanning", bytes, file_len);
        }
        match splitter.join() {
            Ok(Ok(None)) => Ok(n),
            Ok(Ok(Some(line))) => Err(unclosed_quote(line)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(IngestError::internal("the record splitter thread panicked")),
        }
    });
    let records = scanned?;
    shaper.finish();
    Ok((shaper, records))
}

/// The record-splitting stage of pass 1: chunks of (line, record) to `tx`,
/// record buffers back from `back_rx`. `Some(line)` when a multi-line
/// record at `line` ends the file without its closing quote.
fn split_records(
    mut rdr: Records,
    detected: bool,
    max_record: usize,
    max_columns: usize,
    tx: std::sync::mpsc::SyncSender<(Vec<(u64, csv::StringRecord)>, u64)>,
    back_rx: std::sync::mpsc::Receiver<Vec<csv::StringRecord>>,
) -> Result<Option<u64>> {
    let mut n: u64 = 0;
    let mut last_multiline = None;
    let mut spare: Vec<csv::StringRecord> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            if spare.is_empty() {
                if let Ok(more) = back_rx.try_recv() {
                    spare = more;
                }
            }
            let mut rec = spare.pop().unwrap_or_default();
            match next_record(&mut rdr, &mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) && detected => return Err(utf8_retry()),
                Err(e) => return Err(read_error(&rdr, e)),
            }
            let line = record_line(&rdr, &rec, n);
            check_record(&rec, line, max_record, max_columns)?;
            last_multiline = rec.as_slice().contains('\n').then_some(line);
            chunk.push((line, rec));
            n += 1;
        }
        let done = chunk.len() < CHUNK;
        if !chunk.is_empty() && tx.send((chunk, rdr.get_ref().bytes)).is_err() {
            return Ok(None);
        }
        if done {
            break;
        }
    }
    drop(tx);
    Ok(unclosed(&rdr, last_multiline))
}

/// The first 50 records, for finding the header and the data's start.
/// How the text was read: its encoding and delimiter, when not the usual.
fn text_notes(encoding: Option<&'static Encoding>, delimiter: u8) -> Vec<crate::table::Note> {
    use crate::table::{Note, NoteKind};
    let mut notes = Vec::new();
    if delimiter != b',' {
        let d = match delimiter {
            b'\t' => "tab".to_string(),
            b';' => "semicolon".to_string(),
            b'|' => "pipe".to_string(),
            other => format!("'{}'", other as char),
        };
        notes.push(Note::table(NoteKind::Delimiter, format!("fields separated by {d}")));
    }
    if let Some(enc) = encoding {
        notes.push(Note::table(NoteKind::Encoding, format!("text decoded from {}", enc.name())));
    }
    notes
}

/// A small text file whole, as a grid of text cells (for table blocks).
fn read_grid(
    path: &Path,
    encoding: Option<&'static Encoding>,
    delimiter: u8,
    opts: &IngestOptions,
) -> Result<crate::grid::Grid> {
    use calamine::Data;
    let cell = |f: &str| if f.trim().is_empty() { Data::Empty } else { Data::String(f.to_string()) };
    let rows: Vec<Vec<Data>> = first_records(path, encoding, delimiter, opts, usize::MAX)?
        .iter()
        .map(|rec| rec.iter().map(cell).collect())
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    Ok(crate::grid::Grid { rows, cols: (0..width).collect(), decimal_comma: delimiter == b';', ..Default::default() })
}

/// The first rows a header is looked for in.
fn head_rows(
    path: &Path,
    encoding: Option<&'static Encoding>,
    delimiter: u8,
    opts: &IngestOptions,
) -> Result<Vec<csv::StringRecord>> {
    first_records(path, encoding, delimiter, opts, 50)
}

/// Up to `limit` records from the start of the file, under the record and
/// column limits.
fn first_records(
    path: &Path,
    encoding: Option<&'static Encoding>,
    delimiter: u8,
    opts: &IngestOptions,
    limit: usize,
) -> Result<Vec<csv::StringRecord>> {
    let mut head_rows: Vec<csv::StringRecord> = Vec::new();
    let mut rdr = reader(open_decoded(path, encoding)?, delimiter, opts.max_record_bytes);
    let mut rec = csv::StringRecord::new();
    while head_rows.len() < limit {
        match next_record(&mut rdr, &mut rec) {
            Ok(true) if rec.len() > opts.max_columns => {
                return Err(too_many_columns(head_rows.len() as u64 + 1, rec.len(), opts.max_columns))
            }
            Ok(true) => head_rows.push(rec.clone()),
            Ok(false) => break,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => return Err(utf8_retry()),
            Err(e) => return Err(read_error(&rdr, e)),
        }
    }
    Ok(head_rows)
}

/// Pass 2: stream the data rows as Arrow batches.
pub fn batches(
    plan: &TextPlan,
    progress: &dyn Progress,
    sink: &mut dyn FnMut(arrow::record_batch::RecordBatch) -> Result<()>,
) -> Result<()> {
    if let Some(pieces) = &plan.pieces {
        return crate::parallel::batches(pieces, &plan.finished, progress, sink);
    }
    let f = &plan.finished;
    let file_len = std::fs::metadata(&plan.path)?.len();
    let mut builder = crate::build::BatchBuilder::new(f.schema.clone(), f.sources.clone(), &f.plans);
    // The first pass already refused over-long records; this bound only
    // keeps a file changed in between from being buffered whole.
    let mut rdr = reader(open_decoded(&plan.path, plan.encoding)?, plan.delimiter, usize::MAX >> 1);
    let mut rec = csv::StringRecord::new();
    let mut n: u64 = 0;
    let start = plan.layout.data_start as u64;
    while next_record(&mut rdr, &mut rec).map_err(csv_error)? {
        if n >= start {
            let idx = n - start;
            if !f.excluded.contains_key(&idx) && !RowLike::is_blank(&rec) {
                builder.push_row(|i| rec.cell(i));
                if builder.is_full() {
                    sink(builder.finish()?)?;
                    progress.advance("converting", rdr.get_ref().bytes, file_len);
                }
            }
        }
        n += 1;
    }
    if !builder.is_empty() {
        sink(builder.finish()?)?;
    }
    Ok(())
}
