//! Where the tables are on a sheet. Government and programme reports put
//! several tables on one sheet: stacked ("Table 1: Tests by state", a few
//! rows, blank rows, "Table 2: Stock by LGA" with other columns) or side by
//! side, with blank columns between. Each block becomes its own table.
//!
//! The rules, in order:
//! - **Side by side**: the sheet's used columns split where a whole column is
//!   blank, when both sides are at least two columns wide and each starts
//!   with its own title, or they start on different rows, or the right one
//!   has rows the left one lacks. One table with an empty column inside
//!   (sparse columns after it included) stays one table.
//! - **Stacked**: within a band of columns, a new table starts at a title
//!   row (one text cell) followed by a header for different columns, or at
//!   a header for different columns that labels the values below it — after
//!   blank rows, or right under the data when the number of columns
//!   changes. Blank rows inside a table, repeated headers and footnotes do
//!   not split it.
//!
//! The user can always override: a cell range, or "this is one table"
//! ([`crate::LayoutChoice`]).

use std::ops::Range;

use crate::grid::{Grid, SheetRow};
use crate::shape::{is_label, is_valuey, RowLike};

/// One table block: grid rows and columns, and the title above it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub title: Option<String>,
}

/// The cells of one row within a band of columns.
fn band_row<'g>(grid: &'g Grid, r: usize, cols: &Range<usize>) -> SheetRow<'g> {
    let row = &grid.rows[r];
    let lo = cols.start.min(row.len());
    let hi = cols.end.min(row.len());
    SheetRow(&row[lo..hi])
}

/// A row with exactly one filled cell, holding text that is no value.
fn is_title(r: &SheetRow) -> bool {
    r.filled() == 1 && (0..r.len()).any(|i| is_label(&r.cell(i)))
}

fn title_text(r: &SheetRow) -> Option<String> {
    (0..r.len()).map(|i| r.cell(i)).find(|c| !c.is_blank()).map(|c| c.display())
}

/// At least two filled cells, all of them labels, filling half the band.
fn is_header_like(r: &SheetRow, width: usize) -> bool {
    let f = r.filled();
    f >= 2 && f * 2 >= width && (0..r.len()).all(|i| r.cell(i).is_blank() || is_label(&r.cell(i)))
}

fn labels(r: &SheetRow) -> Vec<String> {
    r.texts()
}

/// True when one of the next rows holds a value (number, date) under a
/// label of `h`: `h` is a header for them, not a row of text data.
fn heads_values(grid: &Grid, h: usize, rows: &[usize], cols: &Range<usize>) -> bool {
    let head = band_row(grid, h, cols);
    rows.iter().filter(|&&r| r > h).take(5).any(|&r| {
        let row = band_row(grid, r, cols);
        (0..row.len()).any(|i| is_valuey(&row.cell(i)) && is_label(&head.cell(i)))
    })
}

/// Split the sheet into table blocks (at least one when it has any cell).
pub fn find_regions(grid: &Grid) -> Vec<Region> {
    let width = grid.rows.iter().map(|r| SheetRow(r).used_width()).max().unwrap_or(0);
    let mut out = Vec::new();
    for band in bands(grid, width) {
        out.extend(stack(grid, band));
    }
    out
}

/// Column bands separated by blank sheet columns (see the module rules).
fn bands(grid: &Grid, width: usize) -> Vec<Range<usize>> {
    let mut raw: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    for k in 1..width {
        let gap = grid.cols.get(k).zip(grid.cols.get(k - 1)).is_some_and(|(b, a)| b - a > 1);
        if gap {
            raw.push(start..k);
            start = k;
        }
    }
    if width > 0 {
        raw.push(start..width);
    }
    let mut merged: Vec<Range<usize>> = Vec::new();
    for b in raw {
        match merged.last_mut() {
            Some(prev) if !separate(grid, prev, &b) => prev.end = b.end,
            _ => merged.push(b),
        }
    }
    merged
}

/// Whether two neighbouring bands hold separate tables.
fn separate(grid: &Grid, a: &Range<usize>, b: &Range<usize>) -> bool {
    if a.len() < 2 || b.len() < 2 {
        return false;
    }
    let used = |c: &Range<usize>| -> Vec<usize> {
        (0..grid.rows.len()).filter(|&r| !band_row(grid, r, c).is_blank()).collect()
    };
    let (ra, rb) = (used(a), used(b));
    let titled = |rows: &[usize], c: &Range<usize>| rows.first().is_some_and(|&r| is_title(&band_row(grid, r, c)));
    // One table with an empty spacer column: the right part starts on the
    // same row and has nothing where the left part is blank.
    let within = rb.iter().all(|r| ra.binary_search(r).is_ok());
    (titled(&ra, a) && titled(&rb, b)) || ra.first() != rb.first() || !within
}

/// Split one band into stacked tables.
fn stack(grid: &Grid, cols: Range<usize>) -> Vec<Region> {
    let rows: Vec<usize> = (0..grid.rows.len()).filter(|&r| !band_row(grid, r, &cols).is_blank()).collect();
    let Some(&first) = rows.first() else { return Vec::new() };
    let width = cols.len();
    let mut starts: Vec<(usize, Option<String>)> = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut has_data = false;
    let mut title: Option<String> = None;
    for (k, &r) in rows.iter().enumerate() {
        let row = band_row(grid, r, &cols);
        let gap = k > 0 && rows[k - 1] + 1 < r;
        let next = rows.get(k + 1).copied();
        let Some(header) = &current else {
            if is_header_like(&row, width) {
                current = Some(labels(&row));
            } else if is_title(&row) {
                title = title_text(&row);
            }
            continue;
        };
        if has_data && is_title(&row) {
            if let Some(j) = next {
                let nrow = band_row(grid, j, &cols);
                if is_header_like(&nrow, width) && &labels(&nrow) != header && heads_values(grid, j, &rows, &cols) {
                    starts.push((r, title_text(&row)));
                    current = None;
                    has_data = false;
                    continue;
                }
            }
        }
        // A new header for other columns: after blank rows, or right under
        // the data when the number of columns changes.
        let new_header = is_header_like(&row, width) && &labels(&row) != header;
        if has_data && new_header && (gap || labels(&row).len() != header.len()) && heads_values(grid, r, &rows, &cols)
        {
            starts.push((r, None));
            current = Some(labels(&row));
            has_data = false;
            continue;
        }
        if !is_header_like(&row, width) {
            has_data = true;
        }
    }
    let mut bounds = vec![(first, title)];
    bounds.extend(starts);
    // Each block ends after its last non-blank row, before the next block.
    let next: Vec<usize> = bounds.iter().skip(1).map(|b| b.0).chain(std::iter::once(usize::MAX)).collect();
    let ends: Vec<usize> =
        next.iter().map(|&n| rows[..rows.partition_point(|&r| r < n)].last().map_or(0, |r| r + 1)).collect();
    bounds
        .into_iter()
        .zip(ends)
        .map(|((start, title), end)| Region { rows: start..end, cols: cols.clone(), title })
        .collect()
}

/// A table name from a block's title: `Table 1: Tests by state` →
/// `tests_by_state` (the numbering goes, every word stays).
pub fn title_slug(title: &str) -> String {
    let t = title.trim();
    let lower = t.to_lowercase();
    let rest = ["tableau", "cuadro", "table", "tab.", "tab", "sheet"]
        .iter()
        .find_map(|w| lower.strip_prefix(w).map(|r| &t[t.len() - r.len()..]))
        .unwrap_or(t);
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c.is_whitespace() || ".:-–—)".contains(c));
    let rest = if rest.is_empty() { t } else { rest };
    let ascii: String = unicode_normalization::UnicodeNormalization::nfkd(rest)
        .filter(char::is_ascii)
        .collect::<String>()
        .to_lowercase();
    let words: Vec<&str> = ascii.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut s = String::new();
    for w in words {
        if s.len() + w.len() + 1 > 40 {
            break;
        }
        if !s.is_empty() {
            s.push('_');
        }
        s.push_str(w);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::Data;

    fn grid(rows: &[&[&str]], cols: Vec<u32>) -> Grid {
        let rows = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|s| match s.parse::<f64>() {
                        Ok(f) => Data::Float(f),
                        Err(_) if s.is_empty() => Data::Empty,
                        Err(_) => Data::String(s.to_string()),
                    })
                    .collect()
            })
            .collect();
        Grid { rows, cols, ..Default::default() }
    }

    #[test]
    fn two_stacked_tables_with_titles() {
        let g = grid(
            &[
                &["Table 1: Tests by state"],
                &["State", "Tested", "Positive"],
                &["Kano", "100", "40"],
                &["Lagos", "80", "20"],
                &[],
                &[],
                &["Table 2: Stock by LGA"],
                &["LGA", "Stock"],
                &["Dala", "5"],
            ],
            vec![0, 1, 2],
        );
        let r = find_regions(&g);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].rows.clone(), r[0].title.as_deref()), (0..4, Some("Table 1: Tests by state")));
        assert_eq!((r[1].rows.clone(), r[1].title.as_deref()), (6..9, Some("Table 2: Stock by LGA")));
    }

    #[test]
    fn a_header_for_fewer_columns_right_under_the_data() {
        let g = grid(
            &[
                &["State", "Tested", "Positive"],
                &["Kano", "1", "2"],
                &["LGA", "Stock"],
                &["Dala", "5"],
                &["Fagge", "7"],
            ],
            vec![0, 1, 2],
        );
        let r = find_regions(&g);
        assert_eq!(r.iter().map(|r| r.rows.clone()).collect::<Vec<_>>(), [0..2, 2..5]);
    }

    #[test]
    fn blank_rows_and_text_tables_stay_one() {
        let g =
            grid(&[&["Name", "Town"], &["Ada", "Kano"], &[], &["Bello", "Dala"], &[], &["Chi", "Ikeja"]], vec![0, 1]);
        assert_eq!(find_regions(&g).len(), 1);
        let g = grid(
            &[&["State", "Tested"], &["Kano", "1"], &[], &["State", "Tested"], &["Lagos", "2"], &["Source: x"]],
            vec![0, 1],
        );
        assert_eq!(find_regions(&g).len(), 1, "a repeated header is no new table");
    }

    #[test]
    fn side_by_side_blocks() {
        let g = grid(
            &[
                &["Tests", "", "Stock"],
                &["State", "Tested", "LGA", "Stock"],
                &["Kano", "1", "Dala", "5"],
                &["Lagos", "2", "", ""],
            ],
            vec![0, 1, 3, 4],
        );
        let r = find_regions(&g);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].cols.clone(), r[1].cols.clone()), (0..2, 2..4));
        // Same rows, no titles: one table with an empty column in it, also
        // when the columns after it are sparse.
        let g = grid(&[&["A", "B", "C", "D"], &["x", "1", "y", "2"]], vec![0, 1, 3, 4]);
        assert_eq!(find_regions(&g).len(), 1);
        let g = grid(&[&["A", "B", "Remarks", "By"], &["x", "1"], &["y", "2", "late", "Ada"]], vec![0, 1, 3, 4]);
        assert_eq!(find_regions(&g).len(), 1);
        // A block further down on the right is its own table.
        let g = grid(&[&["A", "B"], &["x", "1", "LGA", "Kits"], &["y", "2", "Dala", "5"]], vec![0, 1, 3, 4]);
        assert_eq!(find_regions(&g).len(), 2);
    }

    #[test]
    fn slugs() {
        assert_eq!(title_slug("Table 1: Tests by state"), "tests_by_state");
        assert_eq!(title_slug("Stock by LGA"), "stock_by_lga");
        assert_eq!(title_slug("Tableau 2 – Résultats"), "resultats");
    }
}
