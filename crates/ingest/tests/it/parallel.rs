//! Text files read in pieces on several threads give exactly what one
//! thread gives: the same columns, notes, excluded rows and statistics, and
//! a byte-identical Parquet file. Pieces are made tiny here so their cuts
//! land everywhere: inside quoted fields, between CR and LF, inside
//! multi-byte characters' lines, right after a BOM. Workbooks and JSON
//! shaped and built in pieces of rows likewise. Text read in pieces is also
//! read in one pass, built while it is scanned (`prepare_writing`), and
//! that too gives the same bytes whether the first rows' plan held or not.

use std::path::Path;
use std::sync::Mutex;

use quarry_ingest::catalog::write_parquet_tmp;
use quarry_ingest::{prepare, prepare_writing, IngestOptions, Progress, Quiet};

/// Everything a load makes of `path` with these options: the tables'
/// metadata and statistics as JSON, and each table's Parquet bytes.
/// Tables' metadata and statistics as JSON, and each table's Parquet bytes.
type Made = Result<(String, Vec<Vec<u8>>), String>;

fn made(path: &Path, chunk: u64, out: &Path) -> Made {
    made_with(path, &IngestOptions { text_chunk_bytes: chunk, ..IngestOptions::default() }, chunk, out)
}

fn made_with(path: &Path, opts: &IngestOptions, chunk: u64, out: &Path) -> Made {
    let pf = prepare(path, opts, &Quiet).map_err(|e| e.to_string())?;
    written(&pf, out, &chunk.to_string(), &Quiet)
}

/// Each prepared table written to `out/{tag}-{i}.parquet`, as [`Made`].
fn written(pf: &quarry_ingest::PreparedFile, out: &Path, tag: &str, progress: &dyn Progress) -> Made {
    let mut text = String::new();
    let mut files = Vec::new();
    for (i, t) in pf.tables.iter().enumerate() {
        let tmp = out.join(format!("{tag}-{i}.parquet"));
        let stats = write_parquet_tmp(t, &tmp, progress).map_err(|e| e.to_string())?;
        text.push_str(&serde_json::to_string(&t.meta).expect("meta json"));
        text.push_str(&serde_json::to_string(&stats).expect("stats json"));
        files.push(std::fs::read(&tmp).expect("parquet"));
    }
    Ok((text, files))
}

/// The phases a load reported.
#[derive(Default)]
struct Phases(Mutex<Vec<String>>);
impl Progress for Phases {
    fn advance(&self, phase: &str, _: u64, _: u64) {
        let mut p = self.0.lock().expect("phases");
        if p.last().map(String::as_str) != Some(phase) {
            p.push(phase.to_string());
        }
    }
}

/// [`made`] with the table written while the file is scanned, when the
/// first rows' plan holds: also whether the text was read a second time
/// ("converting"), and what was left in the scratch folder.
fn made_writing(path: &Path, chunk: u64, out: &Path) -> (Made, bool, Vec<String>) {
    let opts = IngestOptions { text_chunk_bytes: chunk, ..IngestOptions::default() };
    let scratch = out.join("scratch");
    let phases = Phases::default();
    let made = prepare_writing(path, &opts, &[], &scratch, &phases)
        .map_err(|e| e.to_string())
        .and_then(|pf| written(&pf, out, &format!("w{chunk}"), &phases));
    let reread = phases.0.lock().expect("phases").iter().any(|p| p == "converting");
    let left = std::fs::read_dir(&scratch)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    (made, reread, left)
}

/// Read in pieces of each size, in two passes and in one, `path` gives what
/// one thread gives. Returns, per size, whether the one-pass read had to
/// read the text again (its first rows' plan did not hold).
fn assert_same(path: &Path, chunks: &[u64]) -> Vec<bool> {
    let dir = tempfile::tempdir().expect("tempdir");
    let serial = made(path, 0, dir.path());
    let mut reread = Vec::new();
    for &c in chunks {
        let (one_pass, again, left) = made_writing(path, c, dir.path());
        assert!(left.is_empty(), "left in the scratch folder with {c}-byte pieces: {left:?}");
        match (&serial, &one_pass) {
            (Ok((st, sf)), Ok((pt, pf))) => {
                assert!(st == pt, "metadata differs read in one pass with {c}-byte pieces");
                assert!(sf == pf, "Parquet differs read in one pass with {c}-byte pieces");
            }
            (Err(se), Err(pe)) => assert_eq!(se, pe, "errors differ read in one pass with {c}-byte pieces"),
            _ => panic!("serial {serial:?} vs one pass with {c}-byte pieces {one_pass:?}"),
        }
        reread.push(again);
        let parallel = made(path, c, dir.path());
        match (&serial, &parallel) {
            (Ok((st, sf)), Ok((pt, pf))) => {
                if st != pt {
                    let _ = std::fs::write(std::env::temp_dir().join("quarry-serial.json"), st);
                    let _ = std::fs::write(std::env::temp_dir().join("quarry-parallel.json"), pt);
                }
                assert!(st == pt, "metadata differs with {c}-byte pieces (see quarry-serial.json, quarry-parallel.json in the temp dir)");
                assert!(sf == pf, "Parquet differs with {c}-byte pieces");
            }
            (Err(se), Err(pe)) => assert_eq!(se, pe, "errors differ with {c}-byte pieces"),
            _ => panic!("serial {serial:?} vs {c}-byte pieces {parallel:?}"),
        }
    }
    reread
}

#[test]
fn generated_facility_file_is_the_same_read_in_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("big.csv");
    quarry_testdata::write_big_csv(&csv, 150_000).expect("gen");
    let len = std::fs::metadata(&csv).expect("meta").len();
    // Pieces of about a sixth of the file, and of 64 KiB (a cut every ~1000 rows).
    let reread = assert_same(&csv, &[len / 6, 64 << 10]);
    assert_eq!(reread, [false, false], "the first rows' plan holds for this file: it is read once");
}

#[test]
fn generated_anomalies_file_is_the_same_read_in_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("facility_months.csv");
    quarry_testdata::anomalies::write_facility_months(&csv, true).expect("gen");
    assert_same(&csv, &[512, 4096]);
}

/// A messy file: BOM, CRLF, quoted fields with line breaks, delimiters and
/// doubled quotes, multi-byte text, placeholders, a repeated header, ragged
/// and total rows in the middle, and a footnote at the end.
fn messy(rows: usize) -> String {
    let mut s = String::from("\u{feff}State,Facility,Tested,Positive,Note\r\n");
    for i in 0..rows {
        let state = ["Kano", "Lagos", "Ọ̀yọ́", "Borno", "Kaduna"][i % 5];
        let note = match i % 7 {
            0 => "\"line one\r\nline two\"".to_string(),
            1 => "\"a, b and \"\"c\"\"\"".to_string(),
            2 => "N/A".to_string(),
            3 => "ünïcødé ✓ 😀".to_string(),
            _ => String::new(),
        };
        let tested = if i % 11 == 0 { "-".to_string() } else { format!("{}", 100 + i % 37) };
        s.push_str(&format!("{state},Facility {i},{tested},{},{note}\r\n", i % 13));
        if i == rows / 3 {
            s.push_str("State,Facility,Tested,Positive,Note\r\n");
        }
        if i == rows / 2 {
            s.push_str("Total,,9999,999,\r\nKano,extra,1,2,x,y,z\r\n\r\n");
        }
    }
    s.push_str("Source: a footnote (provisional)\r\n");
    s
}

#[test]
fn cuts_inside_quotes_crlf_multibyte_and_bom_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("messy.csv");
    std::fs::write(&path, messy(3000)).expect("write");
    // Read once: the rows kept out (in many pieces) are taken out of the built batches.
    let reread = assert_same(&path, &[97, 256, 1000, 4099, 30_000]);
    assert!(reread.iter().all(|r| !r), "{reread:?}");
    let (text, _) = made(&path, 256, dir.path()).expect("loads");
    for seen in ["repeated_header", "total_row", "long_row", "footnote", "placeholder"] {
        assert!(text.contains(seen), "{seen} not in {text}");
    }
}

#[test]
fn loosely_quoted_text_is_read_on_one_thread_with_the_same_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("loose.csv");
    let mut s = String::from("item,size,count\n");
    for i in 0..2000 {
        s.push_str(&format!("pipe {i},5\" wide,{i}\n"));
    }
    std::fs::write(&path, s).expect("write");
    assert_same(&path, &[512]);
}

#[test]
fn errors_in_a_later_piece_name_the_file_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wide_row.csv");
    let mut s = String::from("a,b\n");
    for i in 0..5000 {
        s.push_str(&format!("{i},{i}\n"));
    }
    s.push_str(&vec!["x"; 40].join(","));
    s.push('\n');
    s.push_str("1,2\n");
    std::fs::write(&path, s).expect("write");
    let opts = IngestOptions { text_chunk_bytes: 1024, max_columns: 20, ..IngestOptions::default() };
    let err = prepare(&path, &opts, &Quiet).err().expect("refused").to_string();
    assert!(err.contains("line 5002"), "{err}");
    // The same with Windows line ends, read in pieces and on one thread.
    let crlf = dir.path().join("wide_row_crlf.csv");
    std::fs::write(&crlf, std::fs::read_to_string(&path).expect("read").replace('\n', "\r\n")).expect("write");
    for chunk in [1024, 0] {
        let opts = IngestOptions { text_chunk_bytes: chunk, max_columns: 20, ..IngestOptions::default() };
        let err = prepare(&crlf, &opts, &Quiet).err().expect("refused").to_string();
        assert!(err.contains("line 5002"), "{chunk}: {err}");
    }
    // An unclosed quote at the end, in the last piece.
    let path = dir.path().join("unclosed.csv");
    let mut s = String::from("a,b\n");
    for i in 0..5000 {
        s.push_str(&format!("{i},{i}\n"));
    }
    s.push_str("1,\"never\nclosed\n2,3\n");
    std::fs::write(&path, s).expect("write");
    let opts = IngestOptions { text_chunk_bytes: 1024, ..IngestOptions::default() };
    let err = prepare(&path, &opts, &Quiet).err().expect("refused").to_string();
    assert!(err.contains("line 5002") && err.contains("never closed"), "{err}");
    assert_same(&path, &[1024]);
}

/// A workbook's (or JSON document's) tables shaped and built in pieces of
/// `rows` data rows give what one thread gives.
fn assert_same_in_row_pieces(path: &Path, pieces: &[u64]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = |n: u64| IngestOptions { sheet_chunk_rows: n, ..IngestOptions::default() };
    let serial = made_with(path, &rows(0), 0, dir.path()).expect("loads on one thread");
    assert!(!serial.1.is_empty(), "{} holds a table", path.display());
    for &n in pieces {
        let parallel = made_with(path, &rows(n), n, dir.path()).expect("loads in pieces");
        assert!(serial.0 == parallel.0, "{}: metadata differs with {n}-row pieces", path.display());
        assert!(serial.1 == parallel.1, "{}: Parquet differs with {n}-row pieces", path.display());
    }
}

#[test]
fn generated_workbook_is_the_same_shaped_and_built_in_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xlsx = dir.path().join("big.xlsx");
    quarry_testdata::write_big_xlsx(&xlsx, 70_000).expect("gen");
    // Pieces that cut batches (64 Ki rows) unevenly, and a cut every 97 rows.
    assert_same_in_row_pieces(&xlsx, &[16 << 10, 5_000, 97]);
    for f in quarry_testdata::write_demo(&dir.path().join("demo")).expect("demo") {
        assert_same_in_row_pieces(&f, &[1, 3, 10, 100]);
    }
}

/// A messy sheet: a title above the header, blank rows, a total and a
/// repeated header in the middle, placeholders, mixed types, dates as
/// text, and totals and footnotes at the end (some after blank rows).
#[test]
fn a_messy_sheet_is_the_same_in_pieces_of_any_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("messy.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write(0, 0, "Monthly report, all states").expect("cell");
    let header = ["State", "Facility", "Tested", "Positive", "Month", "Note"];
    for (c, h) in header.iter().enumerate() {
        ws.write(2, c as u16, *h).expect("cell");
    }
    let mut r = 3u32;
    for i in 0..300u32 {
        let row = r;
        r += 1;
        if i == 120 {
            for (c, h) in header.iter().enumerate() {
                ws.write(row, c as u16, *h).expect("cell");
            }
            continue;
        }
        if i % 37 == 0 {
            continue; // a blank row
        }
        if i == 200 {
            ws.write(row, 0, "Total").expect("cell");
            ws.write(row, 2, 99_999).expect("cell");
            continue;
        }
        ws.write(row, 0, ["Kano", "Lagos", "Ọ̀yọ́", "Borno"][(i % 4) as usize]).expect("cell");
        ws.write(row, 1, format!("Facility {i}")).expect("cell");
        match i % 11 {
            0 => ws.write(row, 2, "N/A").map(|_| ()),
            1 => ws.write(row, 2, "1,204").map(|_| ()),
            _ => ws.write(row, 2, f64::from(i * 3)).map(|_| ()),
        }
        .expect("cell");
        ws.write(row, 3, f64::from(i)).expect("cell");
        ws.write(row, 4, format!("2024-{:02}-01", i % 12 + 1)).expect("cell");
        if i % 5 == 0 {
            ws.write(row, 5, "checked ✓").expect("cell");
        }
    }
    ws.write(r, 0, "Total").expect("cell");
    ws.write(r, 2, 12_345).expect("cell");
    ws.write(r + 2, 0, "Source: state reports; figures provisional.").expect("cell");
    ws.write(r + 4, 0, "Prepared by the M&E unit.").expect("cell");
    wb.save(&path).expect("save");
    let pieces: Vec<u64> = (1..=12).chain([17, 50, 64, 150, 299]).collect();
    assert_same_in_row_pieces(&path, &pieces);
    // The same rows as JSON (one object per line), through the same grid path.
    let json = dir.path().join("messy.ndjson");
    let mut text = String::new();
    for i in 0..500 {
        let tested = if i % 13 == 0 { "\"N/A\"".to_string() } else { (i * 3).to_string() };
        text.push_str(&format!(
            "{{\"state\":\"S{}\",\"tested\":{tested},\"when\":\"2024-{:02}-01\"}}\n",
            i % 7,
            i % 12 + 1
        ));
    }
    std::fs::write(&json, text).expect("json");
    assert_same_in_row_pieces(&json, &[1, 7, 100]);
}

/// Footnotes at the end, with a cut among them: the last piece then holds
/// fewer rows than one walk looks back over, and the file is read as one
/// thread reads it (here every cut position through the last lines).
#[test]
fn a_cut_among_the_trailing_footnotes_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("footnotes.csv");
    let mut s = String::from("State,Facility,Tested,Positive\n");
    for i in 0..600 {
        s.push_str(&format!("S{},F{i},{},{}\n", i % 4, i * 3, i));
    }
    for note in ["Source: NMEP", "Figures provisional", "Totals exclude private", "Prepared by M&E", "Contact the unit"]
    {
        s.push_str(&format!("{note},,,\n"));
    }
    std::fs::write(&path, &s).expect("csv");
    let len = s.len() as u64;
    // Pieces of half the file, less a few lines each time: the second cut walks through the footnotes.
    let sizes: Vec<u64> = (0..12).map(|k| len / 2 - 5 - 14 * k).collect();
    assert_same(&path, &sizes);
}

/// Columns whose first rows say one thing and later rows another: a word
/// among integers, a decimal, a column blank at first, a spelling variant.
/// The plan the first rows give does not hold, so the text is read again,
/// and the table is the one a single thread makes; nothing is left behind.
#[test]
fn a_plan_from_the_first_rows_that_later_rows_break_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Column `col` (0 count, 1 state, 2 extra) reads `cell` in row `row`;
    // `extra` is blank before `row` when `cell` is empty, numbers after.
    let late = |col: usize, row: usize, cell: &str| {
        let mut s = String::from("id,state,count,rate,extra\n");
        for i in 0..30_000 {
            let mut state = ["Kano", "Lagos", "Oyo"][i % 3].to_string();
            let mut count = ((i * 7) % 1000).to_string();
            let mut extra = if col == 2 && i >= row { (i % 9).to_string() } else { String::new() };
            if i == row {
                match col {
                    0 => count = cell.to_string(),
                    1 => state = cell.to_string(),
                    _ => extra = extra.clone(),
                }
            }
            s.push_str(&format!("{i},{state},{count},0.{},{extra}\n", i % 97));
        }
        s
    };
    let cases = [
        ("word.csv", late(0, 25_000, "many")),
        ("decimal.csv", late(0, 29_999, "2.5")),
        ("blank_at_first.csv", late(2, 20_000, "")),
        ("variant.csv", late(1, 25_000, "kano")),
    ];
    for (name, text) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("csv");
        let reread = assert_same(&path, &[64 << 10, 200 << 10]);
        assert!(reread.iter().all(|r| *r), "{name}: {reread:?}");
    }
    // A decimal in an integer column, in the last piece only.
    let mut s = String::from("id,count\n");
    for i in 0..40_000 {
        s.push_str(&format!("{i},{}\n", if i == 39_990 { "1.5".to_string() } else { (i % 50).to_string() }));
    }
    let path = dir.path().join("decimal_last.csv");
    std::fs::write(&path, s).expect("csv");
    let reread = assert_same(&path, &[32 << 10]);
    assert_eq!(reread, [true]);
}
