//! Workbooks (XLSX/XLSM, XLS, ODS) through `calamine`. Every sheet is a
//! candidate table; prose sheets are reported, not forced into tables.
//!
//! Before calamine inflates anything, the zip directory is checked against
//! [`IngestOptions::max_inflated_bytes`] (zip bombs), and XLSX cells are
//! streamed one by one against [`IngestOptions::max_cells`], so a tiny file
//! cannot claim gigabytes.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use calamine::{Data, DataType, Reader};

use crate::cell::Cell;
use crate::error::{ErrorKind, IngestError, Result};
use crate::shape::{find_layout, Layout, RowLike, Shaper};
use crate::table::{Note, NoteKind};
use crate::{finish_columns, Finished, IngestOptions};

/// A sheet's cells, row by row (rows as long as their last used cell).
pub struct Grid {
    pub rows: Vec<Vec<Data>>,
    /// Sheet row number (0-based) of `rows[0]`.
    pub first_row: u32,
    pub first_col: u32,
}

#[derive(Clone, Copy)]
pub struct SheetRow<'a>(pub &'a [Data]);

impl RowLike for SheetRow<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn cell(&self, i: usize) -> Cell<'_> {
        match self.0.get(i) {
            None | Some(Data::Empty) => Cell::Empty,
            Some(Data::String(s)) => Cell::Text(s),
            Some(Data::Int(v)) => Cell::Int(*v),
            Some(Data::Float(v)) => Cell::Float(*v),
            Some(Data::Bool(v)) => Cell::Bool(*v),
            Some(Data::DateTime(d)) => {
                if d.is_duration() {
                    Cell::Float(d.as_f64())
                } else {
                    match d.as_datetime() {
                        Some(dt) => Cell::DateTime(dt),
                        None => Cell::Float(d.as_f64()),
                    }
                }
            }
            Some(Data::DateTimeIso(s)) | Some(Data::DurationIso(s)) => Cell::Text(s),
            Some(Data::Error(_)) => Cell::Error("#ERROR"),
        }
    }
}

pub struct SheetPlan {
    pub grid: Grid,
    pub layout: Layout,
    pub finished: Finished,
}

pub enum SheetOutcome {
    Table(Box<SheetPlan>),
    /// Not a table: a reason for the notes.
    Skipped {
        sheet: String,
        why: String,
    },
}

fn wb_error(format: &str, e: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        ErrorKind::Corrupt,
        format!("the {format} workbook could not be read ({e})"),
        "the file may be truncated or damaged: open it in a spreadsheet program, save a fresh copy, and load that",
    )
}

/// Sum of uncompressed sizes in a zip container (XLSX/ODS), checked before inflating.
fn check_zip(path: &Path, opts: &IngestOptions, format: &str) -> Result<()> {
    let f = File::open(path)?;
    let mut z = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| wb_error(format, e))?;
    let mut total: u64 = 0;
    for i in 0..z.len() {
        let entry = z.by_index_raw(i).map_err(|e| wb_error(format, e))?;
        let size = entry.size();
        total = total.saturating_add(size);
        if size > opts.max_inflated_bytes || total > opts.max_inflated_bytes {
            return Err(IngestError::new(
                ErrorKind::TooLarge,
                format!(
                    "the workbook inflates to more than {} MiB ('{}' alone is {} MiB, from a {} KiB file)",
                    opts.max_inflated_bytes >> 20,
                    entry.name().map(|n| n.into_owned()).unwrap_or_default(),
                    size >> 20,
                    std::fs::metadata(path).map(|m| m.len() >> 10).unwrap_or(0)
                ),
                "this looks like a zip bomb; if the workbook is genuine, export it as CSV or raise max_inflated_bytes (quarry --ingest-limit max_inflated_bytes=N)",
            ));
        }
    }
    Ok(())
}

fn too_many_cells(opts: &IngestOptions, sheet: &str) -> IngestError {
    IngestError::new(
        ErrorKind::TooLarge,
        format!("sheet '{sheet}' has more than {} cells", opts.max_cells),
        "export the sheet as CSV (text files stream with no cell limit) or raise max_cells (quarry --ingest-limit max_cells=N)",
    )
}

/// Lay non-empty cells out as rows. Memory follows the cells present, not
/// the area they span: columns with no cell at all are left out (a header
/// in A1 and one cell per row in column XFD make two columns, not 16 384),
/// and a sheet whose used rows × used columns still exceed `max_cells` is
/// refused before anything is laid out.
fn grid_from_cells(items: Vec<((u32, u32), Data)>, opts: &IngestOptions, sheet: &str) -> Result<Grid> {
    if items.len() as u64 > opts.max_cells {
        return Err(too_many_cells(opts, sheet));
    }
    if items.is_empty() {
        return Ok(Grid { rows: Vec::new(), first_row: 0, first_col: 0 });
    }
    let r0 = items.iter().map(|c| c.0 .0).min().unwrap_or(0);
    let r1 = items.iter().map(|c| c.0 .0).max().unwrap_or(0);
    let c0 = items.iter().map(|c| c.0 .1).min().unwrap_or(0);
    let mut used: Vec<u32> = items.iter().map(|c| c.0 .1).collect();
    used.sort_unstable();
    used.dedup();
    let area = (r1 - r0 + 1) as u64 * used.len() as u64;
    if area > opts.max_cells {
        return Err(IngestError::new(
            ErrorKind::TooLarge,
            format!(
                "sheet '{sheet}' spreads {} cells over {} rows × {} columns, more than {} cells laid out",
                items.len(),
                r1 - r0 + 1,
                used.len(),
                opts.max_cells
            ),
            "copy the table into a fresh sheet (or export it as CSV) and load that",
        ));
    }
    let mut rows: Vec<Vec<Data>> = vec![Vec::new(); (r1 - r0 + 1) as usize];
    for ((r, c), v) in items {
        let row = &mut rows[(r - r0) as usize];
        let ci = used.binary_search(&c).unwrap_or(0);
        if row.len() <= ci {
            row.resize(ci + 1, Data::Empty);
        }
        row[ci] = v;
    }
    Ok(Grid { rows, first_row: r0, first_col: c0 })
}

fn grid_from_range(range: calamine::Range<Data>, opts: &IngestOptions, sheet: &str) -> Result<Grid> {
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let cells = range
        .used_cells()
        .filter(|(_, _, v)| !matches!(v, Data::Empty))
        .map(|(r, c, v)| ((r0 + r as u32, c0 + c as u32), v.clone()))
        .collect();
    drop(range);
    grid_from_cells(cells, opts, sheet)
}

/// Read every sheet of a workbook into grids, with limits applied.
pub fn read_workbook(path: &Path, format: &str, opts: &IngestOptions) -> Result<Vec<(String, Grid)>> {
    if format != "xls" {
        check_zip(path, opts, format)?;
    }
    let open = || -> Result<BufReader<File>> { Ok(BufReader::new(crate::detect::open_regular(path)?)) };
    let mut out = Vec::new();
    match format {
        "xlsx" => {
            let mut wb: calamine::Xlsx<_> =
                calamine::open_workbook_from_rs(open()?).map_err(|e| wb_error(format, e))?;
            for name in wb.sheet_names() {
                let mut reader = wb.worksheet_cells_reader(&name).map_err(|e| wb_error(format, e))?;
                let mut cells = Vec::new();
                let mut n: u64 = 0;
                while let Some(c) = reader.next_cell().map_err(|e| wb_error(format, e))? {
                    n += 1;
                    if n > opts.max_cells {
                        return Err(too_many_cells(opts, &name));
                    }
                    let pos = c.get_position();
                    let v: Data = c.get_value().clone().into();
                    if !matches!(v, Data::Empty) {
                        cells.push((pos, v));
                    }
                }
                drop(reader);
                out.push((name.clone(), grid_from_cells(cells, opts, &name)?));
            }
        }
        "xls" => {
            let wb: calamine::Xls<_> = calamine::open_workbook_from_rs(open()?).map_err(|e| wb_error(format, e))?;
            read_ranges(wb, format, opts, &mut out)?;
        }
        _ => {
            let wb: calamine::Ods<_> = calamine::open_workbook_from_rs(open()?).map_err(|e| wb_error(format, e))?;
            read_ranges(wb, format, opts, &mut out)?;
        }
    }
    Ok(out)
}

fn read_ranges<RS: Read + Seek, W: Reader<RS>>(
    mut wb: W,
    format: &str,
    opts: &IngestOptions,
    out: &mut Vec<(String, Grid)>,
) -> Result<()>
where
    W::Error: std::fmt::Display,
{
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).map_err(|e| wb_error(format, e))?;
        let (h, w) = range.get_size();
        if (h as u64).saturating_mul(w as u64) > opts.max_cells {
            return Err(too_many_cells(opts, &name));
        }
        out.push((name.clone(), grid_from_range(range, opts, &name)?));
    }
    Ok(())
}

/// True when a sheet holds sentences rather than a table.
fn is_prose(grid: &Grid) -> bool {
    let rows: Vec<&Vec<Data>> = grid.rows.iter().filter(|r| !SheetRow(r).is_blank()).collect();
    if rows.is_empty() {
        return true;
    }
    let width = rows.iter().map(|r| SheetRow(r).used_width()).max().unwrap_or(0);
    if width > 2 {
        return false;
    }
    let texts: Vec<&str> = rows.iter().flat_map(|r| r.iter()).filter_map(|d| d.get_string()).collect();
    let long = texts.iter().filter(|t| t.split_whitespace().count() >= 5).count();
    long * 2 >= rows.len()
}

/// Shape one sheet (or a JSON document, as a grid) into a table plan, or say
/// why it is not one. `name_by_sheet` adds the sheet to the table name, for
/// workbooks with several sheets.
pub fn prepare_sheet(
    path: &Path,
    format: &str,
    sheet: Option<String>,
    grid: Grid,
    name_by_sheet: bool,
) -> SheetOutcome {
    let sheet_label = sheet.clone().unwrap_or_default();
    if grid.rows.iter().all(|r| SheetRow(r).is_blank()) {
        return SheetOutcome::Skipped { sheet: sheet_label, why: "it is empty".into() };
    }
    if is_prose(&grid) {
        let lines = grid.rows.iter().filter(|r| !SheetRow(r).is_blank()).count();
        return SheetOutcome::Skipped {
            sheet: sheet_label,
            why: format!("it holds prose ({lines} lines of text), not a table"),
        };
    }
    let rows: Vec<SheetRow> = grid.rows.iter().map(|r| SheetRow(r)).collect();
    let mut layout = find_layout(&rows);
    // The header was found in the first rows; data further down may reach
    // further right. Those columns are kept (named column_N), never cut off.
    let width = rows.iter().skip(layout.data_start).map(|r| r.used_width()).max().unwrap_or(0);
    if width > layout.labels.len() {
        layout.labels.resize(width, String::new());
    }
    let mut shaper: Shaper<SheetRow> = Shaper::new(&layout, false);
    for (i, r) in rows.iter().enumerate().skip(layout.data_start) {
        let line = grid.first_row as u64 + i as u64 + 1;
        shaper.push((i - layout.data_start) as u64, line, *r);
    }
    shaper.finish();
    let mut finished = finish_columns(&layout, &shaper, false, path, sheet.as_deref(), format);
    if !name_by_sheet {
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        finished.meta.name = crate::names::table_name(&stem, None);
    }
    if grid.first_row > 0 || grid.first_col > 0 {
        finished.meta.notes.insert(
            0,
            Note::table(
                NoteKind::Position,
                format!("the table starts at cell {}{}", col_letter(grid.first_col), grid.first_row + 1),
            ),
        );
    }
    drop(rows);
    SheetOutcome::Table(Box::new(SheetPlan { grid, layout, finished }))
}

fn col_letter(mut c: u32) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

pub fn batches(plan: &SheetPlan, sink: &mut dyn FnMut(arrow::record_batch::RecordBatch) -> Result<()>) -> Result<()> {
    let f = &plan.finished;
    let mut builder = crate::build::BatchBuilder::new(f.schema.clone(), f.sources.clone(), &f.plans);
    for (i, r) in plan.grid.rows.iter().enumerate().skip(plan.layout.data_start) {
        let idx = (i - plan.layout.data_start) as u64;
        let row = SheetRow(r);
        if f.excluded.contains_key(&idx) || row.is_blank() {
            continue;
        }
        builder.push_row(|c| row.cell(c));
        if builder.is_full() {
            sink(builder.finish()?)?;
        }
    }
    if !builder.is_empty() {
        sink(builder.finish()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn letters() {
        assert_eq!(super::col_letter(0), "A");
        assert_eq!(super::col_letter(1), "B");
        assert_eq!(super::col_letter(26), "AA");
    }
}
