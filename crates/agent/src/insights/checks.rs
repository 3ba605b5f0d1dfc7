//! The checks of the insights pass, one function per kind; each builds its
//! SQL from the table's shape, runs it, and states what it found.

use serde_json::Value;

use quarry_ingest::catalog::TableEntry;
use quarry_types::sql::quoted;
use quarry_types::{ColumnType, Table};

use super::{Finding, InsightKind, Shape};
use crate::chart::{self, ChartProposal};
use crate::slots::human;

type Check = fn(&Shape) -> Result<Vec<Finding>, String>;

/// The checks that query the table, by name.
pub(super) const ALL: [(&str, Check); 6] = [
    ("impossible values", impossible),
    ("duplicated rows", duplicates),
    ("missing reports", missing_periods),
    ("outliers", outliers),
    ("sudden changes", sudden_changes),
    ("spelling variants", spelling),
];

/// Text columns whose values are compared for spellings at most.
const MAX_TEXT: usize = 40;

/// Rows a finding's result keeps.
const SHOWN: usize = 50;

fn q(name: &str) -> String {
    quoted(name)
}

fn int(t: &Table, row: usize, col: usize) -> i64 {
    t.rows.get(row).and_then(|r| r.get(col)).and_then(Value::as_i64).unwrap_or(0)
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Where a result row is, for people: its locator columns' values.
fn place(t: &Table, row: usize, locators: &[&str]) -> String {
    let r = &t.rows[row];
    let parts: Vec<String> = locators
        .iter()
        .filter_map(|l| t.columns.iter().position(|c| c.name == *l))
        .map(|i| {
            if matches!(t.columns[i].dtype, Some(ColumnType::Integer)) {
                period_text(&r[i])
            } else {
                human(&r[i], "")
            }
        })
        .collect();
    parts.join(", ")
}

fn chart_of(t: &Table, kind: &str, x: &str, y: Option<&str>) -> Option<Value> {
    let p =
        ChartProposal { kind: kind.into(), x: Some(x.into()), y: y.map(str::to_string), ..ChartProposal::default() };
    chart::build(Some(&p), t, "")
}

fn finding(kind: InsightKind, score: f64, text: String, columns: &[&str], sql: String, result: Table) -> Finding {
    Finding {
        kind,
        score,
        text,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        sql,
        result: Some(result),
        chart: None,
    }
}

const WHOLE_WORDS: &[&str] = &[
    "tested",
    "total",
    "population",
    "examined",
    "screened",
    "enrolled",
    "received",
    "expected",
    "eligible",
    "registered",
    "attended",
    "all",
];
const PART_WORDS: &[&str] =
    &["positive", "confirmed", "treated", "deaths", "died", "cases", "failed", "passed", "used", "given", "admitted"];

fn tokens(name: &str) -> Vec<&str> {
    name.split(|c: char| !c.is_alphanumeric()).filter(|t| t.len() >= 3).collect()
}

/// Whether the names say `part` is counted within `whole`: a word tells
/// them apart (`positive` in the part, or `tested`/`total`… in the whole
/// only), their qualifiers with digits agree (`lt5yrs`, `2024`), and the part
/// has at most one other word the whole lacks (`malaria` in
/// `tested_positive_malaria_rdt_ge5yrs` of `presenting_fever_tested_rdt_ge5yrs`).
fn named_part_of(part: &str, whole: &str) -> bool {
    let (p, w) = (tokens(part), tokens(whole));
    let told_apart = p.iter().any(|t| PART_WORDS.contains(t) && !w.contains(t))
        || w.iter().any(|t| WHOLE_WORDS.contains(t) && !p.contains(t));
    let digits = |ts: &[&str]| {
        let mut d: Vec<String> =
            ts.iter().filter(|t| t.chars().any(|c| c.is_ascii_digit())).map(|t| t.to_string()).collect();
        d.sort();
        d
    };
    let extra = p.iter().filter(|t| !w.contains(t) && !PART_WORDS.contains(t)).count();
    told_apart && digits(&p) == digits(&w) && extra <= 1
}

/// A part larger than its whole: for numeric column pairs where one stays
/// at or below the other in ≥ 95% of rows (and strictly below in most) and
/// the names relate them, the rows where it does not.
fn impossible(s: &Shape) -> Result<Vec<Finding>, String> {
    let pairs: Vec<(&str, &str)> =
        s.numeric.iter().enumerate().flat_map(|(i, a)| s.numeric[i + 1..].iter().map(move |b| (*a, *b))).collect();
    if pairs.is_empty() || s.rows < 20 {
        return Ok(Vec::new());
    }
    let mut exprs = Vec::new();
    for (a, b) in &pairs {
        let (qa, qb) = (q(a), q(b));
        exprs.push(format!("sum(CASE WHEN {qa} > {qb} THEN 1 ELSE 0 END)"));
        exprs.push(format!("sum(CASE WHEN {qa} < {qb} THEN 1 ELSE 0 END)"));
        exprs.push(format!("sum(CASE WHEN {qa} IS NOT NULL AND {qb} IS NOT NULL THEN 1 ELSE 0 END)"));
    }
    let t = s.query(&format!("SELECT {} FROM {}", exprs.join(", "), q(s.table)))?;
    let mut out = Vec::new();
    for (k, (a, b)) in pairs.iter().enumerate() {
        let (gt, lt, n) = (int(&t, 0, 3 * k), int(&t, 0, 3 * k + 1), int(&t, 0, 3 * k + 2));
        for (part, whole, bad, below) in [(*a, *b, gt, lt), (*b, *a, lt, gt)] {
            let holds = n - bad;
            if n >= 20 && bad > 0 && holds * 100 >= n * 95 && below * 2 >= n && named_part_of(part, whole) {
                out.push(part_over_whole(s, part, whole, bad, holds, n)?);
            }
        }
    }
    Ok(out)
}

fn part_over_whole(s: &Shape, part: &str, whole: &str, bad: i64, holds: i64, n: i64) -> Result<Finding, String> {
    let mut cols: Vec<&str> = s.locators.iter().copied().filter(|c| *c != part && *c != whole).collect();
    cols.extend([part, whole]);
    let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {} > {} ORDER BY {} - {} DESC LIMIT {SHOWN}",
        list.join(", "),
        q(s.table),
        q(part),
        q(whole),
        q(part),
        q(whole)
    );
    let t = s.query(&sql)?;
    let example = if t.rows.is_empty() {
        String::new()
    } else {
        let (ip, iw) = (cols.len() - 2, cols.len() - 1);
        format!(
            ": e.g. {} ({part} {}, {whole} {})",
            place(&t, 0, &s.locators),
            human(&t.rows[0][ip], ""),
            human(&t.rows[0][iw], "")
        )
    };
    let pct = 100.0 * holds as f64 / n as f64;
    let text = format!(
        "{bad} row{} {} {part} greater than {whole}, which it stays within in {pct:.1}% of rows{example}.",
        if bad == 1 { "" } else { "s" },
        if bad == 1 { "has" } else { "have" }
    );
    let mut f = finding(InsightKind::ImpossibleValues, bad as f64, text, &[part, whole], sql, t);
    f.chart = f.result.as_ref().and_then(|t| chart_of(t, "scatter", whole, Some(part)));
    Ok(f)
}

/// Rows that appear more than once, every column equal.
fn duplicates(s: &Shape) -> Result<Vec<Finding>, String> {
    if s.all.is_empty() || s.all.len() > 200 {
        return Err("too many columns to compare whole rows".into());
    }
    let list: Vec<String> = s.all.iter().map(|c| q(c)).collect();
    let grouped = format!(
        "SELECT {}, count(*) AS copies FROM {} GROUP BY {} HAVING count(*) > 1",
        list.join(", "),
        q(s.table),
        list.join(", ")
    );
    let totals = s.query(&format!("SELECT count(*) AS n, sum(copies - 1) AS extra FROM ({grouped}) AS d"))?;
    let (n, extra) = (int(&totals, 0, 0), int(&totals, 0, 1));
    if n == 0 {
        return Ok(Vec::new());
    }
    let sql = format!("{grouped} ORDER BY copies DESC LIMIT {SHOWN}");
    let t = s.query(&sql)?;
    let text = format!(
        "{n} row{} appear{} more than once ({extra} extra cop{}): e.g. {}.",
        if n == 1 { "" } else { "s" },
        if n == 1 { "s" } else { "" },
        if extra == 1 { "y" } else { "ies" },
        place(&t, 0, &s.locators)
    );
    Ok(vec![finding(InsightKind::DuplicateRows, extra as f64, text, &[], sql, t)])
}

/// The coarsest text column that, with the period, identifies ≥ 95% of rows.
fn entity<'a>(s: &Shape<'a>, period: &str) -> Result<Option<&'a str>, String> {
    let mut candidates: Vec<(&str, u64)> = s.text.iter().copied().filter(|(_, d)| *d >= 2).collect();
    candidates.sort_by_key(|(_, d)| *d);
    for (e, _) in candidates.into_iter().take(6) {
        let sql =
            format!("SELECT count(*) AS n FROM (SELECT DISTINCT {}, {} FROM {}) AS k", q(e), q(period), q(s.table));
        let pairs = int(&s.query(&sql)?, 0, 0) as u64;
        if pairs * 100 >= s.rows * 95 {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Entity-periods with no row, where entities report once per period.
fn missing_periods(s: &Shape) -> Result<Vec<Finding>, String> {
    let Some(p) = s.period else { return Err("no date column".into()) };
    let Some(e) = entity(s, p)? else { return Err("no column that, with the period, identifies the rows".into()) };
    let (qe, qp, qt) = (q(e), q(p), q(s.table));
    let missing = format!(
        "SELECT e.{qe}, p.{qp} FROM (SELECT DISTINCT {qe} FROM {qt} WHERE {qe} IS NOT NULL) AS e \
         CROSS JOIN (SELECT DISTINCT {qp} FROM {qt} WHERE {qp} IS NOT NULL) AS p \
         EXCEPT SELECT {qe}, {qp} FROM {qt}"
    );
    let sizes = s.query(&format!(
        "SELECT (SELECT count(DISTINCT {qe}) FROM {qt}) AS entities, (SELECT count(DISTINCT {qp}) FROM {qt}) AS periods, \
         (SELECT count(*) FROM ({missing}) AS m) AS missing"
    ))?;
    let (entities, periods, n) = (int(&sizes, 0, 0), int(&sizes, 0, 1), int(&sizes, 0, 2));
    if n == 0 || periods < 3 || n * 2 > entities * periods {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT * FROM ({missing}) AS missing ORDER BY 1, 2 LIMIT {SHOWN}");
    let t = s.query(&sql)?;
    let text = format!(
        "{n} {e}-{p} report{} missing ({entities} {e} values × {periods} {p} values expected): e.g. {} has no row for {}.",
        if n == 1 { " is" } else { "s are" },
        human(&t.rows[0][0], ""),
        period_text(&t.rows[0][1])
    );
    Ok(vec![finding(InsightKind::MissingPeriods, n as f64, text, &[e, p], sql, t)])
}

/// The text column values are compared within: 2–50 groups of ≥ 10 rows each.
fn group_column<'a>(s: &Shape<'a>) -> Option<&'a str> {
    s.text.iter().filter(|(_, d)| (2..=50).contains(d) && s.rows / d >= 10).min_by_key(|(_, d)| *d).map(|(n, _)| *n)
}

/// Robust z-score above which a value is an outlier.
const OUTLIER_Z: f64 = 6.0;

/// Values far from their group's median, in median absolute deviations.
fn outliers(s: &Shape) -> Result<Vec<Finding>, String> {
    let g = group_column(s);
    let key = match g {
        Some(g) => format!("coalesce(CAST({} AS VARCHAR), '')", q(g)),
        None => "''".to_string(),
    };
    let mut out = Vec::new();
    for x in &s.numeric {
        let qx = q(x);
        let shown: Vec<String> = s.locators.iter().filter(|c| *c != x).map(|c| format!("t.{}", q(c))).collect();
        let sql = format!(
            "WITH t AS (SELECT *, {key} AS grp FROM {qt}), \
             m AS (SELECT grp, median({qx}) AS med FROM t GROUP BY grp), \
             d AS (SELECT t.grp, median(abs(t.{qx} - m.med)) AS mad FROM t JOIN m ON t.grp = m.grp GROUP BY t.grp) \
             SELECT {}t.{qx}, m.med AS group_median, abs(t.{qx} - m.med) / (1.4826 * d.mad) AS robust_z \
             FROM t JOIN m ON t.grp = m.grp JOIN d ON t.grp = d.grp \
             WHERE d.mad > 0 AND abs(t.{qx} - m.med) / (1.4826 * d.mad) > {OUTLIER_Z} ORDER BY robust_z DESC LIMIT {SHOWN}",
            shown.iter().map(|c| format!("{c}, ")).collect::<String>(),
            qt = q(s.table)
        );
        let t = s.query(&sql)?;
        if t.rows.is_empty() {
            continue;
        }
        let xi = shown.len();
        let z = num(&t.rows[0][xi + 2]).unwrap_or(0.0);
        let within = g.map(|g| format!(" among rows of the same {g}")).unwrap_or_default();
        let text = format!(
            "{} outlier{} in {x}: {} has {}, where the median{within} is {} (robust z {z:.0}).",
            t.rows.len(),
            if t.rows.len() == 1 { "" } else { "s" },
            place(&t, 0, &s.locators),
            human(&t.rows[0][xi], ""),
            human(&t.rows[0][xi + 1], "")
        );
        let mut cols = vec![*x];
        cols.extend(g);
        out.push(finding(InsightKind::Outliers, z.min(99.0), text, &cols, sql, t));
    }
    Ok(out)
}

/// A period value as written (a year stays 2024, not 2,024).
fn period_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A column of rates, shares or averages, by its name.
fn is_rate(name: &str) -> bool {
    tokens(&name.to_lowercase())
        .iter()
        .any(|t| ["pct", "percent", "rate", "ratio", "share", "avg", "mean", "average", "per"].contains(t))
}

/// One column's change that stands out: where, how much, the series.
struct Jump<'a> {
    column: &'a str,
    at: usize,
    change: f64,
    usual: f64,
    series: Table,
}

/// The largest period-to-period change of `x`'s total, if far beyond its usual change.
fn jump<'a>(s: &Shape, p: &str, x: &'a str) -> Result<Option<(Jump<'a>, String)>, String> {
    let sql = format!(
        "SELECT {qp}, sum({qx}) AS total FROM {} GROUP BY {qp} ORDER BY {qp}",
        q(s.table),
        qp = q(p),
        qx = q(x)
    );
    let t = s.query(&sql)?;
    let series: Vec<f64> = t.rows.iter().map(|r| num(&r[1]).unwrap_or(0.0)).collect();
    if series.len() < 4 || series.len() > 500 {
        return Ok(None);
    }
    let changes: Vec<f64> =
        series.windows(2).map(|w| if w[0] == 0.0 { 0.0 } else { (w[1] - w[0]) / w[0].abs() }).collect();
    let mut sorted: Vec<f64> = changes.iter().map(|c| c.abs()).collect();
    sorted.sort_by(f64::total_cmp);
    let usual = sorted[sorted.len() / 2];
    let Some((at, change)) = changes.iter().copied().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())) else {
        return Ok(None);
    };
    if change.abs() < 0.5 || change.abs() < 3.0 * usual {
        return Ok(None);
    }
    Ok(Some((Jump { column: x, at, change, usual, series: t }, sql)))
}

/// Period-to-period changes of column totals far beyond their usual change:
/// one finding per change of period, naming every column that jumped there.
fn sudden_changes(s: &Shape) -> Result<Vec<Finding>, String> {
    let Some(p) = s.period else { return Err("no date column".into()) };
    let periods = int(&s.query(&format!("SELECT count(DISTINCT {}) AS n FROM {}", q(p), q(s.table)))?, 0, 0) as u64;
    if periods > 120 || s.rows < 2 * periods {
        return Err(format!("{p} is not a reporting period (rows are not grouped by it)"));
    }
    let mut jumps = Vec::new();
    // Totals of rates and shares mean nothing; counts and amounts are summed.
    for x in s.numeric.iter().filter(|x| !is_rate(x)) {
        jumps.extend(jump(s, p, x)?);
    }
    let mut at: Vec<usize> = jumps.iter().map(|(j, _)| j.at).collect();
    at.sort();
    at.dedup();
    let mut out = Vec::new();
    for i in at {
        let mut here: Vec<&(Jump, String)> = jumps.iter().filter(|(j, _)| j.at == i).collect();
        here.sort_by(|a, b| b.0.change.abs().total_cmp(&a.0.change.abs()));
        let (top, sql) = here[0];
        let t = &top.series;
        let (from, to) = (period_text(&t.rows[i][0]), period_text(&t.rows[i + 1][0]));
        let verb = |c: f64| if c > 0.0 { "rose" } else { "fell" };
        let mut text = format!(
            "The total of {} {} {:.0}% from {from} to {to} ({} → {}); it usually changes by {:.0}% a period.",
            top.column,
            verb(top.change),
            100.0 * top.change.abs(),
            human(&t.rows[i][1], ""),
            human(&t.rows[i + 1][1], ""),
            100.0 * top.usual
        );
        if here.len() > 1 {
            let others: Vec<String> = here[1..]
                .iter()
                .map(|(j, _)| format!("{} {} {:.0}%", j.column, verb(j.change), 100.0 * j.change.abs()))
                .collect();
            text.push_str(&format!(" Also at that change: {}.", others.join(", ")));
        }
        let cols: Vec<&str> = here.iter().map(|(j, _)| j.column).chain([p]).collect();
        let mut f =
            finding(InsightKind::SuddenChange, 10.0 * top.change.abs().min(9.0), text, &cols, sql.clone(), t.clone());
        f.chart = chart_of(t, "line", p, Some("total"));
        out.push(f);
    }
    Ok(out)
}

/// Two values that differ by one letter (not a digit) or only in case and
/// punctuation, in a text column of a few hundred values at most.
fn spelling(s: &Shape) -> Result<Vec<Finding>, String> {
    let mut out = Vec::new();
    // A query per column: the first columns of a very wide table only.
    for (c, distinct) in s.text.iter().take(MAX_TEXT) {
        if *distinct > 300 {
            continue;
        }
        let qc = q(c);
        let t =
            s.query(&format!("SELECT {qc} AS v, count(*) AS n FROM {} WHERE {qc} IS NOT NULL GROUP BY 1", q(s.table)))?;
        let values: Vec<(String, i64)> =
            t.rows.iter().filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_i64()?))).collect();
        let mut pairs = Vec::new();
        for (i, (a, na)) in values.iter().enumerate() {
            for (b, nb) in &values[i + 1..] {
                if variants(a, b) {
                    pairs.push(if na >= nb { (a, *na, b, *nb) } else { (b, *nb, a, *na) });
                }
            }
        }
        if pairs.is_empty() {
            continue;
        }
        let listed: Vec<String> =
            pairs.iter().take(5).map(|(a, na, b, nb)| format!("'{b}' ({nb}) beside '{a}' ({na})")).collect();
        let mut named: Vec<String> = pairs.iter().flat_map(|(a, _, b, _)| [a.to_string(), b.to_string()]).collect();
        named.dedup();
        let lits: Vec<String> = named.iter().take(40).map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
        let sql = format!(
            "SELECT {qc}, count(*) AS n FROM {} WHERE {qc} IN ({}) GROUP BY 1 ORDER BY 1",
            q(s.table),
            lits.join(", ")
        );
        let shown = s.query(&sql)?;
        let text = format!(
            "{} value{} of {c} look{} like another spelling: {}.",
            pairs.len(),
            if pairs.len() == 1 { "" } else { "s" },
            if pairs.len() == 1 { "s" } else { "" },
            listed.join("; ")
        );
        out.push(finding(InsightKind::SpellingVariants, pairs.len() as f64, text, &[c], sql, shown));
    }
    Ok(out)
}

/// Whether two distinct values read as spellings of one: equal but for case,
/// spaces and punctuation, or one letter apart (five letters or more, the
/// difference not a digit: "Ward 1" and "Ward 2" are two wards).
pub(crate) fn variants(a: &str, b: &str) -> bool {
    let fold = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    let (fa, fb) = (fold(a), fold(b));
    if fa == fb {
        return !fa.is_empty();
    }
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    if fa.chars().count() < 5 || fb.chars().count() < 5 || digits(&fa) != digits(&fb) {
        return false;
    }
    strsim::damerau_levenshtein(&fa, &fb) == 1
}

/// Columns that are nearly all empty, or nearly all one value, from the profile.
pub(super) fn column_health(entry: &TableEntry) -> Vec<Finding> {
    let rows = entry.rows;
    if rows < 10 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for c in &entry.stats.columns {
        let qc = q(&c.name);
        let sql = format!("SELECT {qc}, count(*) AS n FROM {} GROUP BY 1 ORDER BY 2 DESC LIMIT 10", q(&entry.name));
        let filled = rows - c.nulls;
        let top = c.top.first().map(|(_, n)| *n).unwrap_or(0);
        let pct = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
        let (kind, text) = if c.nulls * 100 >= rows * 80 {
            (
                InsightKind::MostlyEmpty,
                format!("{} is empty in {} of {rows} rows ({:.0}%).", c.name, c.nulls, pct(c.nulls, rows)),
            )
        } else if c.nulls == 0 && c.distinct == 1 && c.distinct_exact {
            (InsightKind::NearConstant, format!("{} holds one value in all {rows} rows.", c.name))
        } else if c.dtype == ColumnType::Text && filled > 0 && top * 100 >= filled * 99 && c.distinct > 1 {
            (
                InsightKind::NearConstant,
                format!("{} holds one value in {:.1}% of its {filled} filled rows.", c.name, pct(top, filled)),
            )
        } else {
            continue;
        };
        out.push(Finding {
            kind,
            score: pct(c.nulls.max(top), rows) / 10.0,
            text,
            columns: vec![c.name.clone()],
            sql,
            result: None,
            chart: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_variants_are_one_letter_or_case_apart_but_not_numbered_places() {
        assert!(variants("Kano Municipal", "kano-municipal"));
        assert!(variants("Surulere", "Surulre"));
        assert!(!variants("PHC Dala 1", "PHC Dala 2"));
        assert!(!variants("Dala", "Dale"), "short names are too close to tell");
        assert!(!variants("Ikeja", "Okrika"));
    }

    #[test]
    fn names_relate_parts_and_wholes() {
        assert!(named_part_of("positive", "tested"));
        assert!(named_part_of("tested_positive_rdt_ge5yrs", "tested_malaria_rdt_ge5yrs"));
        assert!(named_part_of("tested_positive_malaria_rdt_ge5yrs", "presenting_fever_tested_rdt_ge5yrs"));
        assert!(!named_part_of("rainfall_mm", "max_temp_c"));
        assert!(!named_part_of("tested_rdt_lt5yrs", "tested_rdt_ge5yrs"), "two age groups are no part and whole");
        assert!(!named_part_of("tested_positive_malaria_rdt_lt5yrs", "presenting_fever_tested_rdt_ge5yrs"));
        assert!(!named_part_of("tested_positive_malaria_rdt_preg_women", "microscopy_tested"));
        assert!(!named_part_of("presenting_fever_tested_rdt_preg_women", "tested_positive_malaria_rdt_ge5yrs"));
    }
}
