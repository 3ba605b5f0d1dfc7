//! Record-aligned chunks of a UTF-8 text file, so both passes over it can
//! parse in parallel.
//!
//! [`split`] reads the file once, looking only at quotes and line feeds,
//! and cuts it after a line feed that lies outside every quoted field. A
//! quote opens a field only at its start and closes it only before a
//! delimiter or a line end, as the CSV reader has it; a file that uses
//! quotes otherwise (`5" pipe`, `"a"b`) is not cut at all and is read by one
//! thread, so a cut never lands inside a field. Each chunk also knows the
//! source line it starts on, for messages.

use std::io::{self, Read};
use std::path::Path;

/// Bytes per chunk: big enough that a chunk's start-up is noise, small
/// enough that a few chunks in flight stay well under the file's size.
pub const CHUNK_BYTES: u64 = 8 << 20;

/// One piece of the file: `start..start + len`, in bytes after any BOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: u64,
    pub len: u64,
    /// 1-based source line of the chunk's first byte.
    pub line: u64,
}

/// How the scan stands between two blocks of the file.
struct Scan {
    delimiter: u8,
    chunk_bytes: u64,
    inside: bool,
    /// A quote ended the last block inside a field: what follows decides.
    quote_at_end: bool,
    /// The byte before the current block.
    last: u8,
    /// Absolute offset of the current block.
    at: u64,
    next_cut: u64,
    lines: u64,
    cuts: Vec<(u64, u64)>,
}

impl Scan {
    fn ends_field(&self, b: u8) -> bool {
        b == self.delimiter || b == b'\n' || b == b'\r'
    }

    /// One block; `false` when quotes are used in a way this scan does not model.
    fn block(&mut self, block: &[u8]) -> bool {
        let mut i = 0;
        if std::mem::take(&mut self.quote_at_end) {
            match block.first() {
                Some(b'"') => i = 1,
                Some(&b) if self.ends_field(b) => self.inside = false,
                Some(_) => return false,
                None => {}
            }
        }
        while i < block.len() {
            let p = if self.inside {
                match memchr::memchr(b'"', &block[i..]) {
                    Some(o) => i + o,
                    None => {
                        self.lines += memchr::memchr_iter(b'\n', &block[i..]).count() as u64;
                        break;
                    }
                }
            } else {
                match memchr::memchr2(b'"', b'\n', &block[i..]) {
                    Some(o) => i + o,
                    None => break,
                }
            };
            if self.inside {
                self.lines += memchr::memchr_iter(b'\n', &block[i..p]).count() as u64;
            }
            if block[p] == b'\n' {
                self.lines += 1;
                let cut = self.at + p as u64 + 1;
                // Not before a blank line: a record's line is counted from
                // where the reader started looking for it.
                let blank_next = block.get(p + 1).is_none_or(|&b| b == b'\n' || b == b'\r');
                if cut >= self.next_cut && !blank_next {
                    self.cuts.push((cut, self.lines + 1));
                    self.next_cut = cut + self.chunk_bytes;
                }
                i = p + 1;
                continue;
            }
            if !self.inside {
                let prev = if p > 0 { block[p - 1] } else { self.last };
                if !(self.at + p as u64 == 0 || self.ends_field(prev)) {
                    return false;
                }
                self.inside = true;
                i = p + 1;
                continue;
            }
            match block.get(p + 1) {
                None => {
                    self.quote_at_end = true;
                    i = p + 1;
                }
                Some(b'"') => i = p + 2,
                Some(&b) if self.ends_field(b) => {
                    self.inside = false;
                    i = p + 1;
                }
                Some(_) => return false,
            }
        }
        self.last = block.last().copied().unwrap_or(self.last);
        self.at += block.len() as u64;
        true
    }
}

/// Cut `r` (the file after its BOM) into chunks of about `chunk_bytes`.
/// `None` when it cannot be cut safely, or is too small to be worth it.
pub fn split(mut r: impl Read, delimiter: u8, chunk_bytes: u64) -> io::Result<Option<Vec<Chunk>>> {
    let mut scan = Scan {
        delimiter,
        chunk_bytes,
        inside: false,
        quote_at_end: false,
        last: b'\n',
        at: 0,
        next_cut: chunk_bytes,
        lines: 0,
        cuts: Vec::new(),
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !scan.block(&buf[..n]) {
            return Ok(None);
        }
    }
    let total = scan.at;
    scan.cuts.retain(|&(c, _)| c < total);
    if scan.cuts.is_empty() {
        return Ok(None);
    }
    let mut chunks = Vec::with_capacity(scan.cuts.len() + 1);
    let (mut start, mut line) = (0, 1);
    for (cut, next_line) in scan.cuts {
        chunks.push(Chunk { start, len: cut - start, line });
        (start, line) = (cut, next_line);
    }
    chunks.push(Chunk { start, len: total - start, line });
    Ok(Some(chunks))
}

/// The bytes of one chunk of the file at `path` (`bom` bytes skipped first).
pub fn open(path: &Path, bom: u64, chunk: &Chunk) -> io::Result<impl Read + Send> {
    use std::io::{Seek, SeekFrom};
    let mut f = crate::detect::open_regular(path).map_err(|e| io::Error::other(e.to_string()))?;
    f.seek(SeekFrom::Start(bom + chunk.start))?;
    Ok(io::BufReader::with_capacity(1 << 20, f.take(chunk.len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(text: &str, every: u64) -> Option<Vec<(String, u64)>> {
        let chunks = split(text.as_bytes(), b',', every).expect("reading memory")?;
        Some(chunks.iter().map(|c| (text[c.start as usize..(c.start + c.len) as usize].to_string(), c.line)).collect())
    }

    #[test]
    fn cuts_after_line_feeds_outside_quotes() {
        let text = "a,b\n1,\"x\ny\"\n2,z\n3,w\n";
        // A cut wanted inside the quoted field moves past it.
        let got = cuts(text, 6).expect("cut");
        assert_eq!(got, vec![("a,b\n1,\"x\ny\"\n".to_string(), 1), ("2,z\n3,w\n".to_string(), 4)]);
        let joined: String = got.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn escaped_quotes_crlf_and_multibyte_text() {
        let text = "name,note\r\n\"Ké\"\"x\",\"a,\r\nb\"\r\nÖl,\"ü\"\r\nz,y\r\n";
        let got = cuts(text, 4).expect("cut");
        let joined: String = got.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(joined, text);
        for (piece, _) in &got {
            assert!(piece.ends_with("\r\n"), "{piece:?}");
            assert_eq!(piece.matches('"').count() % 2, 0, "{piece:?} cuts a quoted field");
        }
        assert_eq!(got.last().map(|c| c.1), Some(5));
    }

    #[test]
    fn quotes_used_loosely_are_not_cut() {
        assert_eq!(cuts("a,b\n5\" pipe,1\n2,3\n4,5\n", 4), None);
        assert_eq!(cuts("a,b\n\"x\"y,1\n2,3\n4,5\n", 4), None);
        // Too small to cut: one chunk is none.
        assert_eq!(cuts("a,b\n1,2\n", 1 << 20), None);
    }

    #[test]
    fn a_quote_at_a_block_edge_is_decided_by_the_next_block() {
        let mut s = Scan {
            delimiter: b',',
            chunk_bytes: 1,
            inside: false,
            quote_at_end: false,
            last: b'\n',
            at: 0,
            next_cut: 1,
            lines: 0,
            cuts: Vec::new(),
        };
        assert!(s.block(b"a,\"x\""));
        assert!(s.block(b"\"y\"\n1,2\n"));
        assert!(!s.inside);
        assert_eq!(s.cuts.iter().map(|c| c.0).collect::<Vec<_>>(), vec![9]);
    }
}
