//! Profile statistics over built batches: nulls, distinct counts, ranges,
//! means and top values, per column. Fed batch by batch, so it works at any size.

use std::hash::Hash;

use ahash::{AHashMap as HashMap, AHashSet as HashSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::cell::{fmt_datetime, fmt_float};
use crate::table::{ColumnType, NoteKind, TableMeta};

/// Distinct values are counted exactly up to this many; beyond, the count is a lower bound.
pub const DISTINCT_CAP: usize = 1_000_000;
const TOP_TRACK: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    pub nulls: u64,
    pub distinct: u64,
    /// False when `distinct` stopped counting at the cap.
    pub distinct_exact: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sum: Option<f64>,
    /// Most frequent values with counts (text and boolean columns).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub top: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    pub rows: u64,
    pub columns: Vec<ColumnStats>,
    /// Facts seen in the data as a whole, such as hierarchies between columns.
    #[serde(default)]
    pub notes: Vec<crate::table::Note>,
}

/// Watches two text columns, `parent` left of `child`, for a hierarchy: each
/// child value under exactly one parent value.
struct Nesting {
    parent: usize,
    child: usize,
    /// child hash → parent hash, until a conflict or the cap.
    map: Option<HashMap<u64, u64>>,
    /// Rows where both values are present.
    pairs: u64,
}

const NESTING_CAP: usize = 100_000;

struct Acc {
    nulls: u64,
    hashes: HashSet<u64>,
    capped: bool,
    min: Option<f64>,
    max: Option<f64>,
    sum: f64,
    count: u64,
    top: HashMap<String, u64>,
    tmin: Option<String>,
    tmax: Option<String>,
}

pub struct StatsBuilder {
    meta: Vec<(String, String, ColumnType)>,
    accs: Vec<Acc>,
    rows: u64,
    hasher: ahash::RandomState,
    nestings: Vec<Nesting>,
}

impl StatsBuilder {
    pub fn new(meta: &TableMeta) -> Self {
        StatsBuilder {
            meta: meta.columns.iter().map(|c| (c.name.clone(), c.label.clone(), c.dtype)).collect(),
            accs: meta
                .columns
                .iter()
                .map(|_| Acc {
                    nulls: 0,
                    hashes: HashSet::new(),
                    capped: false,
                    min: None,
                    max: None,
                    sum: 0.0,
                    count: 0,
                    top: HashMap::new(),
                    tmin: None,
                    tmax: None,
                })
                .collect(),
            rows: 0,
            hasher: ahash::RandomState::new(),
            nestings: {
                let text: Vec<usize> = meta
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.dtype == ColumnType::Text)
                    .map(|(i, _)| i)
                    .take(8)
                    .collect();
                text.windows(2)
                    .map(|w| Nesting { parent: w[0], child: w[1], map: Some(HashMap::new()), pairs: 0 })
                    .collect()
            },
        }
    }

    pub fn update(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        for n in &mut self.nestings {
            let Some(map) = &mut n.map else { continue };
            let (p, c) = (batch.column(n.parent).as_string::<i32>(), batch.column(n.child).as_string::<i32>());
            for (pv, cv) in p.iter().zip(c.iter()) {
                let (Some(pv), Some(cv)) = (pv, cv) else { continue };
                n.pairs += 1;
                let (ph, ch) = (self.hasher.hash_one(pv), self.hasher.hash_one(cv));
                match map.get(&ch) {
                    Some(&prev) if prev != ph => {
                        n.map = None;
                        break;
                    }
                    Some(_) => {}
                    None if map.len() >= NESTING_CAP => {
                        n.map = None;
                        break;
                    }
                    None => {
                        map.insert(ch, ph);
                    }
                }
            }
        }
        for (i, col) in batch.columns().iter().enumerate() {
            let acc = &mut self.accs[i];
            acc.nulls += col.null_count() as u64;
            let h = &self.hasher;
            let seen = |acc: &mut Acc, v: &dyn HashKey| {
                if !acc.capped {
                    acc.hashes.insert(v.key(h));
                    if acc.hashes.len() >= DISTINCT_CAP {
                        acc.capped = true;
                    }
                }
            };
            let num = |acc: &mut Acc, x: f64| {
                acc.min = Some(acc.min.map_or(x, |m| m.min(x)));
                acc.max = Some(acc.max.map_or(x, |m| m.max(x)));
                acc.sum += x;
                acc.count += 1;
            };
            match self.meta[i].2 {
                ColumnType::Integer => {
                    for v in col.as_primitive::<Int64Type>().iter().flatten() {
                        seen(acc, &v);
                        num(acc, v as f64);
                    }
                }
                ColumnType::Float => {
                    for v in col.as_primitive::<Float64Type>().iter().flatten() {
                        seen(acc, &v.to_bits());
                        num(acc, v);
                    }
                }
                ColumnType::Date => {
                    for v in col.as_primitive::<Date32Type>().iter().flatten() {
                        seen(acc, &(v as i64));
                        num(acc, v as f64);
                    }
                }
                ColumnType::DateTime => {
                    for v in col.as_primitive::<TimestampMillisecondType>().iter().flatten() {
                        seen(acc, &v);
                        num(acc, v as f64);
                    }
                }
                ColumnType::Boolean => {
                    let mut counts = [0u64; 2];
                    for v in col.as_boolean().iter().flatten() {
                        counts[usize::from(v)] += 1;
                    }
                    for (v, n) in [false, true].into_iter().zip(counts).filter(|c| c.1 > 0) {
                        seen(acc, &(v as i64));
                        *acc.top.entry(v.to_string()).or_default() += n;
                    }
                }
                ColumnType::Text => {
                    for v in col.as_string::<i32>().iter().flatten() {
                        // A value seen before is already counted as distinct,
                        // and already weighed against the least and greatest.
                        if let Some(n) = acc.top.get_mut(v) {
                            *n += 1;
                            continue;
                        }
                        seen(acc, &v);
                        if acc.top.len() < TOP_TRACK && v.len() <= SHOWN_BYTES {
                            acc.top.insert(v.to_string(), 1);
                        }
                        if acc.tmin.as_deref().is_none_or(|m| v < m) {
                            acc.tmin = Some(shown(v));
                        }
                        if acc.tmax.as_deref().is_none_or(|m| v > m) {
                            acc.tmax = Some(shown(v));
                        }
                    }
                }
            }
        }
    }

    pub fn finish(self) -> TableStats {
        let mut notes = Vec::new();
        for n in &self.nestings {
            let Some(map) = &n.map else { continue };
            let parents: HashSet<&u64> = map.values().collect();
            let dense = n.pairs * 10 >= self.rows * 9;
            if dense && parents.len() > 1 && map.len() >= 2 * parents.len() {
                let (pl, cl) = (&self.meta[n.parent].1, &self.meta[n.child].1);
                notes.push(crate::table::Note::column(
                    NoteKind::Hierarchy,
                    &self.meta[n.child].0,
                    format!(
                        "'{cl}' nests within '{pl}': each of its {} values belongs to one of {} '{pl}' values",
                        map.len(),
                        parents.len()
                    ),
                ));
            }
        }
        let columns = self
            .meta
            .into_iter()
            .zip(self.accs)
            .map(|((name, label, dtype), acc)| {
                let (min, max, mean, sum) = match dtype {
                    ColumnType::Integer | ColumnType::Float => (
                        acc.min.map(num_json),
                        acc.max.map(num_json),
                        (acc.count > 0).then(|| acc.sum / acc.count as f64),
                        (acc.count > 0).then_some(acc.sum),
                    ),
                    ColumnType::Date => {
                        (acc.min.map(|d| date_json(d as i64)), acc.max.map(|d| date_json(d as i64)), None, None)
                    }
                    ColumnType::DateTime => {
                        (acc.min.map(|d| ts_json(d as i64)), acc.max.map(|d| ts_json(d as i64)), None, None)
                    }
                    ColumnType::Text => (acc.tmin.map(Into::into), acc.tmax.map(Into::into), None, None),
                    ColumnType::Boolean => (None, None, None, None),
                };
                let mut top: Vec<(String, u64)> = acc.top.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                top.truncate(5);
                ColumnStats {
                    name,
                    label,
                    dtype,
                    nulls: acc.nulls,
                    distinct: acc.hashes.len() as u64,
                    distinct_exact: !acc.capped,
                    min,
                    max,
                    mean,
                    sum,
                    top,
                }
            })
            .collect();
        TableStats { rows: self.rows, columns, notes }
    }
}

trait HashKey {
    fn key(&self, h: &ahash::RandomState) -> u64;
}
impl<T: Hash + ?Sized> HashKey for T {
    fn key(&self, h: &ahash::RandomState) -> u64 {
        h.hash_one(self)
    }
}

/// Longest text value a profile shows (min, max, top values): a 200 MB cell
/// is summarised, not printed.
pub const SHOWN_BYTES: usize = 200;

fn shown(v: &str) -> String {
    crate::infer::truncate(v, SHOWN_BYTES)
}

fn num_json(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Value::from(x)
    }
}

/// A day number as a date; days no calendar date holds (a Parquet file
/// may store any i32) come out as the number, never as a panic.
fn date_json(days: i64) -> serde_json::Value {
    let d = chrono::TimeDelta::try_days(days)
        .and_then(|t| chrono::NaiveDate::from_ymd_opt(1970, 1, 1).and_then(|e| e.checked_add_signed(t)));
    match d {
        Some(d) => serde_json::Value::from(d.format("%Y-%m-%d").to_string()),
        None => serde_json::Value::from(days),
    }
}

fn ts_json(ms: i64) -> serde_json::Value {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(d) => serde_json::Value::from(fmt_datetime(d.naive_utc())),
        None => serde_json::Value::from(fmt_float(ms as f64)),
    }
}
