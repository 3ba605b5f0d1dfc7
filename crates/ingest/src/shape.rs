//! Where the table is inside a grid of cells: header rows below titles, joined
//! two-row headers, and which rows are data. Shared by text and spreadsheets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::cell::{self, Cell};
use crate::infer::ColumnInfer;
pub use crate::table::HeaderChoice;
use crate::table::{ExcludeReason, ExcludedRow};

/// A row of cells, however the reader holds it.
pub trait RowLike {
    fn len(&self) -> usize;
    fn cell(&self, i: usize) -> Cell<'_>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn filled(&self) -> usize {
        (0..self.len()).filter(|&i| !self.cell(i).is_blank()).count()
    }
    fn is_blank(&self) -> bool {
        (0..self.len()).all(|i| self.cell(i).is_blank())
    }
    /// Index of the last non-blank cell + 1.
    fn used_width(&self) -> usize {
        (0..self.len()).rev().find(|&i| !self.cell(i).is_blank()).map_or(0, |i| i + 1)
    }
    fn texts(&self) -> Vec<String> {
        let w = self.used_width();
        (0..w).map(|i| self.cell(i).display()).collect()
    }
}

impl RowLike for csv::StringRecord {
    fn len(&self) -> usize {
        csv::StringRecord::len(self)
    }
    fn cell(&self, i: usize) -> Cell<'_> {
        match self.get(i) {
            Some(s) => Cell::Text(s),
            None => Cell::Empty,
        }
    }
}

impl<'a> RowLike for &'a [Cell<'a>] {
    fn len(&self) -> usize {
        <[Cell]>::len(self)
    }
    fn cell(&self, i: usize) -> Cell<'_> {
        self.get(i).copied().unwrap_or(Cell::Empty)
    }
}

/// Where the header is and what the columns are called.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Index (in the rows given to [`find_layout`]) of the first data row.
    pub data_start: usize,
    /// Index of the header row, if the table has one.
    pub header_row: Option<usize>,
    /// Index of a group-header row above the header, if any.
    pub group_row: Option<usize>,
    /// One label per column (empty where the file has none).
    pub labels: Vec<String>,
    /// Rows above the header that were skipped (titles, blank lines).
    pub skipped_above: usize,
}

pub(crate) fn is_valuey(c: &Cell) -> bool {
    match c {
        Cell::Text(s) => {
            let t = s.trim();
            cell::classify_number(t).is_some()
                || cell::classify_date(t).is_some()
                || cell::classify_unit_number(t).is_some()
        }
        Cell::Int(_) | Cell::Float(_) | Cell::DateTime(_) | Cell::Bool(_) => true,
        _ => false,
    }
}

pub(crate) fn is_label(c: &Cell) -> bool {
    matches!(c, Cell::Text(s) if !s.trim().is_empty() && !is_valuey(c))
}

/// Values a header cell can hold without being data: periods in order
/// across the row (`2022, 2023, 2024`; `Mar 2024, Feb 2024`).
fn has_period_sequence<R: RowLike>(r: &R) -> bool {
    let p: Vec<_> = (0..r.len()).filter_map(|i| crate::period::parse_cell(&r.cell(i))).collect();
    p.len() >= 2 && (p.windows(2).all(|w| w[0] < w[1]) || p.windows(2).all(|w| w[0] > w[1]))
}

/// True when the candidate header row `h` reads like the rows below it (the
/// same kinds of values, values repeated below) and nothing marks it as a
/// header (a label over a column of numbers, a run of periods): the file has
/// no header row, and its first row is data.
fn looks_like_data<R: RowLike>(look: &[R], h: usize, width: usize) -> bool {
    let below: Vec<&R> = look[h + 1..].iter().filter(|r| !r.is_blank()).take(30).collect();
    if below.is_empty() || has_period_sequence(&look[h]) {
        return false;
    }
    let mut data = false;
    for i in 0..width {
        let c = look[h].cell(i);
        if c.is_blank() {
            continue;
        }
        let cells: Vec<Cell> = below.iter().map(|r| r.cell(i)).filter(|c| !c.is_null()).collect();
        let values = cells.iter().filter(|c| is_valuey(c)).count();
        let column_of_values = values > 0 && values == cells.len();
        if is_label(&c) && column_of_values {
            return false;
        }
        if is_valuey(&c) && column_of_values {
            data = true;
        }
        if is_label(&c) && values == 0 && cells.iter().any(|b| b.display() == c.display()) {
            data = true;
        }
    }
    data
}

/// The layout the user chose: header on a given row (1-based line
/// `first_line` is `rows[0]`), or none at all.
fn chosen_layout<R: RowLike>(rows: &[R], choice: HeaderChoice, first_line: u64) -> Option<Layout> {
    let width = rows.iter().take(1000).map(|r| r.used_width()).max().unwrap_or(0);
    match choice {
        HeaderChoice::Auto => None,
        HeaderChoice::None => {
            let start = rows.iter().position(|r| !r.is_blank()).unwrap_or(0);
            Some(Layout {
                data_start: start,
                header_row: None,
                group_row: None,
                labels: vec![String::new(); width],
                skipped_above: start,
            })
        }
        HeaderChoice::Row(n) => {
            let h = n.checked_sub(first_line)? as usize;
            if h >= rows.len() {
                return None;
            }
            let labels = (0..width).map(|i| rows[h].cell(i).display()).collect();
            Some(Layout { data_start: h + 1, header_row: Some(h), group_row: None, labels, skipped_above: h })
        }
    }
}

/// Find the header in the first rows of a grid (up to 50 are looked at),
/// unless the user chose it; `first_line` is the source line of `rows[0]`.
pub fn find_layout_with<R: RowLike>(rows: &[R], choice: HeaderChoice, first_line: u64) -> Layout {
    chosen_layout(rows, choice, first_line).unwrap_or_else(|| find_layout(rows))
}

/// Find the header in the first rows of a grid (up to 50 are looked at).
pub fn find_layout<R: RowLike>(rows: &[R]) -> Layout {
    let look = &rows[..rows.len().min(50)];
    let width = look.iter().map(|r| r.used_width()).max().unwrap_or(0);
    let first_nonblank = look.iter().position(|r| !r.is_blank());
    let need = if width <= 1 { 1 } else { 2.max(width.div_ceil(2)) };
    let candidate = look
        .iter()
        .position(|r| r.filled() >= need && (0..r.len()).any(|i| is_label(&r.cell(i))))
        .or_else(|| look.iter().position(|r| r.filled() >= need))
        .or(first_nonblank);
    let Some(mut h) = candidate else {
        return Layout { data_start: 0, header_row: None, group_row: None, labels: Vec::new(), skipped_above: 0 };
    };
    // A fuller row of labels right below is the real header (this one groups it).
    let all_labels = |r: &R| (0..r.len()).all(|i| r.cell(i).is_blank() || is_label(&r.cell(i)));
    while h + 1 < look.len()
        && all_labels(&look[h])
        && all_labels(&look[h + 1])
        && look[h + 1].filled() > look[h].filled()
    {
        h += 1;
    }
    let hr = &look[h];
    let values_only = (0..hr.len()).all(|i| {
        let c = hr.cell(i);
        c.is_blank() || is_valuey(&c)
    });
    if values_only || looks_like_data(look, h, width) {
        // No header row: the data starts here and columns get numbered names.
        return Layout {
            data_start: h,
            header_row: None,
            group_row: None,
            labels: vec![String::new(); width],
            skipped_above: h,
        };
    }
    let mut labels: Vec<String> = (0..width).map(|i| hr.cell(i).display()).collect();
    let mut group_row = None;
    if h > 0 {
        let g = &look[h - 1];
        let gf = g.filled();
        let all_text = (0..g.len()).all(|i| {
            let c = g.cell(i);
            c.is_blank() || is_label(&c)
        });
        if gf >= 2 && all_text && gf < hr.filled() {
            group_row = Some(h - 1);
            let mut current = String::new();
            for (i, label) in labels.iter_mut().enumerate() {
                let gc = g.cell(i).display();
                if !gc.is_empty() {
                    current = gc;
                }
                if current.is_empty() {
                    continue;
                }
                if label.is_empty() {
                    *label = current.clone();
                } else if !label.eq_ignore_ascii_case(&current) {
                    *label = format!("{current} / {label}");
                }
            }
        }
    }
    let top = group_row.unwrap_or(h);
    Layout { data_start: h + 1, header_row: Some(h), group_row, labels, skipped_above: top }
}

/// A row whose first filled cell says it is a total.
pub fn is_total_row<R: RowLike>(r: &R) -> bool {
    (0..r.len()).map(|i| r.cell(i)).find(|c| !c.is_blank()).and_then(|c| c.as_text()).is_some_and(cell::is_total_word)
}

/// A footnote: one text cell in a table at least three columns wide.
pub fn is_footnote<R: RowLike>(r: &R, width: usize) -> bool {
    width >= 3 && r.filled() == 1 && (0..r.len()).any(|i| is_label(&r.cell(i)))
}

fn is_repeated_header<R: RowLike>(r: &R, header: &[String]) -> bool {
    let mut matched = 0;
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        match r.cell(i) {
            Cell::Text(s) if cell::trim(s) == h => matched += 1,
            _ => return false,
        }
    }
    matched >= 2
}

/// Walks the data rows once: keeps rows out that are totals, footnotes,
/// repeated headers or ragged, and feeds the rest to per-column inference.
/// Trailing rows are held back a little so a footnote at the end never
/// reaches type inference.
pub struct Shaper<R: RowLike> {
    width: usize,
    header: Vec<String>,
    /// Rows must have at least this many fields (text files): the last
    /// labelled column + 1.
    min_fields: usize,
    /// Rows may have more fields only if the extras are blank.
    pub ragged_check: bool,
    tail: VecDeque<(u64, u64, R)>,
    pub columns: Vec<ColumnInfer>,
    pub excluded: BTreeMap<u64, ExcludedRow>,
    /// The excluded rows that keep their cells: the first
    /// [`MAX_EXCLUDED_KEPT`] by position.
    with_cells: BTreeSet<u64>,
    pub blank_rows: u64,
    pub rows: u64,
    /// Non-blank cells per column among kept rows.
    pub column_nonblank: Vec<u64>,
    /// Columns headed `Total`, checked against the columns before them.
    pub totals: Vec<crate::period::TotalCheck>,
}

/// Rows held back at the end of a walk: trailing totals and footnotes are
/// looked for among them.
pub(crate) const TAIL: usize = 8;
/// Excluded rows kept verbatim per table; beyond this they are only counted.
pub const MAX_EXCLUDED_KEPT: usize = 1000;

impl<R: RowLike> Shaper<R> {
    pub fn new(layout: &Layout, ragged_check: bool) -> Self {
        let width = layout.labels.len();
        let min_fields = layout.labels.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
        Shaper {
            width,
            header: layout.labels.clone(),
            min_fields,
            ragged_check,
            tail: VecDeque::with_capacity(TAIL + 1),
            columns: vec![ColumnInfer::default(); width],
            excluded: BTreeMap::new(),
            with_cells: BTreeSet::new(),
            blank_rows: 0,
            rows: 0,
            column_nonblank: vec![0; width],
            totals: (0..width)
                .filter(|&i| crate::period::is_total_label(&layout.labels[i]))
                .map(crate::period::TotalCheck::new)
                .collect(),
        }
    }

    /// `index` numbers data rows from 0 (the id used again in the build pass);
    /// `line` is the 1-based position in the source for messages. Returns a
    /// row the caller may reuse as a buffer.
    pub fn push(&mut self, index: u64, line: u64, row: R) -> Option<R> {
        if row.is_blank() {
            // Blank rows are skipped again, by the same test, in the build pass.
            self.blank_rows += 1;
            return Some(row);
        }
        if self.ragged_check {
            if row.used_width() > self.width {
                self.exclude(index, line, &row, ExcludeReason::LongRow);
                return Some(row);
            }
            if row.len() < self.min_fields {
                self.exclude(index, line, &row, ExcludeReason::ShortRow);
                return Some(row);
            }
        }
        self.tail.push_back((index, line, row));
        if self.tail.len() > TAIL {
            let (i, l, r) = self.tail.pop_front().expect("tail is not empty");
            self.fold(i, l, &r);
            return Some(r);
        }
        None
    }

    fn fold(&mut self, index: u64, line: u64, row: &R) {
        if is_total_row(row) {
            return self.exclude(index, line, row, ExcludeReason::TotalRow);
        }
        if is_repeated_header(row, &self.header) {
            return self.exclude(index, line, row, ExcludeReason::RepeatedHeader);
        }
        for (i, col) in self.columns.iter_mut().enumerate() {
            let c = row.cell(i);
            if !c.is_blank() {
                self.column_nonblank[i] += 1;
            }
            col.observe(&c);
        }
        for t in &mut self.totals {
            t.observe(|i| row.cell(i));
        }
        self.rows += 1;
    }

    fn exclude(&mut self, index: u64, line: u64, row: &R, reason: ExcludeReason) {
        let full = self.with_cells.len() >= MAX_EXCLUDED_KEPT;
        if full && self.with_cells.last().is_some_and(|&l| l < index) {
            self.excluded.insert(index, ExcludedRow { row: line, reason, cells: Vec::new() });
            return;
        }
        let cells = row.texts().into_iter().map(|t| crate::infer::cap(t, 1000)).collect();
        self.excluded.insert(index, ExcludedRow { row: line, reason, cells });
        self.keep_cells(index);
    }

    /// `index` keeps its cells; past the limit, the row furthest down loses its.
    fn keep_cells(&mut self, index: u64) {
        self.with_cells.insert(index);
        if self.with_cells.len() > MAX_EXCLUDED_KEPT {
            if let Some(last) = self.with_cells.pop_last() {
                if let Some(e) = self.excluded.get_mut(&last) {
                    e.cells = Vec::new();
                }
            }
        }
    }

    /// Whether a whole tail of rows is held back — if not, rows before this
    /// walk's might be trailing ones too (a walk that is a file's last piece).
    pub fn tail_full(&self) -> bool {
        self.tail.len() >= TAIL
    }

    /// Folds in the rows still held back: the rows after these are in
    /// another chunk, so none of these ends the file.
    pub fn flush_tail(&mut self) {
        while let Some((i, l, r)) = self.tail.pop_front() {
            self.fold(i, l, &r);
        }
    }

    /// Fold in the shaping of the rows that follow this walk's (a later
    /// chunk of the same file, walked on its own with indices from 0):
    /// `base` is the index of `other`'s first row here. Both walks must be
    /// over (`flush_tail` or `finish`).
    pub fn merge(&mut self, other: Shaper<R>, base: u64) {
        debug_assert!(self.tail.is_empty() && other.tail.is_empty());
        for (i, e) in other.excluded {
            self.excluded.insert(i + base, e);
        }
        for i in other.with_cells {
            self.keep_cells(i + base);
        }
        for (a, b) in self.columns.iter_mut().zip(other.columns) {
            a.merge(b);
        }
        for (a, b) in self.totals.iter_mut().zip(&other.totals) {
            a.merge(b);
        }
        for (a, b) in self.column_nonblank.iter_mut().zip(&other.column_nonblank) {
            *a += b;
        }
        self.blank_rows += other.blank_rows;
        self.rows += other.rows;
    }

    /// Ends the walk: trailing totals and footnotes go out, the rest is folded in.
    pub fn finish(&mut self) {
        let mut cut = self.tail.len();
        while cut > 0 {
            let (_, _, r) = &self.tail[cut - 1];
            if is_total_row(r) || is_footnote(r, self.width) {
                cut -= 1;
            } else {
                break;
            }
        }
        let trailing: Vec<_> = self.tail.drain(cut..).collect();
        let rest: Vec<_> = self.tail.drain(..).collect();
        for (i, l, r) in rest {
            self.fold(i, l, &r);
        }
        for (i, l, r) in trailing {
            let reason = if is_total_row(&r) { ExcludeReason::TotalRow } else { ExcludeReason::Footnote };
            self.exclude(i, l, &r, reason);
        }
    }

    pub fn is_excluded(&self, index: u64) -> bool {
        self.excluded.contains_key(&index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Cell<'_> {
        if s.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(s)
        }
    }

    #[test]
    fn title_rows_and_two_row_header() {
        let grid: Vec<Vec<Cell>> = vec![
            vec![t("NATIONAL PROGRAMME")],
            vec![t("Monthly report")],
            vec![],
            vec![t("Location"), t(""), t("Tested"), t(""), t("Remarks")],
            vec![t("State"), t("LGA"), t("<5yrs"), t("≥5yrs"), t("")],
            vec![t("Kano"), t("Dala"), Cell::Float(1.0), Cell::Float(2.0), t("")],
        ];
        let rows: Vec<&[Cell]> = grid.iter().map(|r| r.as_slice()).collect();
        let l = find_layout(&rows);
        assert_eq!(l.header_row, Some(4));
        assert_eq!(l.group_row, Some(3));
        assert_eq!(l.data_start, 5);
        assert_eq!(l.labels, vec!["Location / State", "Location / LGA", "Tested / <5yrs", "Tested / ≥5yrs", "Remarks"]);
    }

    #[test]
    fn no_header() {
        let grid: Vec<Vec<Cell>> = vec![vec![t("1"), t("2.5")], vec![t("3"), t("4")]];
        let rows: Vec<&[Cell]> = grid.iter().map(|r| r.as_slice()).collect();
        let l = find_layout(&rows);
        assert_eq!((l.header_row, l.data_start, l.labels.len()), (None, 0, 2));
    }

    #[test]
    fn totals_and_footnotes_stay_out() {
        let grid: Vec<Vec<Cell>> = vec![
            vec![t("A"), t("B"), t("C")],
            vec![t("x"), t("1"), t("2")],
            vec![t("TOTAL"), t("1"), t("2")],
            vec![],
            vec![t("Source: somewhere, provisional.")],
        ];
        let rows: Vec<&[Cell]> = grid.iter().map(|r| r.as_slice()).collect();
        let l = find_layout(&rows);
        let mut s = Shaper::new(&l, false);
        for (i, r) in rows[l.data_start..].iter().enumerate() {
            s.push(i as u64, i as u64 + 2, *r);
        }
        s.finish();
        assert_eq!(s.rows, 1);
        let reasons: Vec<_> = s.excluded.values().map(|e| e.reason).collect();
        assert_eq!(reasons, vec![ExcludeReason::TotalRow, ExcludeReason::Footnote]);
    }
}
