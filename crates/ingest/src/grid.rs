//! A sheet's cells as the readers lay them out: rows of cells over the used
//! columns only, where they sit on the sheet, and the cell ranges people
//! write (`A5:F40`). Shared by the workbook reader, JSON and `region`.

use calamine::Data;

use crate::cell::Cell;
use crate::formula::{Cells, Value};
use crate::shape::RowLike;

/// A sheet's cells, row by row (rows as long as their last used cell).
/// Columns with no cell at all are left out; `cols` maps each grid column
/// back to its sheet column.
#[derive(Default)]
pub struct Grid {
    pub rows: Vec<Vec<Data>>,
    /// Sheet row number (0-based) of `rows[0]`.
    pub first_row: u32,
    /// Sheet column (0-based) of each grid column.
    pub cols: Vec<u32>,
    /// Grid positions (row, column) of formulas saved without a result,
    /// whose cells hold the formula text; and of formulas whose saved
    /// result is 0 (a writer that computes nothing stores 0).
    pub formulas: Vec<(usize, usize, FormulaResult)>,
    /// Text read into a grid from a `;`-separated file: `1,204` is 1.204
    /// when a value fits both notations (as for streamed text).
    pub decimal_comma: bool,
    /// Data rows per piece when the table is shaped and built on several
    /// threads (`IngestOptions::sheet_chunk_rows`; 0: one thread).
    pub chunk_rows: usize,
}

/// What a formula cell's stored result was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormulaResult {
    /// None, and Quarry could not compute it: the cell holds the formula text.
    Missing,
    /// None; Quarry computed it ([`crate::formula`]).
    Computed,
    /// Exactly 0.
    Zero,
}

/// A grid as the cells formulas read (sheet coordinates), computing the
/// formulas saved without results on demand, each once.
struct GridCells<'g> {
    grid: &'g Grid,
    /// Grid position of each formula without a result → its value once known
    /// (`None` inside while computing: a cycle).
    done: std::collections::HashMap<(usize, usize), Option<Option<Value>>>,
    /// Cells all formulas of the sheet may still read: a sheet of formulas
    /// each summing a huge range stops here, its formulas left as text.
    budget: u64,
}

/// Cell reads the formulas of one sheet may make in all.
const FORMULA_READS: u64 = 20_000_000;

impl Cells for GridCells<'_> {
    fn value(&mut self, row: u32, col: u32, depth: usize) -> Option<Value> {
        self.budget = self.budget.checked_sub(1)?;
        let Some(r) = row.checked_sub(self.grid.first_row).map(|r| r as usize) else { return Some(Value::Blank) };
        let Ok(c) = self.grid.cols.binary_search(&col) else { return Some(Value::Blank) };
        let cell = self.grid.rows.get(r).and_then(|row| row.get(c)).unwrap_or(&Data::Empty);
        match self.done.get(&(r, c)) {
            None => Some(data_value(cell)),
            Some(Some(v)) => v.clone(),
            Some(None) => {
                // Not computed yet (or a cycle, which gives an error).
                let Data::String(f) = cell else { return None };
                let f = f.clone();
                self.done.insert((r, c), Some(Some(Value::Error)));
                let v = crate::formula::evaluate(&f, self, depth);
                self.done.insert((r, c), Some(v.clone()));
                v
            }
        }
    }
}

fn data_value(d: &Data) -> Value {
    match d {
        Data::Empty => Value::Blank,
        Data::Int(i) => Value::Number(*i as f64),
        Data::Float(f) => Value::Number(*f),
        Data::Bool(b) => Value::Bool(*b),
        Data::DateTime(d) => Value::Number(d.as_f64()),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Value::Text(s.clone()),
        Data::Error(_) => Value::Error,
    }
}

impl Grid {
    /// Compute the formulas saved without results that [`crate::formula`]
    /// knows; the rest keep their formula text.
    pub fn compute_formulas(&mut self) {
        // Indexes into `formulas` of those saved without a result.
        let missing: Vec<usize> =
            (0..self.formulas.len()).filter(|&i| self.formulas[i].2 == FormulaResult::Missing).collect();
        if missing.is_empty() {
            return;
        }
        let done = missing.iter().map(|&i| ((self.formulas[i].0, self.formulas[i].1), None)).collect();
        let mut cells = GridCells { grid: self, done, budget: FORMULA_READS };
        let mut results = Vec::new();
        for &i in &missing {
            let (r, c, _) = cells.grid.formulas[i];
            results.push(cells.value(cells.grid.first_row + r as u32, cells.grid.cols[c], 0));
        }
        for (i, v) in missing.into_iter().zip(results) {
            let Some(v) = v else { continue };
            let (r, c, _) = self.formulas[i];
            self.rows[r][c] = match v {
                Value::Number(n) => Data::Float(n),
                Value::Text(t) => Data::String(t),
                Value::Bool(b) => Data::Bool(b),
                Value::Blank => Data::Empty,
                Value::Error => Data::Error(calamine::CellErrorType::Value),
            };
            self.formulas[i].2 = FormulaResult::Computed;
        }
    }

    /// Sheet column of grid column `c` (past the last: the next ones).
    pub fn sheet_col(&self, c: usize) -> u32 {
        match self.cols.get(c) {
            Some(&s) => s,
            None => self.cols.last().map_or(c as u32, |&l| l + 1 + (c - self.cols.len()) as u32),
        }
    }

    /// The cell range (`B3:F8`) of grid rows `rows` and columns `cols`.
    pub fn range_name(&self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> String {
        let row = |r: usize| self.first_row + r as u32;
        let last_col = self.sheet_col(cols.end.saturating_sub(1).max(cols.start));
        let range = CellRange {
            rows: row(rows.start)..row(rows.end.max(rows.start + 1)),
            cols: self.sheet_col(cols.start)..last_col + 1,
        };
        range.to_string()
    }

    /// Move one block out into a grid of its own (the block's cells only).
    pub fn cut(&mut self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> Grid {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows.clone() {
            let row = &mut self.rows[r];
            let hi = cols.end.min(row.len());
            let lo = cols.start.min(hi);
            out.push(row[lo..hi].iter_mut().map(std::mem::take).collect());
        }
        let formulas = self
            .formulas
            .iter()
            .filter(|(r, c, _)| rows.contains(r) && cols.contains(c))
            .map(|&(r, c, k)| (r - rows.start, c - cols.start, k))
            .collect();
        Grid {
            rows: out,
            first_row: self.first_row + rows.start as u32,
            cols: (cols.start..cols.end).map(|c| self.sheet_col(c)).collect(),
            formulas,
            decimal_comma: self.decimal_comma,
            chunk_rows: self.chunk_rows,
        }
    }

    /// Keep only the cells inside a sheet range (`--range A5:F40`).
    pub fn crop(&mut self, range: &CellRange) {
        let r0 = (range.rows.start as usize).saturating_sub(self.first_row as usize).min(self.rows.len());
        let r1 = (range.rows.end as usize).saturating_sub(self.first_row as usize).min(self.rows.len()).max(r0);
        let c0 = self.cols.iter().position(|&c| c >= range.cols.start).unwrap_or(self.cols.len());
        let c1 = self.cols.iter().position(|&c| c >= range.cols.end).unwrap_or(self.cols.len()).max(c0);
        *self = self.cut(r0..r1, c0..c1);
    }
}

/// A rectangle of sheet cells, 0-based and end-exclusive, parsed from `A5:F40`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRange {
    pub rows: std::ops::Range<u32>,
    pub cols: std::ops::Range<u32>,
}

impl std::str::FromStr for CellRange {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("range '{s}': write two corners such as A5:F40");
        let cell = |t: &str| crate::formula::cell_ref(&t.trim().to_ascii_uppercase());
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let ((r0, c0), (r1, c1)) = (cell(a).ok_or_else(bad)?, cell(b).ok_or_else(bad)?);
        Ok(CellRange { rows: r0.min(r1)..r0.max(r1) + 1, cols: c0.min(c1)..c0.max(c1) + 1 })
    }
}

impl std::fmt::Display for CellRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}:{}{}",
            col_letter(self.cols.start),
            self.rows.start + 1,
            col_letter(self.cols.end - 1),
            self.rows.end
        )
    }
}

impl serde::Serialize for CellRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CellRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
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

pub fn col_letter(mut c: u32) -> String {
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

#[cfg(test)]
mod tests {
    #[test]
    fn letters() {
        assert_eq!(super::col_letter(0), "A");
        assert_eq!(super::col_letter(1), "B");
        assert_eq!(super::col_letter(26), "AA");
    }
}
