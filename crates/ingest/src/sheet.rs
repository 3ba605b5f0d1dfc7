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

use crate::error::{ErrorKind, IngestError, Result};
pub use crate::grid::{col_letter, CellRange, FormulaResult, Grid, SheetRow};
use crate::region::Region;
use crate::shape::{find_layout_with, HeaderChoice, Layout, RowLike};
use crate::table::{Note, NoteKind, SourceLayout};
use crate::{finish_columns, Finished, IngestOptions, LayoutChoice};

pub struct SheetPlan {
    pub grid: Grid,
    pub layout: Layout,
    pub finished: Finished,
}

pub enum SheetOutcome {
    Table(Box<SheetPlan>),
    /// Not a table: a reason for the notes, and the cells it held.
    Skipped {
        sheet: String,
        why: String,
        cells: u64,
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
fn grid_from_cells(
    items: Vec<((u32, u32), Data)>,
    formulas: Vec<((u32, u32), FormulaResult)>,
    opts: &IngestOptions,
    sheet: &str,
) -> Result<Grid> {
    if items.len() as u64 > opts.max_cells {
        return Err(too_many_cells(opts, sheet));
    }
    if items.is_empty() {
        return Ok(Grid::default());
    }
    let r0 = items.iter().map(|c| c.0 .0).min().unwrap_or(0);
    let r1 = items.iter().map(|c| c.0 .0).max().unwrap_or(0);
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
    let formulas = formulas
        .into_iter()
        .filter_map(|((r, c), k)| Some(((r.checked_sub(r0)?) as usize, used.binary_search(&c).ok()?, k)))
        .collect();
    let chunk_rows = opts.sheet_chunk_rows.try_into().unwrap_or(usize::MAX);
    Ok(Grid { rows, first_row: r0, cols: used, formulas, decimal_comma: false, chunk_rows })
}

fn grid_from_range(range: calamine::Range<Data>, opts: &IngestOptions, sheet: &str) -> Result<Grid> {
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let cells = range
        .used_cells()
        .filter(|(_, _, v)| !matches!(v, Data::Empty))
        .map(|(r, c, v)| ((r0 + r as u32, c0 + c as u32), v.clone()))
        .collect();
    drop(range);
    grid_from_cells(cells, Vec::new(), opts, sheet)
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
                let mut formulas = Vec::new();
                let mut n: u64 = 0;
                while let Some(c) = reader.next_cell_with_formula().map_err(|e| wb_error(format, e))? {
                    n += 1;
                    if n > opts.max_cells {
                        return Err(too_many_cells(opts, &name));
                    }
                    let mut v: Data = c.value.into();
                    if let Some(f) = c.formula.filter(|f| !f.trim().is_empty()) {
                        let missing = match &v {
                            Data::Empty => true,
                            Data::String(s) => s.is_empty(),
                            _ => false,
                        };
                        if missing {
                            v = Data::String(format!("={}", crate::infer::truncate(&f, 1000)));
                            formulas.push((c.pos, FormulaResult::Missing));
                        } else if matches!(v, Data::Float(z) if z == 0.0) || matches!(v, Data::Int(0)) {
                            formulas.push((c.pos, FormulaResult::Zero));
                        }
                    }
                    if !matches!(v, Data::Empty) {
                        cells.push((c.pos, v));
                    }
                }
                drop(reader);
                let mut grid = grid_from_cells(cells, formulas, opts, &name)?;
                grid.compute_formulas();
                out.push((name.clone(), grid));
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

/// How a table from a sheet is named.
enum Naming {
    /// The whole sheet: the file's stem, and the sheet's name when the
    /// workbook has several.
    Whole { by_sheet: bool },
    /// One of several blocks on a sheet: also its title (or its number).
    Block { index: usize, of: usize, title: Option<String>, part: String, by_sheet: bool },
}

/// Shape one sheet (or a JSON document, as a grid) into table plans — one
/// per table block on it — or say why it holds none. `name_by_sheet` adds
/// the sheet to the table names, for workbooks with several sheets.
pub fn prepare_sheet(
    path: &Path,
    format: &str,
    sheet: Option<String>,
    mut grid: Grid,
    name_by_sheet: bool,
    choice: &LayoutChoice,
) -> Vec<SheetOutcome> {
    let sheet_label = sheet.clone().unwrap_or_default();
    if let Some(r) = &choice.range {
        grid.crop(r);
    }
    if grid.rows.iter().all(|r| SheetRow(r).is_blank()) {
        let why = if choice.range.is_some() { "the chosen range is empty" } else { "it is empty" };
        return vec![SheetOutcome::Skipped { sheet: sheet_label, why: why.into(), cells: 0 }];
    }
    if is_prose(&grid) {
        let lines = grid.rows.iter().filter(|r| !SheetRow(r).is_blank()).count();
        let cells = grid.rows.iter().map(|r| SheetRow(r).filled() as u64).sum();
        return vec![SheetOutcome::Skipped {
            sheet: sheet_label,
            why: format!("it holds prose ({lines} lines of text), not a table"),
            cells,
        }];
    }
    let regions = regions_for(&grid, choice);
    let mut out = Vec::new();
    if regions.len() <= 1 {
        let naming = Naming::Whole { by_sheet: name_by_sheet };
        out.push(prepare_block(path, format, sheet, grid, naming, choice));
        return said_header(out, choice);
    }
    let parts = block_parts(&regions);
    let of = regions.len();
    for (index, (r, part)) in regions.into_iter().zip(parts).enumerate() {
        let block = grid.cut(r.rows, r.cols);
        let naming = Naming::Block { index, of, title: r.title, part, by_sheet: name_by_sheet };
        out.push(prepare_block(path, format, sheet.clone(), block, naming, choice));
    }
    said_header(out, choice)
}

/// A header row chosen outside every table of the sheet is said, not ignored.
fn said_header(mut out: Vec<SheetOutcome>, choice: &LayoutChoice) -> Vec<SheetOutcome> {
    let HeaderChoice::Row(n) = choice.header else { return out };
    let header_of = |o: &SheetOutcome| match o {
        SheetOutcome::Table(p) => p.finished.meta.layout.as_ref().and_then(|l| l.header_row),
        SheetOutcome::Skipped { .. } => None,
    };
    if out.iter().any(|o| header_of(o) == Some(n)) {
        return out;
    }
    if let Some(SheetOutcome::Table(p)) = out.iter_mut().find(|o| matches!(o, SheetOutcome::Table(_))) {
        let text = format!(
            "row {n} was chosen as the header, but it is in none of this sheet's tables; the header was found as usual"
        );
        p.finished.meta.notes.insert(0, Note::table(NoteKind::Header, text));
    }
    out
}

/// The table blocks of a grid as found and split by the person's choice;
/// none when the choice says the grid is one table.
pub fn regions_for(grid: &Grid, choice: &LayoutChoice) -> Vec<Region> {
    if choice.range.is_some() || choice.one_table {
        return Vec::new();
    }
    split_regions(crate::region::find_regions(grid), &choice.split_at, grid.first_row)
}

/// Add the user's split rows (1-based sheet rows) to the blocks found.
fn split_regions(mut regions: Vec<Region>, split_at: &[u64], first_row: u32) -> Vec<Region> {
    for &row in split_at {
        let Some(at) = (row as usize).checked_sub(first_row as usize + 1) else { continue };
        if let Some(k) = regions.iter().position(|r| r.rows.start < at && at < r.rows.end) {
            let mut tail = regions[k].clone();
            tail.rows.start = at;
            tail.title = None;
            regions[k].rows.end = at;
            regions.insert(k + 1, tail);
        }
    }
    regions
}

/// A stable key per block within its sheet: its title's words, or its number.
fn block_parts(regions: &[Region]) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let slug = r.title.as_deref().map(crate::region::title_slug).unwrap_or_default();
            let base = if slug.is_empty() { format!("table_{}", i + 1) } else { slug };
            crate::names::unique(base, &mut used)
        })
        .collect()
}

/// Shape one block of cells into a table plan.
fn prepare_block(
    path: &Path,
    format: &str,
    sheet: Option<String>,
    grid: Grid,
    naming: Naming,
    choice: &LayoutChoice,
) -> SheetOutcome {
    let rows: Vec<SheetRow> = grid.rows.iter().map(|r| SheetRow(r)).collect();
    let first_line = grid.first_row as u64 + 1;
    let header = match choice.header {
        HeaderChoice::Row(n) if !(first_line..first_line + rows.len() as u64).contains(&n) => HeaderChoice::Auto,
        h => h,
    };
    let mut layout = find_layout_with(&rows, header, first_line);
    // The header was found in the first rows; data further down may reach
    // further right. Those columns are kept (named column_N), never cut off.
    let width = rows.iter().skip(layout.data_start).map(|r| r.used_width()).max().unwrap_or(0);
    if width > layout.labels.len() {
        layout.labels.resize(width, String::new());
    }
    let shaper = crate::pieces::shape(&rows, &layout, first_line, grid.chunk_rows);
    let mut finished = finish_columns(&layout, &shaper, grid.decimal_comma, path, sheet.as_deref(), format);
    let header_cells = rows[..layout.data_start].iter().map(|r| r.filled() as u64).sum();
    let width = grid.rows.iter().map(|r| SheetRow(r).used_width()).max().unwrap_or(0);
    finished.meta.layout = Some(SourceLayout {
        range: grid.range_name(0..grid.rows.len(), 0..width),
        header_row: layout.header_row.map(|h| first_line + h as u64),
        header,
        header_cells,
    });
    name_block(&mut finished, path, sheet.as_deref(), &grid, naming);
    finished.meta.notes.extend(formula_notes(&grid, &layout, &finished));
    drop(rows);
    SheetOutcome::Table(Box::new(SheetPlan { grid, layout, finished }))
}

/// The table's name, part and where it sits on the sheet.
fn name_block(finished: &mut Finished, path: &Path, sheet: Option<&str>, grid: &Grid, naming: Naming) {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let meta = &mut finished.meta;
    match naming {
        Naming::Whole { by_sheet } => {
            if !by_sheet {
                meta.name = crate::names::table_name(&stem, None);
            }
            let (r0, c0) = (grid.first_row, grid.sheet_col(0));
            if r0 > 0 || c0 > 0 {
                let text = format!("the table starts at cell {}{}", col_letter(c0), r0 + 1);
                meta.notes.insert(0, Note::table(NoteKind::Position, text));
            }
        }
        Naming::Block { index, of, title, part, by_sheet } => {
            let base = crate::names::table_name(&stem, sheet.filter(|_| by_sheet));
            meta.name = format!("{base}_{part}");
            meta.part = Some(part);
            let range = meta.layout.as_ref().map(|l| l.range.clone()).unwrap_or_default();
            let on = sheet.map(|s| format!(" of sheet '{s}'")).unwrap_or_default();
            let text = format!(
                "cells {range}{on}: table {} of {of} found on the sheet (blank rows or columns, a title or a new header set them apart); if they belong together, load with `quarry load FILE --one-table`",
                index + 1
            );
            meta.notes.insert(0, Note::table(NoteKind::Position, text));
            if let Some(t) = title {
                meta.notes
                    .insert(1, Note::table(NoteKind::Title, format!("titled '{}'", crate::infer::truncate(&t, 120))));
            }
        }
    }
}

/// One note per column holding formulas the file saved without a result
/// (computed, or kept as the formula text), or whose every stored result is 0.
fn formula_notes(grid: &Grid, layout: &Layout, finished: &Finished) -> Vec<Note> {
    let mut missing: std::collections::BTreeMap<usize, u64> = Default::default();
    let mut zero: std::collections::BTreeMap<usize, u64> = Default::default();
    let mut computed: std::collections::BTreeMap<usize, u64> = Default::default();
    for &(r, c, k) in &grid.formulas {
        if r >= layout.data_start && !finished.excluded.contains_key(&((r - layout.data_start) as u64)) {
            *match k {
                FormulaResult::Missing => missing.entry(c),
                FormulaResult::Computed => computed.entry(c),
                FormulaResult::Zero => zero.entry(c),
            }
            .or_default() += 1;
        }
    }
    let mut notes = Vec::new();
    for (k, col) in finished.meta.columns.iter().enumerate() {
        let src = finished.sources[k];
        if let Some(n) = missing.get(&src) {
            notes.push(Note::column(NoteKind::Formulas, &col.name, format!(
                "'{}': {n} cells hold formulas the file was saved without results for (written by a program that does not compute them); kept as the formula text, not as numbers. Open the file in Excel or LibreOffice, save it, and load it again — or compute the column in SQL",
                col.label
            )));
        }
        if let Some(n) = computed.get(&src) {
            notes.push(Note::column(NoteKind::Formulas, &col.name, format!(
                "'{}': {n} values computed by Quarry from their formulas, which the file was saved without results for (arithmetic, SUM, AVERAGE, MIN, MAX, COUNT, ROUND, ABS, IF over this sheet); if in doubt, compare with the workbook opened in a spreadsheet program",
                col.label
            )));
        }
        let filled = finished.filled.get(src).copied().unwrap_or(0);
        if let Some(&n) = zero.get(&src).filter(|&&n| n >= 2 && n == filled) {
            notes.push(Note::column(NoteKind::Formulas, &col.name, format!(
                "'{}': all {n} values are formulas whose stored result is 0; the file may have been saved without computing them. Check in a spreadsheet program (open, save, load again)",
                col.label
            )));
        }
    }
    notes
}

pub fn batches(plan: &SheetPlan, sink: &mut dyn FnMut(arrow::record_batch::RecordBatch) -> Result<()>) -> Result<()> {
    crate::pieces::batches(&plan.grid, &plan.layout, &plan.finished, sink)
}
