//! What changed between two runs of an analysis, computed from the two
//! results: rows matched by their text and date columns, each numeric value
//! that changed stated with both numbers (`tpr in Kano: 48.2 → 53.9`), rows
//! added and removed counted.

use std::collections::BTreeMap;

use serde_json::Value;

use super::AnalysisRun;
use crate::slots::human;
use quarry_types::Table;

/// Lines about what changed shown at most.
const SHOWN: usize = 6;

fn key_and_values(t: &Table) -> (Vec<usize>, Vec<usize>) {
    let (nums, keys): (Vec<usize>, Vec<usize>) = (0..t.columns.len()).partition(|&i| t.columns[i].is_numeric());
    (keys, nums)
}

fn rows_by_key(t: &Table, keys: &[usize]) -> BTreeMap<String, usize> {
    t.rows
        .iter()
        .enumerate()
        .map(|(i, r)| (keys.iter().map(|&k| human(&r[k], "")).collect::<Vec<_>>().join(", "), i))
        .collect()
}

/// The lines comparing `previous`'s result with `now`.
pub fn compare(previous: &AnalysisRun, now: &Table) -> Vec<String> {
    let Some(before) = previous.table.as_ref().filter(|_| previous.ok) else { return Vec::new() };
    let names = |t: &Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    if names(before) != names(now) {
        return vec![format!("The result's columns changed since run {}.", previous.number)];
    }
    let (keys, nums) = key_and_values(now);
    let (old, new) = (rows_by_key(before, &keys), rows_by_key(now, &keys));
    let mut changes = Vec::new();
    for (key, &j) in &new {
        let Some(&i) = old.get(key) else { continue };
        for &c in &nums {
            let (a, b) = (&before.rows[i][c], &now.rows[j][c]);
            if a != b {
                let col = &now.columns[c].name;
                let at = if key.is_empty() { String::new() } else { format!(" in {key}") };
                changes.push((delta(a, b), format!("{col}{at}: {} → {}", human(a, col), human(b, col))));
            }
        }
    }
    changes.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<String> = changes.iter().take(SHOWN).map(|(_, s)| s.clone()).collect();
    if changes.len() > SHOWN {
        out.push(format!("… and {} more changed values.", changes.len() - SHOWN));
    }
    let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
    let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    for (what, list) in [("added", &added), ("removed", &removed)] {
        if !list.is_empty() {
            let e: Vec<&str> = list.iter().take(3).map(|s| s.as_str()).collect();
            out.push(format!(
                "{} row{} {what} (e.g. {}).",
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                e.join("; ")
            ));
        }
    }
    if out.is_empty() {
        out.push(format!("No change since run {}.", previous.number));
    }
    out
}

/// How much a value moved, relative to where it was (for ordering).
fn delta(a: &Value, b: &Value) -> f64 {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if x != 0.0 => ((y - x) / x).abs(),
        (Some(_), Some(_)) => f64::INFINITY,
        _ => 0.0,
    }
}
