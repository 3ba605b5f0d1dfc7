//! A grid's data rows (a workbook's sheet, a JSON document) shaped and
//! built on every core, in pieces of [`Grid::chunk_rows`] rows.
//!
//! Each piece is shaped and inferred on its own and the results are merged
//! in row order ([`Shaper::merge`]); each piece's kept rows are built into
//! Arrow on their own and the batches handed on in row order, re-cut to
//! `BATCH_ROWS` (`parallel::built_in_order`). So the columns, notes, excluded rows and the Parquet file
//! are byte for byte those one thread makes (`tests/it/parallel.rs`).

use arrow::record_batch::RecordBatch;

use crate::build::BatchBuilder;
use crate::error::Result;
use crate::grid::{Grid, SheetRow};
use crate::parallel::{in_order, threads};
use crate::shape::{Layout, RowLike, Shaper, TAIL};
use crate::Finished;

/// Default rows per piece.
pub const CHUNK_ROWS: u64 = 16 * 1024;

/// Where each piece of `rows[start..]` begins: every `per` rows, except
/// that the last piece holds the last [`TAIL`] non-blank rows — trailing
/// totals and footnotes are looked for among them, as in one walk.
fn cuts(rows: &[SheetRow<'_>], start: usize, per: usize) -> Vec<usize> {
    if per == 0 || rows.len() <= start.saturating_add(per) {
        return vec![start];
    }
    let mut out: Vec<usize> = (start..rows.len()).step_by(per).collect();
    let floor = (start..rows.len()).rev().filter(|&i| !rows[i].is_blank()).take(TAIL).last().unwrap_or(start);
    while out.len() > 1 && out.last().is_some_and(|&c| c > floor) {
        out.pop();
    }
    out
}

/// Shape and infer the data rows of `rows` (line numbers from
/// `first_line`), piece by piece on every core.
pub(crate) fn shape<'a>(rows: &[SheetRow<'a>], layout: &Layout, first_line: u64, per: usize) -> Shaper<SheetRow<'a>> {
    let start = layout.data_start;
    let cuts = cuts(rows, start, per);
    let walk = |k: usize| {
        let (a, b) = (cuts[k], cuts.get(k + 1).copied().unwrap_or(rows.len()));
        let mut s = Shaper::new(layout, false);
        for (i, r) in rows.iter().enumerate().take(b).skip(a) {
            s.push((i - a) as u64, first_line + i as u64, *r);
        }
        if k + 1 == cuts.len() {
            s.finish();
        } else {
            s.flush_tail();
        }
        s
    };
    if cuts.len() == 1 {
        return walk(0);
    }
    let mut merged: Option<Shaper<SheetRow<'a>>> = None;
    let merge = |k: usize, s: Shaper<SheetRow<'a>>| {
        match merged.as_mut() {
            None => merged = Some(s),
            Some(m) => m.merge(s, (cuts[k] - start) as u64),
        }
        Ok(())
    };
    // Merging cannot fail, so neither can the walk.
    let _ = in_order(cuts.len(), threads(cuts.len()), walk, merge);
    merged.unwrap_or_else(|| walk(0))
}

/// The kept data rows of `grid` (shaped as `layout`, planned as `f`) as
/// batches of [`crate::build::BATCH_ROWS`], in row order.
pub(crate) fn batches(
    grid: &Grid,
    layout: &Layout,
    f: &Finished,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let rows: Vec<SheetRow<'_>> = grid.rows.iter().map(|r| SheetRow(r)).collect();
    let start = layout.data_start;
    let cuts = cuts(&rows, start, grid.chunk_rows);
    let build = |k: usize, sink: &mut dyn FnMut(RecordBatch) -> Result<()>| -> Result<()> {
        let (a, b) = (cuts[k], cuts.get(k + 1).copied().unwrap_or(rows.len()));
        let mut builder = BatchBuilder::new(f.schema.clone(), f.sources.clone(), &f.plans);
        for (i, row) in rows.iter().enumerate().take(b).skip(a) {
            if f.excluded.contains_key(&((i - start) as u64)) || row.is_blank() {
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
    };
    if cuts.len() == 1 {
        return build(0, sink);
    }
    let piece = |k: usize| {
        let mut out = Vec::new();
        build(k, &mut |b| {
            out.push(b);
            Ok(())
        })
        .map(|()| out)
    };
    crate::parallel::built_in_order(cuts.len(), f.schema.clone(), piece, |_| {}, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::Data;

    #[test]
    fn the_last_piece_holds_the_last_rows_that_may_be_trailing() {
        let full = vec![Data::String("x".into())];
        let blank: Vec<Data> = Vec::new();
        let mut grid: Vec<Vec<Data>> = (0..100).map(|_| full.clone()).collect();
        let rows: Vec<SheetRow<'_>> = grid.iter().map(|r| SheetRow(r)).collect();
        assert_eq!(cuts(&rows, 1, 0), vec![1]);
        assert_eq!(cuts(&rows, 1, 200), vec![1]);
        assert_eq!(cuts(&rows, 1, 30), vec![1, 31, 61, 91], "the last piece has 9 rows");
        assert_eq!(cuts(&rows, 2, 30), vec![2, 32, 62, 92], "the last piece has exactly the last 8");
        for r in grid.iter_mut().skip(93) {
            *r = blank.clone();
        }
        let rows: Vec<SheetRow<'_>> = grid.iter().map(|r| SheetRow(r)).collect();
        assert_eq!(cuts(&rows, 1, 30), vec![1, 31, 61], "rows 85..93 are the last non-blank ones");
    }
}
