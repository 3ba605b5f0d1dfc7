//! The differential check: every non-blank source cell, counted by an
//! independent read of the file (the `csv` crate, `calamine`), is in a
//! loaded table (a non-null value, or a header or title cell), an excluded
//! row, or a note that counts it (placeholders, a total column, a skipped
//! sheet) — once, with no cell unaccounted for.

use std::path::Path;

use arrow::array::Array;
use calamine::{Data, Reader};

use crate::common::Loaded;

/// Non-blank cells of the file as its own format reads them.
fn source_cells(path: &Path, tables: &[Loaded]) -> u64 {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "xlsx" | "xls" | "ods" => {
            let mut wb = calamine::open_workbook_auto(path).expect("opens");
            let mut n = 0;
            for name in wb.sheet_names() {
                let range = wb.worksheet_range(&name).expect("sheet");
                let mut cells: std::collections::HashSet<(u32, u32)> = range
                    .cells()
                    .filter(|(_, _, v)| match v {
                        Data::Empty => false,
                        Data::String(s) => !s.trim().is_empty(),
                        _ => true,
                    })
                    .map(|(r, c, _)| {
                        range.start().map_or((r as u32, c as u32), |(r0, c0)| (r0 + r as u32, c0 + c as u32))
                    })
                    .collect();
                // A formula saved without a result is a cell too.
                if let Ok(f) = wb.worksheet_formula(&name) {
                    let (r0, c0) = f.start().unwrap_or((0, 0));
                    cells.extend(
                        f.used_cells()
                            .filter(|(_, _, t)| !t.is_empty())
                            .map(|(r, c, _)| (r0 + r as u32, c0 + c as u32)),
                    );
                }
                n += cells.len() as u64;
            }
            n
        }
        _ => text_cells(path, tables),
    }
}

fn text_cells(path: &Path, tables: &[Loaded]) -> u64 {
    let notes = &tables[0].meta.notes;
    let bytes = std::fs::read(path).expect("reads");
    let decoded = match notes.iter().find(|n| n.kind == "encoding") {
        Some(n) => {
            let label = n.text.trim_start_matches("text decoded from ");
            let enc = encoding_rs::Encoding::for_label(label.as_bytes()).expect("known encoding");
            enc.decode(&bytes).0.into_owned()
        }
        None => String::from_utf8_lossy(&bytes).trim_start_matches('\u{feff}').to_string(),
    };
    let delimiter = match notes.iter().find(|n| n.kind == "delimiter").map(|n| n.text.as_str()) {
        Some(t) if t.contains("tab") => b'\t',
        Some(t) if t.contains("semicolon") => b';',
        Some(t) if t.contains("pipe") => b'|',
        _ => b',',
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(decoded.as_bytes());
    rdr.records().map(|r| r.expect("record").iter().filter(|f| !f.trim().is_empty()).count() as u64).sum()
}

/// Cells the loaded tables account for.
fn accounted(tables: &[Loaded]) -> u64 {
    let mut n = 0;
    for t in tables.iter().filter(|t| !t.has_note("long_form")) {
        for b in &t.batches {
            n += b.columns().iter().map(|c| (c.len() - c.null_count()) as u64).sum::<u64>();
        }
        n += t.meta.layout.as_ref().map_or(0, |l| l.header_cells);
        n +=
            t.meta.excluded.iter().map(|e| e.cells.iter().filter(|c| !c.trim().is_empty()).count() as u64).sum::<u64>();
        n += t.meta.notes.iter().filter(|n| n.kind != "sheet_skipped").map(|n| n.cells).sum::<u64>();
    }
    // Notes about the file (skipped sheets) are on every table: count once.
    n + tables[0].meta.notes.iter().filter(|n| n.kind == "sheet_skipped").map(|n| n.cells).sum::<u64>()
}

/// Assert that every source cell of `path` is accounted for.
pub fn assert_every_cell_accounted(path: &Path, tables: &[Loaded]) {
    let (src, got) = (source_cells(path, tables), accounted(tables));
    assert_eq!(
        got,
        src,
        "{}: {src} non-blank source cells, {got} accounted for in data, headers, excluded rows and notes",
        path.display()
    );
}
