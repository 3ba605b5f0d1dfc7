//! What the model is told about the data: per table its name, labels, types,
//! rows, per-column statistics and the ingest notes that matter — values only
//! where the privacy mode allows — within a token budget. Wide tables and
//! many tables are cut by relevance to the question, not blindly.
//!
//! Everything here comes from the user's files and is untrusted: it is put
//! in the prompt only inside `<data>` blocks, and sequences that could close
//! such a block are neutralised.

use std::collections::HashMap;
use std::fmt::Write;

use quarry_ingest::catalog::TableEntry;
use quarry_ingest::stats::ColumnStats;
use quarry_ingest::table::ColumnType;

use crate::policy::{Policy, View};
pub use crate::quote::data_str;
use crate::words::words;
use crate::Privacy;

/// Rough tokens of a text (4 characters a token).
pub fn approx_tokens(s: &str) -> usize {
    s.chars().count().div_ceil(4)
}

/// The schema context for one question.
#[derive(Debug, Clone)]
pub struct Context {
    pub text: String,
    pub tables: Vec<String>,
    pub columns: usize,
    pub omitted_columns: usize,
    pub approx_tokens: usize,
}

fn column_score(c: &ColumnStats, qwords: &[String]) -> usize {
    let hay = format!("{} {}", c.name, c.label).to_lowercase();
    let values = c.top.iter().map(|(v, _)| v.to_lowercase()).collect::<Vec<_>>().join(" ");
    qwords.iter().map(|w| if hay.contains(w.as_str()) { 3 } else { usize::from(values.contains(w.as_str())) }).sum()
}

fn is_dimension(c: &ColumnStats) -> bool {
    matches!(c.dtype, ColumnType::Text | ColumnType::Date | ColumnType::DateTime) && c.distinct <= 200
}

fn fmt_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => data_str(s, 40),
        other => data_str(&other.to_string(), 40),
    }
}

fn column_line(c: &ColumnStats, privacy: Privacy, rows: u64) -> String {
    let mut s = format!("- {} ({})", c.name, c.dtype.as_str());
    if quarry_ingest::names::base_name(&c.label) != c.name {
        let _ = write!(s, " label \"{}\"", data_str(&c.label, 80));
    }
    if c.nulls > 0 {
        let _ = write!(s, "; {} nulls", c.nulls);
    }
    if c.nulls < rows {
        let _ = write!(s, "; {}{} distinct", c.distinct, if c.distinct_exact { "" } else { "+" });
    }
    if Policy::new(privacy).shows(View::ColumnValues) {
        if let (Some(lo), Some(hi)) = (&c.min, &c.max) {
            let _ = write!(s, "; range {} … {}", fmt_value(lo), fmt_value(hi));
        }
        if let Some(m) = c.mean {
            let _ = write!(s, "; mean {m}");
        }
        if !c.top.is_empty() && c.dtype == ColumnType::Text {
            let top: Vec<String> =
                c.top.iter().take(8).map(|(v, n)| format!("\"{}\" ({n})", data_str(v, 40))).collect();
            let _ = write!(s, "; top: {}", top.join(", "));
        }
    }
    s
}

/// Most names in the line for the tables left out (a database may have thousands).
const MAX_NAMED: usize = 60;

/// More tables than this, and only those related to the question are described.
const MANY_TABLES: usize = 40;

/// Build the context for `question` over `entries`, within `budget` tokens.
/// `samples` holds a few rows per table (used in `sample` and `full` modes).
pub fn build(
    entries: &[TableEntry],
    samples: &HashMap<String, (Vec<String>, Vec<Vec<String>>)>,
    question: &str,
    privacy: Privacy,
    budget: usize,
) -> Context {
    let qwords = words(question);
    // Tables most related to the question first.
    let mut order: Vec<(usize, &TableEntry)> = entries
        .iter()
        .map(|t| {
            let name_hit = qwords.iter().filter(|w| t.name.to_lowercase().contains(w.as_str())).count() * 5;
            let cols: usize = t.stats.columns.iter().map(|c| column_score(c, &qwords)).sum();
            (name_hit + cols, t)
        })
        .collect();
    // Relevance decides what fits the budget; the text lists what fits in
    // name order, the same for every question (stable prompts cache well).
    order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let copies = copies(entries);
    let per_table = (budget / entries.len().max(1)).max(600);
    let (mut used, mut blocks, mut left_out) = (0, Vec::new(), Vec::new());
    let (mut columns, mut omitted) = (0, 0);
    // Among many tables (a database's), those the question does not touch
    // are named, not described — when it touches any.
    let only_related = entries.len() > MANY_TABLES && order.first().is_some_and(|(s, _)| *s > 0);
    for (i, (score, t)) in order.iter().enumerate() {
        if i > 0 && used + 200 > budget || only_related && *score == 0 {
            left_out.extend(order[i..].iter().map(|(_, t)| t.name.clone()));
            break;
        }
        let room = per_table.max(budget.saturating_sub(used) / (order.len() - i));
        let (mut block, shown, left) = table_block(t, samples.get(&t.name), &qwords, privacy, room);
        if shown == 0 && left > 0 {
            // No room for a single column: a name is all it would say.
            left_out.push(t.name.clone());
            continue;
        }
        if let Some(of) = copies.get(t.name.as_str()) {
            let line =
                format!("(same rows and columns as table {of}: a copy, e.g. one workbook saved twice; use either)\n");
            block.insert_str(block.find('\n').map_or(0, |i| i + 1), &line);
        }
        used += approx_tokens(&block);
        blocks.push((t.name.clone(), block));
        columns += shown;
        omitted += left;
    }
    blocks.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text: String = blocks.iter().map(|b| b.1.as_str()).collect();
    if !left_out.is_empty() {
        left_out.sort();
        let n = left_out.len();
        let named = left_out.iter().take(MAX_NAMED).cloned().collect::<Vec<_>>().join(", ");
        let rest = if n > MAX_NAMED {
            format!(" and {} more (information_schema.tables lists all)", n - MAX_NAMED)
        } else {
            String::new()
        };
        let _ = writeln!(text, "(+ {n} more table(s) not shown: {named}{rest})");
    }
    let tables = blocks.into_iter().map(|b| b.0).collect();
    let approx = approx_tokens(&text);
    Context { text, tables, columns, omitted_columns: omitted, approx_tokens: approx }
}

/// Tables whose rows and columns are the same as an earlier table's (by
/// their profile: rows, and per column type, nulls, distinct, min, max,
/// sum — names aside, as an .xls and an .xlsx of one workbook may head
/// them differently): table name → the table it copies.
fn copies(entries: &[TableEntry]) -> HashMap<&str, &str> {
    let signature = |t: &TableEntry| {
        let cols: Vec<String> = t
            .stats
            .columns
            .iter()
            .map(|c| format!("{:?}|{}|{}|{:?}|{:?}|{:?}", c.dtype, c.nulls, c.distinct, c.min, c.max, c.sum))
            .collect();
        format!("{}:{}", t.rows, cols.join(";"))
    };
    let mut sorted: Vec<&TableEntry> = entries.iter().filter(|t| t.rows > 0).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut first: HashMap<String, &str> = HashMap::new();
    let mut out = HashMap::new();
    for t in sorted {
        match first.get(&signature(t)) {
            Some(of) => {
                out.insert(t.name.as_str(), *of);
            }
            None => {
                first.insert(signature(t), t.name.as_str());
            }
        }
    }
    out
}

fn table_block(
    t: &TableEntry,
    sample: Option<&(Vec<String>, Vec<Vec<String>>)>,
    qwords: &[String],
    privacy: Privacy,
    room: usize,
) -> (String, usize, usize) {
    let mut head = format!("<table name=\"{}\"", t.name);
    if t.format == crate::live::LIVE {
        // A database table: read when queried; nothing is known of its rows.
        let _ = write!(head, " live=\"{}: read from the database when queried\"", data_str(&t.source, 80));
        if t.rows > 0 {
            let _ = write!(head, " rows_estimate=\"{}\"", t.rows);
        }
    } else {
        let file =
            std::path::Path::new(&t.source).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = write!(head, " rows=\"{}\" file=\"{}\"", t.rows, data_str(&file, 80));
    }
    if let Some(s) = &t.sheet {
        let _ = write!(head, " sheet=\"{}\"", data_str(s, 60));
    }
    head.push_str(">\ncolumns:\n");
    let mut lines: Vec<(usize, String, &ColumnStats)> =
        t.stats.columns.iter().enumerate().map(|(i, c)| (i, column_line(c, privacy, t.rows), c)).collect();
    let all: usize = lines.iter().map(|(_, l, _)| approx_tokens(l) + 1).sum();
    let mut omitted_names = Vec::new();
    if all > room * 3 / 4 {
        // Keep what the question names, then dimensions, then the leftmost.
        let mut rank: Vec<(usize, usize)> = lines
            .iter()
            .map(|(i, _, c)| {
                let s = column_score(c, qwords) * 10 + if is_dimension(c) { 5 } else { 0 };
                (*i, s)
            })
            .collect();
        rank.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut keep = vec![false; lines.len()];
        let mut used = 0;
        for (i, _) in &rank {
            let cost = approx_tokens(&lines[*i].1) + 1;
            if used + cost > room * 3 / 4 {
                continue;
            }
            used += cost;
            keep[*i] = true;
        }
        lines.retain(|(i, _, c)| {
            if !keep[*i] {
                omitted_names.push((c.name.clone(), c.dtype.as_str()));
            }
            keep[*i]
        });
    }
    let mut block = head;
    for (_, l, _) in &lines {
        block.push_str(l);
        block.push('\n');
    }
    if !omitted_names.is_empty() {
        let mut names = String::new();
        for (n, t) in &omitted_names {
            if approx_tokens(&names) > room / 8 {
                break;
            }
            let _ = write!(names, "{n} ({t}), ");
        }
        let _ = writeln!(
            block,
            "(+ {} more columns, less related to the question; ask about them by name: {}{})",
            omitted_names.len(),
            names.trim_end_matches(", "),
            if names.len() < omitted_names.iter().map(|(n, t)| n.len() + t.len() + 5).sum::<usize>() {
                " …"
            } else {
                ""
            }
        );
    }
    // The catalog keeps the profile's notes with the table's too: each once.
    let mut seen = std::collections::HashSet::new();
    let notes: Vec<String> = t
        .notes
        .iter()
        .chain(t.stats.notes.iter())
        .filter(|n| Policy::new(privacy).note(n.quotes_values) && seen.insert(n.text.as_str()))
        .map(|n| format!("- {}", data_str(&n.text, 200)))
        .take(12)
        .collect();
    if !notes.is_empty() {
        let from = if t.format == crate::live::LIVE { "the database's catalog" } else { "loading the file" };
        let _ = writeln!(block, "notes from {from}:");
        for n in notes {
            block.push_str(&n);
            block.push('\n');
        }
    }
    if Policy::new(privacy).shows(View::SampleRows) {
        if let Some((cols, rows)) = sample {
            if !rows.is_empty() {
                let shown: Vec<usize> =
                    (0..cols.len()).filter(|i| lines.iter().any(|(_, _, c)| c.name == cols[*i])).take(30).collect();
                let _ = writeln!(block, "sample rows ({}):", rows.len());
                let _ = writeln!(block, "{}", shown.iter().map(|&i| cols[i].as_str()).collect::<Vec<_>>().join(" | "));
                for r in rows {
                    let cells: Vec<String> = shown.iter().map(|&i| data_str(r.get(i).map_or("", |s| s), 40)).collect();
                    let _ = writeln!(block, "{}", cells.join(" | "));
                }
            }
        }
    }
    block.push_str("</table>\n");
    (block, lines.len(), omitted_names.len())
}
