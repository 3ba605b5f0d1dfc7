//! Narratives with slots: where the model never sees values (`strict`,
//! `sample`) it writes the answer with references into the result —
//! `{positives}` (a one-row result), `{row 2 state}`, `{max tpr_pct}`,
//! `{sum tested}`, `{rows}` — and Quarry checks each against the result's
//! columns and fills it locally, formatted for people. An invalid
//! reference is sent back like a failed query; its message names columns,
//! never values. Braces that hold anything but a reference stay as written.

use serde_json::Value;

use crate::answer::Table;
use crate::policy::{Policy, View};

/// What a filled narrative came to: the text, and how many slots it had.
pub struct Filled {
    pub text: String,
    pub slots: usize,
}

const AGGREGATES: [&str; 5] = ["max", "min", "sum", "avg", "count"];

/// The model's final answer, checked: a repair when no step ran behind it
/// (`ran` false) or a slot is wrong, else the text with its slots filled.
pub fn check_answer(text: &str, ran: bool, table: Option<&Table>) -> Result<Filled, String> {
    if !ran {
        return Err(crate::prompt::NO_STEP.into());
    }
    fill(text, table)
}

/// Fill every slot of `text` from `table`, or say what is wrong with the first bad one.
pub fn fill(text: &str, table: Option<&Table>) -> Result<Filled, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut slots = 0;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        let inner = &rest[open + 1..open + len];
        out.push_str(&rest[..open]);
        if is_reference(inner) {
            let t = table
                .ok_or_else(|| format!("{{{inner}}}: there is no result to fill it from; run the query first."))?;
            out.push_str(&resolve_slot(inner.trim(), t)?);
            slots += 1;
        } else {
            out.push_str(&rest[open..=open + len]);
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    Ok(Filled { text: out, slots })
}

/// Words of letters, digits and underscores: what a reference is made of.
fn is_reference(inner: &str) -> bool {
    let t = inner.trim();
    let words = t.split_whitespace().count();
    !t.is_empty()
        && t.len() <= 120
        && (words <= 3 || (words == 4 && t.starts_with("exact ")))
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
}

/// How a filled value is written: for people, or exactly as the result holds it.
type Format = fn(&Value, &str) -> String;

/// A value as the result holds it: no separators, no rounding, no `%` —
/// for answers whose format the question fixes (`@mean[34.65]`).
fn exact(v: &Value, _column: &str) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `{exact …}` writes the value as the result holds it; anything else for people.
fn resolve_slot(r: &str, t: &Table) -> Result<String, String> {
    match r.strip_prefix("exact ") {
        Some(rest) => resolve(rest.trim(), t, exact),
        None => resolve(r, t, human),
    }
}

fn resolve(r: &str, t: &Table, human: Format) -> Result<String, String> {
    let words: Vec<&str> = r.split_whitespace().collect();
    let col = |name: &str| -> Result<usize, String> {
        t.columns.iter().position(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            format!("{{{r}}}: the result has no column '{name}'; its columns are {}.", names.join(", "))
        })
    };
    match words.as_slice() {
        ["rows"] => Ok(human(&Value::from(t.rows.len()), "")),
        ["row", n, name] => {
            let i = col(name)?;
            let k: usize = n.parse().map_err(|_| format!("{{{r}}}: write the row as a number from 1, e.g. {{row 1 {name}}}."))?;
            let row = k.checked_sub(1).and_then(|k| t.rows.get(k)).ok_or_else(|| {
                format!("{{{r}}}: the result has {} rows; rows are numbered from 1.", t.rows.len())
            })?;
            Ok(human(&row[i], name))
        }
        [agg, name] if AGGREGATES.contains(agg) => aggregate(agg, col(name)?, name, t, human).ok_or_else(|| {
            format!("{{{r}}}: column '{name}' has no numbers to take the {agg} of.")
        }),
        [name] => {
            let i = col(name)?;
            match t.rows.as_slice() {
                [row] => Ok(human(&row[i], name)),
                rows => Err(format!(
                    "{{{r}}}: a bare column needs a one-row result, and this one has {} rows: use {{row 1 {name}}}, {{max {name}}}, {{min {name}}}, {{sum {name}}} or {{avg {name}}}.",
                    rows.len()
                )),
            }
        }
        _ => Err(format!(
            "{{{r}}}: not a reference Quarry knows. Use {{column}} (one-row result), {{row N column}}, {{max column}}, {{min column}}, {{sum column}}, {{avg column}}, {{count column}} or {{rows}}."
        )),
    }
}

fn aggregate(agg: &str, i: usize, name: &str, t: &Table, human: Format) -> Option<String> {
    let nums: Vec<f64> = t.rows.iter().filter_map(|r| r[i].as_f64()).collect();
    let int = |n: i64| human(&Value::from(n), "");
    if agg == "count" {
        return Some(int(t.rows.iter().filter(|r| !r[i].is_null()).count() as i64));
    }
    let v = match agg {
        "max" => nums.iter().copied().reduce(f64::max)?,
        "min" => nums.iter().copied().reduce(f64::min)?,
        "sum" => nums.iter().sum(),
        _ => (!nums.is_empty()).then(|| nums.iter().sum::<f64>() / nums.len() as f64)?,
    };
    let integral = t.rows.iter().all(|r| r[i].is_i64() || r[i].is_null()) && agg != "avg";
    Some(if integral { int(v as i64) } else { human(&serde_json::json!(v), name) })
}

/// Every run of digits in `s`, inside words too (`ge5yrs` holds 5).
fn digit_runs(s: &str) -> Vec<f64> {
    s.split(|c: char| !c.is_ascii_digit()).filter(|d| !d.is_empty()).filter_map(|d| d.parse().ok()).collect()
}

/// Numbers the model wrote (in `full` mode, where it reads results) that
/// neither the result, the question nor the code that ran holds, to the
/// precision written (`53.9` matches 53.879; `49,750` matches 49750): they
/// did not come from code, and the answer says so. (Numbers in the code and
/// the result's column names count: "aged 5 and over" over `…_ge5yrs`.)
pub fn unsupported_numbers(text: &str, table: Option<&Table>, question: &str, code: &str) -> Vec<String> {
    // Slots are filled from the data; what they hold is no claim of the model's.
    let text = &without_slots(text);
    let mut known: Vec<f64> = numbers_in(question).into_iter().map(|(v, _)| v).collect();
    known.extend(digit_runs(code));
    if let Some(t) = table {
        known.push(t.rows.len() as f64);
        for c in &t.columns {
            known.extend(digit_runs(&c.name));
        }
        for row in &t.rows {
            for v in row {
                match v {
                    Value::Number(n) => known.extend(n.as_f64()),
                    Value::String(s) => known.extend(numbers_in(s).into_iter().map(|(v, _)| v)),
                    _ => {}
                }
            }
        }
    }
    numbers_in(text)
        .into_iter()
        .filter(|(v, written)| {
            let decimals = written.split_once('.').map_or(0, |(_, f)| f.trim_end_matches('%').len()) as i32;
            let tolerance = 0.5 * 10f64.powi(-decimals) + 1e-9;
            // 45% may stand for 0.45 in the result.
            !known
                .iter()
                .any(|k| (k - v).abs() <= tolerance || (written.ends_with('%') && (k * 100.0 - v).abs() <= tolerance))
        })
        .map(|(_, w)| w)
        .collect()
}

/// Numbers in the model's answer that no result or the question holds:
/// flagged where the model reads results (`full`), taken out where it
/// cannot have seen them (its slots carry the numbers there).
/// (`written` is the model's text, `text` the same with its slots filled.)
pub fn vet_numbers(
    policy: Policy,
    written: &str,
    text: &str,
    table: Option<&Table>,
    question: &str,
    code: &str,
) -> String {
    let odd = unsupported_numbers(written, table, question, code);
    if odd.is_empty() {
        return text.to_string();
    }
    if policy.shows(View::ResultRows) {
        let (these, list) =
            if odd.len() == 1 { ("this number", odd[0].clone()) } else { ("these numbers", odd.join(", ")) };
        return format!("{text}\n\n(Not from the data: {list} — no result Quarry ran holds {these}.)");
    }
    // Taken out of the model's own words, never out of a filled value.
    let mut out = written.to_string();
    for n in &odd {
        out = strike(&out, n);
    }
    fill(&out, table).map(|f| f.text).unwrap_or_else(|_| text.to_string())
}

/// `text` with the first standalone `number` outside slot references replaced by a marker.
fn strike(text: &str, number: &str) -> String {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let is_num = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b',';
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && text[i..].starts_with(number) => {
                let before = i == 0 || !is_num(b[i - 1]) || (b[i - 1] == b'-' && number.starts_with('-'));
                let end = i + number.len();
                let after = end >= b.len()
                    || !(b[end].is_ascii_alphanumeric() || b[end] == b'_')
                    || ((b[end] == b'.' || b[end] == b',') && !b.get(end + 1).is_some_and(u8::is_ascii_digit));
                if before && after {
                    return format!("{}[a number not from the data]{}", &text[..i], &text[end..]);
                }
            }
            _ => {}
        }
    }
    text.to_string()
}

/// The text with its slot references taken out.
fn without_slots(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        out.push_str(&rest[..open]);
        if !is_reference(&rest[open + 1..open + len]) {
            out.push_str(&rest[open..=open + len]);
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    out
}

/// Numbers written in text, with how they were written: `1,204`, `53.9%`, `-3`.
fn numbers_in(text: &str) -> Vec<(f64, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_digit()
                || ((b[j] == b',' || b[j] == b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit)))
        {
            j += 1;
        }
        let pct = b.get(j) == Some(&b'%');
        let written = &text[start..j + usize::from(pct)];
        if let Ok(v) = text[start..j].replace(',', "").parse::<f64>() {
            out.push((v, written.to_string()));
        }
        i = j + 1;
    }
    out
}

/// A value for people: thousands separators, sensible rounding, `%` for
/// percent columns (named `…pct`, `…percent`).
pub fn human(v: &Value, column: &str) -> String {
    let pct = column.ends_with("pct") || column.contains("percent");
    match v {
        Value::Null => "no value".into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => format!("{}{}", human_int(i), if pct { "%" } else { "" }),
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let decimals = if pct || f.abs() >= 100.0 { 1 } else { 2 };
                let s = format!("{f:.decimals$}");
                let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
                let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
                let int = int.parse::<i64>().map(human_int).unwrap_or_else(|_| int.to_string());
                format!("{int}{}{}", frac.map(|f| format!(".{f}")).unwrap_or_default(), if pct { "%" } else { "" })
            }
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn human_int(i: i64) -> String {
    let digits = i.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if i < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Column;
    use quarry_types::ColumnType;
    use serde_json::json;

    fn table() -> Table {
        Table {
            columns: vec![
                Column::new("state", ColumnType::Text),
                Column::new("positives", ColumnType::Integer),
                Column::new("tested", ColumnType::Integer),
                Column::new("tpr_pct", ColumnType::Float),
            ],
            rows: vec![
                vec![json!("Kano"), json!(49750), json!(92336), json!(53.879)],
                vec![json!("Lagos"), json!(1200), json!(4000), json!(30.0)],
            ],
            truncated: false,
        }
    }

    #[test]
    fn slots_are_filled_for_people() {
        let f = fill("{row 1 state}: {row 1 tpr_pct} ({row 1 positives} of {row 1 tested}); {rows} states, {sum positives} in all, highest {max tpr_pct}.", Some(&table())).unwrap();
        assert_eq!(f.text, "Kano: 53.9% (49,750 of 92,336); 2 states, 50,950 in all, highest 53.9%.");
        assert_eq!(f.slots, 7);
        let one = Table { rows: vec![table().rows[0].clone()], ..table() };
        assert_eq!(fill("TPR {tpr_pct}", Some(&one)).unwrap().text, "TPR 53.9%");
        assert_eq!(fill("a {b: 1} and {} stay", None).unwrap().text, "a {b: 1} and {} stay");
        let exact = fill("@tpr[{exact row 1 tpr_pct}] @n[{exact sum positives}] @r[{exact rows}]", Some(&table()));
        assert_eq!(exact.unwrap().text, "@tpr[53.879] @n[50950] @r[2]", "as the result holds it");
    }

    #[test]
    fn numbers_not_from_the_data_are_found() {
        let t = table();
        let text = "Kano had 49,750 positives of 92,336 tested (53.9%), 2 states; Oyo had 42.";
        assert_eq!(unsupported_numbers(text, Some(&t), "TPR by state", ""), ["42"]);
        assert_eq!(unsupported_numbers("In 2024, 53.88% in Kano", Some(&t), "TPR for 2024", ""), Vec::<String>::new());
        assert_eq!(unsupported_numbers("There are 42 LGAs.", None, "How many LGAs?", ""), ["42"]);
        assert!(
            unsupported_numbers("tested_lt5yrs and Q2", Some(&t), "q", "").is_empty(),
            "digits inside names are no numbers"
        );
        assert!(
            unsupported_numbers("{sum positives} in all, {row 2 state}", Some(&t), "q", "").is_empty(),
            "slots are filled from the data"
        );
        let strict = Policy::new(crate::Privacy::Strict);
        let one = Table { rows: vec![vec![json!("Kano"), json!(7535), json!(92336), json!(53.879)]], ..t.clone() };
        let vetted = vet_numbers(
            strict,
            "{positives} aged 5 and over, in 3 wards.",
            "7,535 aged 5 and over, in 3 wards.",
            Some(&one),
            "q",
            "SELECT sum(p_ge5yrs) AS positives",
        );
        assert_eq!(
            vetted, "7,535 aged 5 and over, in [a number not from the data] wards.",
            "never out of a filled value"
        );
    }

    #[test]
    fn bad_slots_say_what_to_write_without_values() {
        let e = fill("{nope}", Some(&table())).err().unwrap();
        assert!(
            e.contains("no column 'nope'") && e.contains("state, positives, tested, tpr_pct") && !e.contains("Kano")
        );
        let e = fill("{positives}", Some(&table())).err().unwrap();
        assert!(e.contains("has 2 rows") && e.contains("{row 1 positives}"), "{e}");
        assert!(fill("{row 3 state}", Some(&table())).err().unwrap().contains("has 2 rows"));
        assert!(fill("{max state}", Some(&table())).err().unwrap().contains("no numbers"));
        assert!(fill("{positives}", None).err().unwrap().contains("no result"));
    }
}
