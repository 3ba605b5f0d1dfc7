//! From one walk over a table's rows to its columns: names from labels,
//! types from inference, blank and total columns left out, and the notes
//! that say what was decided and why.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use ahash::AHashMap;

use crate::infer::{self, ColumnPlan};
use crate::shape::{Layout, RowLike, Shaper};
use crate::table::{ColumnMeta, ColumnType, ExcludeReason, ExcludedRow, Note, NoteKind, TableMeta};
use crate::{names, Finished};

/// What the layout says about the header: two rows joined, rows skipped above it, or none.
fn header_notes(layout: &Layout) -> Vec<Note> {
    let mut notes: Vec<Note> = Vec::new();
    if let Some(h) = layout.header_row {
        let line = |i: usize| i + 1;
        if let Some(g) = layout.group_row {
            notes.push(Note::table(
                NoteKind::Header,
                format!(
                    "two-row header on rows {} and {} of the table region, joined into one name per column",
                    line(g),
                    line(h)
                ),
            ));
        }
        if layout.skipped_above > 0 {
            notes.push(Note::table(
                NoteKind::Header,
                format!("header found below {} title or blank rows, which were skipped", layout.skipped_above),
            ));
        }
    } else if !layout.labels.is_empty() {
        notes.push(Note::table(
            NoteKind::Header,
            "no header row: the first row holds values, so columns are numbered (column_1, column_2, …)",
        ));
    }
    notes
}

/// One note per reason rows were kept out of the data, naming the rows.
fn excluded_notes(excluded: &BTreeMap<u64, ExcludedRow>) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut by_reason: BTreeMap<ExcludeReason, Vec<u64>> = BTreeMap::new();
    for e in excluded.values() {
        by_reason.entry(e.reason).or_default().push(e.row);
    }
    for (reason, rows) in by_reason {
        let kind = reason.note_kind();
        let reason = reason.describe();
        let list = rows.iter().take(10).map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
        let more = if rows.len() > 10 { format!(" and {} more", rows.len() - 10) } else { String::new() };
        notes.push(Note::table(
            kind,
            format!(
                "{} row(s) kept out of the data as {reason} (source row {list}{more}); kept verbatim as excluded rows (after loading: `quarry excluded TABLE`)",
                rows.len()
            ),));
    }
    notes
}

/// Turn a finished walk over the rows into columns, names, types and notes.
pub(crate) fn finish_columns<R: RowLike>(
    layout: &Layout,
    shaper: &Shaper<R>,
    prefer_decimal_comma: bool,
    path: &Path,
    sheet: Option<&str>,
    format: &str,
) -> Finished {
    // Text files declare their fields, so only trailing unlabelled blank
    // columns (a trailing delimiter) go; in sheets every unlabelled blank column goes.
    let text_file = format == "csv";
    let last_used = (0..layout.labels.len())
        .rev()
        .find(|&i| !layout.labels[i].trim().is_empty() || shaper.column_nonblank[i] > 0)
        .map_or(0, |i| i + 1);
    let mut notes = header_notes(layout);
    let mut plans: Vec<ColumnPlan> = shaper.columns.iter().map(|c| c.plan(prefer_decimal_comma)).collect();
    one_date_order(shaper, &layout.labels, &mut plans, &mut notes);
    let mut sources = Vec::new();
    let mut dropped = 0;
    let totals = total_columns(layout, shaper, &plans, &mut notes);
    for (i, label) in layout.labels.iter().enumerate() {
        if label.trim().is_empty() && shaper.column_nonblank[i] == 0 && (!text_file || i >= last_used) {
            dropped += 1;
            continue;
        }
        if totals.contains(&i) {
            continue;
        }
        sources.push(i);
    }
    if dropped > 0 {
        notes.push(Note::table(NoteKind::BlankColumns, format!("{dropped} blank columns without a header dropped")));
    }
    let labels: Vec<String> = sources
        .iter()
        .map(|&i| {
            let l = layout.labels[i].trim();
            if l.is_empty() {
                format!("column_{}", i + 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    let names = names::column_names(&labels);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (k, l) in labels.iter().enumerate() {
        if let Some(&first) = seen.get(l.as_str()) {
            notes.push(Note::column(
                NoteKind::DuplicateHeader,
                &names[k],
                format!(
                    "header '{l}' appears more than once; this copy is named {} (the first is {})",
                    names[k], names[first]
                ),
            ));
        } else {
            seen.insert(l, k);
        }
    }
    let columns: Vec<ColumnMeta> = sources
        .iter()
        .zip(labels.iter().zip(&names))
        .map(|(&i, (l, n))| ColumnMeta { name: n.clone(), label: unit_label(l, &plans[i]), dtype: plans[i].dtype })
        .collect();
    for (k, &i) in sources.iter().enumerate() {
        notes.extend(shaper.columns[i].notes(&labels[k], &names[k], &plans[i]));
        if let Some(n) = observe_text_column(&shaper.columns[i], &plans[i], &labels[k], &names[k]) {
            notes.extend(n);
        }
    }
    if shaper.blank_rows > 0 {
        notes.push(Note::table(NoteKind::BlankRows, format!("{} blank rows skipped", shaper.blank_rows)));
    }
    notes.extend(excluded_notes(&shaper.excluded));
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let meta = TableMeta {
        name: names::table_name(&stem, sheet),
        source: path.display().to_string(),
        sheet: sheet.map(str::to_string),
        format: format.to_string(),
        columns,
        notes,
        excluded: shaper.excluded.values().cloned().collect(),
        part: None,
        layout: None,
    };
    let schema = Arc::new(meta.schema());
    let filled = shaper.column_nonblank.clone();
    Finished { meta, schema, sources, plans, excluded: shaper.excluded.clone(), rows: shaper.rows, filled }
}

/// One day/month order per file, from the evidence of all its date columns:
/// when some column can only be month/day (a value like `03/31/2024`) and
/// none can only be day/month, the columns that fit both are read
/// month/day too (each says so). Columns decided in opposite orders keep
/// what their values require, and a note says the file mixes them.
fn one_date_order<R: RowLike>(shaper: &Shaper<R>, labels: &[String], plans: &mut [ColumnPlan], notes: &mut Vec<Note>) {
    use crate::cell::datefmt::{DMY, MDY};
    let dated: Vec<(usize, u8)> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            matches!(p.dtype, ColumnType::Date | ColumnType::DateTime) && p.date_fmt != crate::cell::datefmt::YMD
        })
        .map(|(i, _)| (i, shaper.columns[i].date_fits()))
        .collect();
    let only = |bit: u8, other: u8| {
        dated.iter().filter(|(_, f)| f & bit != 0 && f & other == 0).map(|(i, _)| *i).collect::<Vec<_>>()
    };
    let (dmy, mdy) = (only(DMY, MDY), only(MDY, DMY));
    if !mdy.is_empty() && dmy.is_empty() {
        for (i, f) in &dated {
            if f & DMY != 0 && f & MDY != 0 {
                plans[*i].date_fmt = MDY;
            }
        }
    } else if !mdy.is_empty() && !dmy.is_empty() {
        let name = |v: &[usize]| v.iter().map(|&i| format!("'{}'", labels[i].trim())).collect::<Vec<_>>().join(", ");
        notes.push(Note::table(
            NoteKind::DateFormat,
            format!(
                "this file writes dates in both orders: {} day/month, {} month/day (each read as its values require); check which is meant before comparing them",
                name(&dmy),
                name(&mdy)
            ),
        ));
    }
}

/// A currency goes into the label (`Amount [₦]`), so it is seen wherever
/// the column is; percent points are said in the column's note.
fn unit_label(label: &str, plan: &ColumnPlan) -> String {
    match plan.unit {
        Some(crate::cell::Unit::Currency(c)) if !label.contains(c) => format!("{label} [{c}]"),
        _ => label.to_string(),
    }
}

/// Columns headed `Total` that are, on every kept row, the sum of the
/// numeric columns just before them: kept out of the data, with a note
/// that counts their cells. A `Total` that does not add up stays, and a
/// note says so.
fn total_columns<R: RowLike>(
    layout: &Layout,
    shaper: &Shaper<R>,
    plans: &[ColumnPlan],
    notes: &mut Vec<Note>,
) -> Vec<usize> {
    let mut out = Vec::new();
    if shaper.rows == 0 {
        return out;
    }
    for t in &shaper.totals {
        let label = layout.labels[t.col].trim();
        let numeric = |c: usize| plans[c].dtype.is_numeric() || shaper.column_nonblank[c] == 0;
        match t.run_start(numeric) {
            Some(s) => {
                out.push(t.col);
                let n = shaper.column_nonblank[t.col];
                notes.push(
                    Note::table(
                        NoteKind::TotalColumn,
                        format!(
                            "column '{label}' is the row total of columns '{}' … '{}' on all {} rows; kept out of the data ({n} cells) — add the columns up to get it again",
                            layout.labels[s].trim(),
                            layout.labels[t.col - 1].trim(),
                            shaper.rows
                        ),
                    )
                    .counting(n),
                );
            }
            None if plans[t.col].dtype.is_numeric() => notes.push(Note::table(
                NoteKind::TotalColumn,
                format!("column '{label}' is headed as a total but is not the sum of the columns before it on every row; kept as data"),
            )),
            None => {}
        }
    }
    out
}

/// Notes about what a text column looks like: shared prefixes and suffixes
/// (`kw `, ` Local Government Area`) and low cardinality. Meanings are not
/// guessed; these are facts the analyst can use.
fn observe_text_column(c: &infer::ColumnInfer, plan: &ColumnPlan, label: &str, name: &str) -> Option<Vec<Note>> {
    if plan.dtype != ColumnType::Text {
        return None;
    }
    // Counts after spelling variants are folded.
    let mut folded: AHashMap<&str, u64> = AHashMap::new();
    for (v, n) in c.distinct_values()? {
        let canon = plan.canonical.get(v).unwrap_or(v);
        *folded.entry(canon.as_str()).or_default() += n;
    }
    if folded.len() < 2 {
        return None;
    }
    let mut notes = Vec::new();
    let values: Vec<&str> = folded.keys().copied().collect();
    for suffix in [false, true] {
        if let Some((affix, without)) = common_affix(&values, suffix) {
            let which = if suffix { "suffix" } else { "prefix" };
            let text = if without.is_empty() {
                format!("'{label}': every value has the {which} '{affix}'")
            } else {
                let list = without
                    .iter()
                    .take(3)
                    .map(|v| format!("'{}'", infer::truncate(v, 40)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "'{label}': {} of {} distinct values have the {which} '{affix}' (not: {list})",
                    values.len() - without.len(),
                    values.len()
                )
            };
            notes.push(Note::column(NoteKind::SharedAffix, name, text));
        }
    }
    if folded.len() <= 50 && c.non_null >= 4 * folded.len() as u64 {
        let mut top: Vec<(&str, u64)> = folded.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let list =
            top.iter().take(6).map(|(v, _)| format!("'{}'", infer::truncate(v, 40))).collect::<Vec<_>>().join(", ");
        notes.push(Note::column(
            NoteKind::Categorical,
            name,
            format!(
                "'{label}': categorical, {} distinct values ({list}{})",
                top.len(),
                if top.len() > 6 { ", …" } else { "" }
            ),
        ));
    }
    Some(notes)
}

/// The longest word-aligned prefix (or suffix) that at least 80% of the
/// values share, with the values that lack it.
fn common_affix<'v>(values: &[&'v str], suffix: bool) -> Option<(String, Vec<&'v str>)> {
    let need = (values.len() * 4).div_ceil(5).max(2);
    // Candidates come from every value's word boundaries; the longest shared by enough values wins.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in values {
        let words: Vec<&str> = v.split_inclusive(' ').collect();
        let n = words.len();
        for k in 1..n {
            let cand = if suffix { words[n - k..].concat() } else { words[..k].concat() };
            *counts.entry(cand).or_default() += 1;
        }
    }
    let mut cands: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= need).collect();
    cands.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    let (b, _) = cands.into_iter().next()?;
    let without: Vec<&str> = values
        .iter()
        .copied()
        .filter(|v| !(v.len() > b.len() && if suffix { v.ends_with(&b) } else { v.starts_with(&b) }))
        .collect();
    let t = if suffix { format!(" {}", b.trim()) } else { b };
    (t.trim().len() >= 2).then_some((t, without))
}
