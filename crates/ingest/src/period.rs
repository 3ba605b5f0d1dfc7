//! Cross-tabs: column headers that are periods (`Jan 2024`, `2024-Q1`,
//! `2023`), total columns, and the long form offered beside such a table.
//!
//! A sheet with months across is kept as it is, and its long form — one
//! row per row of the sheet and period column, with `period`,
//! `period_start` and `value` — is offered as a second table, so monthly
//! questions need no hand-written UNION. A column headed `Total` is kept out
//! of the data only when it is the row total of the columns before it on
//! every row (checked, and said in a note); otherwise it stays.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, StringArray, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};

use crate::cell::{self, numfmt, Cell};
use crate::error::{IngestError, Result};
use crate::table::{ColumnMeta, ColumnType, Note, NoteKind, TableMeta};

/// How long a period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    Year,
    Quarter,
    Month,
}

impl Grain {
    fn plural(self) -> &'static str {
        match self {
            Grain::Year => "years",
            Grain::Quarter => "quarters",
            Grain::Month => "months",
        }
    }
}

/// A period named by a column header. Ordered by grain, then time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub grain: Grain,
    /// Absent for headers such as `Jan` or `Q1`.
    pub year: Option<i32>,
    /// Month 1–12, quarter 1–4, 0 for a year.
    pub index: u32,
}

impl Period {
    /// The first day of the period, when its year is known.
    pub fn start(&self) -> Option<NaiveDate> {
        let y = self.year?;
        let m = match self.grain {
            Grain::Year => 1,
            Grain::Quarter => 3 * self.index - 2,
            Grain::Month => self.index,
        };
        NaiveDate::from_ymd_opt(y, m, 1)
    }
}

const MONTHS: [&[&str]; 12] = [
    &["jan", "january", "janv", "janvier"],
    &["feb", "february", "fev", "févr", "février", "fevrier"],
    &["mar", "march", "mars"],
    &["apr", "april", "avr", "avril"],
    &["may", "mai"],
    &["jun", "june", "juin"],
    &["jul", "july", "juil", "juillet"],
    &["aug", "august", "aout", "août"],
    &["sep", "sept", "september", "septembre"],
    &["oct", "october", "octobre"],
    &["nov", "november", "novembre"],
    &["dec", "december", "déc", "décembre", "decembre"],
];

fn month_name(t: &str) -> Option<u32> {
    let t = t.to_lowercase();
    MONTHS.iter().position(|names| names.contains(&t.as_str())).map(|i| i as u32 + 1)
}

fn year(t: &str) -> Option<i32> {
    let y: i32 = t.parse().ok().filter(|_| t.bytes().all(|b| b.is_ascii_digit()))?;
    match t.len() {
        4 if (1900..=2100).contains(&y) => Some(y),
        2 => Some(2000 + y),
        _ => None,
    }
}

fn quarter(t: &str) -> Option<u32> {
    let t = t.to_ascii_lowercase();
    let n = t.strip_prefix('q').or_else(|| t.strip_prefix("t"))?;
    n.parse::<u32>().ok().filter(|q| (1..=4).contains(q))
}

/// A header's text as a period: `2024`, `Jan 2024`, `January-24`,
/// `2024-01`, `01/2024`, `2024-01-01`, `Q1 2024`, `2024-Q1`, `Jan`, `Q3`.
pub fn parse_label(s: &str) -> Option<Period> {
    let s = s.trim();
    if s.is_empty() || s.len() > 24 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if let Some((y, q)) = lower.split_once('q').filter(|(y, _)| y.len() == 4) {
        return Some(Period { grain: Grain::Quarter, year: Some(year(y)?), index: quarter(&format!("q{q}"))? });
    }
    let parts: Vec<&str> = s.split([' ', '-', '/', '.', '_', '\'']).filter(|p| !p.is_empty()).collect();
    let month = |m: u32, y: Option<i32>| Some(Period { grain: Grain::Month, year: y, index: m });
    match parts.as_slice() {
        [one] => {
            if one.len() == 4 {
                return year(one).map(|y| Period { grain: Grain::Year, year: Some(y), index: 0 });
            }
            if let Some(q) = quarter(one) {
                return Some(Period { grain: Grain::Quarter, year: None, index: q });
            }
            month(month_name(one)?, None)
        }
        [a, b] => {
            if let Some(m) = month_name(a) {
                return month(m, Some(year(b)?));
            }
            if let Some(m) = month_name(b) {
                return month(m, Some(year(a).filter(|_| a.len() == 4)?));
            }
            if let Some(q) = quarter(a) {
                return Some(Period { grain: Grain::Quarter, year: Some(year(b)?), index: q });
            }
            if let Some(q) = quarter(b) {
                return Some(Period { grain: Grain::Quarter, year: Some(year(a).filter(|_| a.len() == 4)?), index: q });
            }
            let num = |t: &str| t.parse::<u32>().ok().filter(|m| (1..=12).contains(m) && t.len() <= 2);
            if a.len() == 4 {
                return month(num(b)?, Some(year(a)?));
            }
            month(num(a)?, Some(year(b).filter(|_| b.len() == 4)?))
        }
        [y, m, d] if y.len() == 4 && *d == "01" => {
            let m = m.parse::<u32>().ok().filter(|m| (1..=12).contains(m))?;
            month(m, Some(year(y)?))
        }
        _ => None,
    }
}

/// A header cell as a period (also native years and first-of-month dates).
pub fn parse_cell(c: &Cell) -> Option<Period> {
    match *c {
        Cell::Text(s) => parse_label(s),
        Cell::Int(i) if (1900..=2100).contains(&i) => {
            Some(Period { grain: Grain::Year, year: Some(i as i32), index: 0 })
        }
        Cell::Float(f) if f.fract() == 0.0 && (1900.0..=2100.0).contains(&f) => {
            Some(Period { grain: Grain::Year, year: Some(f as i32), index: 0 })
        }
        Cell::DateTime(d) if d.day() == 1 => {
            Some(Period { grain: Grain::Month, year: Some(d.year()), index: d.month() })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------- totals

/// True for a header that says its column is a total (the words that mark
/// total rows, [`cell::is_total_word`]).
pub fn is_total_label(label: &str) -> bool {
    cell::is_total_word(label)
}

/// Checks, row by row, whether a `Total` column is the sum of a run of the
/// columns just before it: `ok[s]` stays true while columns `s..col` add up
/// to it on every row.
#[derive(Debug, Clone)]
pub struct TotalCheck {
    pub col: usize,
    pub ok: Vec<bool>,
}

/// A cell as a number for adding up: blanks and placeholders are 0.
fn number(c: &Cell) -> Option<f64> {
    match *c {
        Cell::Int(i) => Some(i as f64),
        Cell::Float(f) => Some(f),
        c if c.is_null() => Some(0.0),
        Cell::Text(s) => {
            let t = cell::trim(s);
            let n = cell::classify_number(t)?;
            [numfmt::PLAIN, numfmt::THOUSANDS_COMMA]
                .into_iter()
                .find(|f| n.fits & f != 0)
                .and_then(|f| cell::parse_number(t, f))
        }
        _ => None,
    }
}

impl TotalCheck {
    pub fn new(col: usize) -> TotalCheck {
        TotalCheck { col, ok: vec![true; col] }
    }

    /// Fold in the check over the rows that follow.
    pub fn merge(&mut self, other: &TotalCheck) {
        for (a, b) in self.ok.iter_mut().zip(&other.ok) {
            *a &= b;
        }
    }

    /// One row, given as its cell at each column index.
    pub fn observe<'c>(&mut self, cell: impl Fn(usize) -> Cell<'c>) {
        let total = number(&cell(self.col));
        let mut sum = Some(0.0);
        for s in (0..self.col).rev() {
            sum = sum.zip(number(&cell(s))).map(|(a, b)| a + b);
            let same = sum.zip(total).is_some_and(|(a, t)| (a - t).abs() <= 1e-6 * t.abs().max(1.0));
            self.ok[s] &= same;
        }
    }

    /// The first column of the widest run (at least two columns) of
    /// numeric columns the total adds up.
    pub fn run_start(&self, numeric: impl Fn(usize) -> bool) -> Option<usize> {
        (0..self.col.saturating_sub(1)).find(|&s| self.ok[s] && (s..=self.col).all(&numeric))
    }
}

// ---------------------------------------------------------------- long form

/// The most rows a long form may have (rows × period columns); a bigger
/// table keeps only its wide form, and a note says so.
pub const MAX_LONG_ROWS: u64 = 20_000_000;

/// Which output columns of a wide table are periods, and which identify rows.
#[derive(Debug, Clone)]
pub struct LongSpec {
    pub ids: Vec<usize>,
    pub periods: Vec<(usize, String, Period)>,
}

/// The period columns of a table, when two or more share a grain and hold
/// numbers.
pub fn long_spec(meta: &TableMeta) -> Option<LongSpec> {
    let found: Vec<(usize, String, Period)> = meta
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.dtype.is_numeric())
        .filter_map(|(i, c)| {
            // A currency in the label (`Jan 2024 [₦]`) is not part of the period.
            let label =
                c.label.rsplit_once(" [").filter(|(_, u)| u.ends_with(']')).map_or(c.label.as_str(), |(l, _)| l);
            parse_label(label).map(|p| (i, label.to_string(), p))
        })
        .collect();
    let grain = [Grain::Month, Grain::Quarter, Grain::Year]
        .into_iter()
        .max_by_key(|g| found.iter().filter(|f| f.2.grain == *g).count())?;
    let periods: Vec<_> = found.into_iter().filter(|f| f.2.grain == grain).collect();
    if periods.len() < 2 {
        return None;
    }
    // A total that did not add up stays in the wide table, not repeated per period.
    let ids = (0..meta.columns.len())
        .filter(|i| !periods.iter().any(|p| p.0 == *i) && !is_total_label(&meta.columns[*i].label))
        .collect();
    Some(LongSpec { ids, periods })
}

/// The long form's metadata beside the wide table's, and a note for the wide one.
pub fn long_meta(wide: &TableMeta, spec: &LongSpec) -> (TableMeta, Note) {
    let mut used = std::collections::HashSet::new();
    let mut columns: Vec<ColumnMeta> = spec
        .ids
        .iter()
        .map(|&i| {
            let c = wide.columns[i].clone();
            used.insert(c.name.clone());
            c
        })
        .collect();
    let float = spec.periods.iter().any(|p| wide.columns[p.0].dtype == ColumnType::Float);
    let mut add = |label: &str, dtype| {
        let name = crate::names::unique(label.to_string(), &mut used);
        columns.push(ColumnMeta { name, label: label.to_string(), dtype });
    };
    add("period", ColumnType::Text);
    if spec.periods.iter().all(|p| p.2.start().is_some()) {
        add("period_start", ColumnType::Date);
    }
    add("value", if float { ColumnType::Float } else { ColumnType::Integer });
    let first = &spec.periods[0].1;
    let last = &spec.periods[spec.periods.len() - 1].1;
    let grain = spec.periods[0].2.grain.plural();
    let per = spec.ids.first().map(|&i| format!("{} and ", wide.columns[i].label)).unwrap_or_default();
    let long_name = format!("{}_long", wide.name);
    let text = format!(
        "long form of table {}: its {} period columns ({grain}, '{first}' … '{last}') as rows — one row per {per}period, with the header in `period`{} and the cell in `value`. Use it for questions across periods",
        wide.name,
        spec.periods.len(),
        if columns.iter().any(|c| c.name == "period_start") { ", its first day in `period_start`" } else { "" }
    );
    let meta = TableMeta {
        name: long_name.clone(),
        source: wide.source.clone(),
        sheet: wide.sheet.clone(),
        format: wide.format.clone(),
        columns,
        notes: vec![Note::table(NoteKind::LongForm, text)],
        excluded: Vec::new(),
        part: Some(match &wide.part {
            Some(p) => format!("{p}_long"),
            None => "long".into(),
        }),
        layout: None,
    };
    let note = Note::table(
        NoteKind::Periods,
        format!(
            "columns '{first}' … '{last}' are periods ({} {grain}); the same data with one row per {per}period is table {long_name}",
            spec.periods.len()
        ),
    );
    (meta, note)
}

/// Turn one batch of the wide table into rows of its long form.
pub fn unpivot(batch: &RecordBatch, spec: &LongSpec, schema: &SchemaRef) -> Result<RecordBatch> {
    let err = |e: arrow::error::ArrowError| IngestError::internal(format!("building the long form: {e}"));
    let n = batch.num_rows();
    let k = spec.periods.len();
    let rows = UInt32Array::from_iter_values((0..n as u32).flat_map(|r| std::iter::repeat_n(r, k)));
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for &i in &spec.ids {
        arrays.push(arrow::compute::take(batch.column(i), &rows, None).map_err(err)?);
    }
    let labels: StringArray = (0..n).flat_map(|_| spec.periods.iter().map(|p| Some(p.1.as_str()))).collect();
    arrays.push(Arc::new(labels));
    if schema.fields().len() == spec.ids.len() + 3 {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let starts: Date32Array = (0..n)
            .flat_map(|_| spec.periods.iter().map(|p| p.2.start().map(|d| (d - epoch).num_days() as i32)))
            .collect();
        arrays.push(Arc::new(starts));
    }
    let value_type = schema.field(schema.fields().len() - 1).data_type().clone();
    let cast: Vec<ArrayRef> = spec
        .periods
        .iter()
        .map(|p| arrow::compute::cast(batch.column(p.0), &value_type))
        .collect::<std::result::Result<_, _>>()
        .map_err(err)?;
    let refs: Vec<&dyn Array> = cast.iter().map(|a| a.as_ref()).collect();
    let picks: Vec<(usize, usize)> = (0..n).flat_map(|r| (0..k).map(move |j| (j, r))).collect();
    arrays.push(arrow::compute::interleave(&refs, &picks).map_err(err)?);
    RecordBatch::try_new(schema.clone(), arrays).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_labels() {
        let m = |y, i| Some(Period { grain: Grain::Month, year: y, index: i });
        assert_eq!(parse_label("Jan 2024"), m(Some(2024), 1));
        assert_eq!(parse_label("Feb-24"), m(Some(2024), 2));
        assert_eq!(parse_label("2024-03"), m(Some(2024), 3));
        assert_eq!(parse_label("04/2024"), m(Some(2024), 4));
        assert_eq!(parse_label("2024-05-01"), m(Some(2024), 5));
        assert_eq!(parse_label("December"), m(None, 12));
        let q = |y, i| Some(Period { grain: Grain::Quarter, year: y, index: i });
        assert_eq!(parse_label("Q1 2024"), q(Some(2024), 1));
        assert_eq!(parse_label("2024-Q2"), q(Some(2024), 2));
        assert_eq!(parse_label("2024Q3"), q(Some(2024), 3));
        assert_eq!(parse_label("2023").map(|p| p.grain), Some(Grain::Year));
        for no in ["State", "Total", "Kano 2024", "12", "2024-13", "Q5", "tested"] {
            assert_eq!(parse_label(no), None, "{no}");
        }
        assert_eq!(q(Some(2024), 2).unwrap().start(), NaiveDate::from_ymd_opt(2024, 4, 1));
    }

    #[test]
    fn total_runs() {
        let mut t = TotalCheck::new(4);
        let rows: Vec<Vec<Cell>> = vec![
            vec![Cell::Text("Kano"), Cell::Int(900), Cell::Int(1), Cell::Int(2), Cell::Int(3)],
            vec![Cell::Text("Oyo"), Cell::Int(800), Cell::Text("4"), Cell::Empty, Cell::Float(4.0)],
        ];
        for r in &rows {
            t.observe(|i| r.get(i).copied().unwrap_or(Cell::Empty));
        }
        assert_eq!(t.run_start(|c| c > 0), Some(2), "population (column 1) is not in the total");
        assert!(t.ok[2] && !t.ok[1]);
    }
}
