//! Name the format from the file's first bytes; the extension only breaks ties
//! and earns a note when it lies.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{ErrorKind, IngestError, Result};
use crate::table::{Note, NoteKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Xlsx,
    Xls,
    Ods,
    Parquet,
    Json,
    Ndjson,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "csv",
            Format::Xlsx => "xlsx",
            Format::Xls => "xls",
            Format::Ods => "ods",
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }
}

const HEAD: usize = 64 * 1024;

fn not_tabular(what: &str) -> IngestError {
    IngestError::new(
        ErrorKind::NotTabular,
        format!("this is {what}, not a table"),
        "export the data as CSV, XLSX, ODS, Parquet or JSON and load that file",
    )
}

/// Open a file for reading only if it is a regular file. A named pipe, a
/// device or a socket would block or never end, so it is refused before
/// anything waits on it (the open itself does not block: `O_NONBLOCK`, and
/// the type is checked on the opened descriptor, not the path).
pub fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let t = f.metadata()?.file_type();
    if t.is_file() {
        return Ok(f);
    }
    let what = if t.is_dir() {
        return Err(IngestError::new(ErrorKind::Io, "this is a folder, not a file", "name the files inside it"));
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(IngestError::new(
        ErrorKind::NotTabular,
        format!("this is {what}, not a file Quarry can read"),
        "copy the data into a regular file (CSV, XLSX, ODS, Parquet or JSON) and load that",
    ))
}

/// Detect the format; returns it with the first bytes of the file.
pub fn detect(path: &Path) -> Result<(Format, Vec<u8>)> {
    let mut head = Vec::with_capacity(HEAD);
    open_regular(path)?.take(HEAD as u64).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(IngestError::new(
            ErrorKind::Empty,
            "the file is empty (0 bytes)",
            "export the table again; the upload or export may have failed",
        ));
    }
    let f = if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        zip_kind(path)?
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Format::Xls
    } else if head.starts_with(b"PAR1") {
        Format::Parquet
    } else if head.starts_with(b"%PDF") {
        return Err(not_tabular("a PDF document"));
    } else if head.starts_with(&[0x89, b'P', b'N', b'G'])
        || head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"GIF8")
    {
        return Err(not_tabular("an image"));
    } else if head.starts_with(&[0x1F, 0x8B]) {
        return Err(IngestError::new(
            ErrorKind::NotTabular,
            "this is a gzip archive",
            "decompress it (gunzip) and load the file inside",
        ));
    } else if head.starts_with(b"SQLite format 3") {
        return Err(not_tabular("a SQLite database"));
    } else {
        let text = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&head);
        let first = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match first {
            Some(b'[') => Format::Json,
            Some(b'{') => {
                let s = String::from_utf8_lossy(text);
                let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
                let first_line = lines.next().unwrap_or("");
                let second = lines.next();
                if second.is_some_and(|l| l.starts_with('{'))
                    && serde_json::from_str::<serde_json::Value>(first_line).is_ok()
                {
                    Format::Ndjson
                } else {
                    Format::Json
                }
            }
            _ => Format::Text,
        }
    };
    Ok((f, head))
}

fn zip_kind(path: &Path) -> Result<Format> {
    let f = File::open(path)?;
    let z = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| {
        IngestError::new(
            ErrorKind::Corrupt,
            format!("the zip container (XLSX/ODS) is damaged or cut short ({e})"),
            "the file may be truncated: open it in a spreadsheet program, save a fresh copy, and load that",
        )
    })?;
    let names: Vec<String> = z.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if names.iter().any(|n| n.starts_with("xl/")) {
        Ok(Format::Xlsx)
    } else if names.contains(&"content.xml") {
        Ok(Format::Ods)
    } else if names.iter().any(|n| n.starts_with("word/")) {
        Err(not_tabular("a Word document"))
    } else if names.iter().any(|n| n.starts_with("ppt/")) {
        Err(not_tabular("a PowerPoint presentation"))
    } else {
        Err(IngestError::new(
            ErrorKind::NotTabular,
            "this is a zip archive, not a workbook",
            "unzip it and load the files inside",
        ))
    }
}

/// A note when the extension says one thing and the bytes another.
pub fn extension_note(path: &Path, f: Format) -> Option<Note> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let expected: &[&str] = match f {
        Format::Text => &["csv", "tsv", "txt", "tab", "dat", "psv"],
        Format::Xlsx => &["xlsx", "xlsm"],
        Format::Xls => &["xls"],
        Format::Ods => &["ods"],
        Format::Parquet => &["parquet", "pq"],
        Format::Json | Format::Ndjson => &["json", "ndjson", "jsonl"],
    };
    (!expected.contains(&ext.as_str())).then(|| {
        Note::table(
            NoteKind::Format,
            format!("the file is named .{ext} but its content is {}; read as {}", f.name(), f.name()),
        )
    })
}
