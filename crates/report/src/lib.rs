//! Answers as files people keep: the result table as CSV or XLSX, a
//! conversation as a self-contained HTML report (print it to PDF from any
//! browser), and as a Jupyter notebook that re-runs the same code on the
//! same data versions.
//!
//! This crate owns the export formats and the charts' JavaScript libraries
//! (Vega, Vega-Lite and vega-embed, from npm, pinned in
//! `web/package-lock.json`, embedded at build time by `build.rs`). It renders
//! from [`Answer`]s already produced; it runs nothing, opens no file and
//! knows no HTTP — the server and the CLI hand it what to render and write
//! the bytes where they belong.
//!
//! Everything that came from data or from the model (cell values, questions,
//! answers, code, chart specs) is escaped for the place it lands: HTML text,
//! attributes, and JSON inside `<script>`.

use std::fmt::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use quarry_types::plain;
use quarry_types::{Answer, Table};
use serde_json::{json, Value};

pub mod vendor {
    //! Vega, Vega-Lite and vega-embed as minified JavaScript, for the web page
    //! (`/vendor/*.js`) and inlined into HTML reports.
    pub const VEGA: &str = include_str!("../../../web/node_modules/vega/build/vega.min.js");
    pub const VEGA_LITE: &str = include_str!("../../../web/node_modules/vega-lite/build/vega-lite.min.js");
    pub const VEGA_EMBED: &str = include_str!("../../../web/node_modules/vega-embed/build/vega-embed.min.js");
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("that answer has no result table to export (it failed, or its code returned no table); export it as html, ipynb or json instead")]
    NoTable,
    #[error("there is no answer to export yet")]
    NoAnswer,
    #[error("unknown export format `{0}`: use csv, xlsx, json, html, pdf or ipynb")]
    UnknownFormat(String),
    /// PDF is printed from the HTML report by a browser, which this crate
    /// does not run: callers print [`Format::Html`]'s bytes (`quarry_sandbox::pdf`).
    #[error("a PDF is printed from the HTML report by headless Chromium")]
    NeedsPrinting,
    #[error("could not write the XLSX file: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The last answer's table, RFC 4180, UTF-8.
    Csv,
    /// The last answer's table (numbers stay numbers) and an "about" sheet.
    Xlsx,
    /// The answers as Quarry stores them.
    Json,
    /// A self-contained page: questions, answers, tables, charts, figures,
    /// code and provenance. No network needed to open it.
    Html,
    /// A Jupyter notebook (nbformat 4) with the code and its stored outputs.
    Ipynb,
    /// The HTML report printed by headless Chromium: vector charts, tables
    /// whose header repeats on every page, page numbers.
    Pdf,
}

impl Format {
    /// Every format, in the order the page and the help list them.
    pub const ALL: [Format; 6] = [Format::Csv, Format::Xlsx, Format::Html, Format::Pdf, Format::Ipynb, Format::Json];

    /// What a person calls it, for a menu.
    pub fn label(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Xlsx => "XLSX",
            Format::Json => "JSON",
            Format::Html => "Report",
            Format::Pdf => "PDF",
            Format::Ipynb => "Notebook",
        }
    }

    /// True for the formats that hold only an answer's table (none without one).
    pub fn needs_table(self) -> bool {
        matches!(self, Format::Csv | Format::Xlsx)
    }

    /// `csv`, `xlsx`, `json`, `html` or `ipynb` (also `notebook`), any case.
    pub fn parse(s: &str) -> Result<Format, ReportError> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            "json" => Ok(Format::Json),
            "html" | "htm" => Ok(Format::Html),
            "ipynb" | "notebook" => Ok(Format::Ipynb),
            "pdf" => Ok(Format::Pdf),
            _ => Err(ReportError::UnknownFormat(s.to_string())),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Json => "json",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Ipynb => "ipynb",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Pdf => "application/pdf",
            Format::Ipynb => "application/x-ipynb+json",
        }
    }
}

/// Where a table version's data lives, so a notebook can read it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub table: String,
    pub version: u32,
    pub parquet: PathBuf,
}

impl Source {
    /// The sources of the data versions `answers` read, each once, in the
    /// order first read; `parquet_of(table, version)` says where a version's
    /// Parquet file is (the workspace's catalog knows). Paths are made
    /// absolute so the notebook runs from any directory.
    pub fn for_answers(answers: &[Answer], parquet_of: impl Fn(&str, u32) -> Option<PathBuf>) -> Vec<Source> {
        let mut out: Vec<Source> = Vec::new();
        for d in answers.iter().flat_map(|a| &a.provenance.data_versions) {
            if out.iter().any(|s| s.table == d.table && s.version == d.version) {
                continue;
            }
            if let Some(p) = parquet_of(&d.table, d.version) {
                let parquet = std::path::absolute(&p).unwrap_or(p);
                out.push(Source { table: d.table.clone(), version: d.version, parquet });
            }
        }
        out
    }
}

/// What to render: one answer or a whole conversation.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub title: &'a str,
    pub answers: &'a [Answer],
    /// The Parquet files of the data versions the answers read (notebooks).
    pub sources: &'a [Source],
}

/// Renders `report` as `format`. CSV and XLSX take the last answer's table.
pub fn render(format: Format, report: &Report) -> Result<Vec<u8>, ReportError> {
    let last = report.answers.last().ok_or(ReportError::NoAnswer)?;
    match format {
        Format::Csv => Ok(csv(last.table.as_ref().ok_or(ReportError::NoTable)?)),
        Format::Xlsx => xlsx(last),
        Format::Json => Ok(match report.answers {
            [one] => serde_json::to_vec_pretty(one),
            all => serde_json::to_vec_pretty(all),
        }
        .unwrap_or_default()),
        Format::Html => Ok(html(report).into_bytes()),
        Format::Pdf => Err(ReportError::NeedsPrinting),
        Format::Ipynb => Ok(serde_json::to_vec_pretty(&notebook(report)).unwrap_or_default()),
    }
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the CSV export does to text that a spreadsheet would run as a
/// formula; the XLSX "about" sheet repeats it.
pub const CSV_FORMULA_NOTE: &str = "In the CSV export, text cells that begin with =, +, -, @, a tab or a carriage return \
     start with an apostrophe (') so spreadsheet programs show them instead of running them as formulas (OWASP CSV injection advice); \
     numbers are written as they are.";

/// Text a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+cmd|…`,
/// `@SUM(…)`) gets a leading `'`, as OWASP recommends; numbers stay.
fn neutralised(v: &Value) -> String {
    match v {
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        other => cell_text(other),
    }
}

/// The table as CSV (RFC 4180 quoting, UTF-8), values as computed (not
/// rounded), formula-leading text neutralised ([`CSV_FORMULA_NOTE`]).
pub fn csv(t: &Table) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(t.columns.iter().map(|c| neutralised(&Value::String(c.name.clone()))));
    for r in &t.rows {
        let _ = w.write_record(r.iter().map(neutralised));
    }
    w.into_inner().unwrap_or_default()
}

/// The answer's table as an XLSX workbook (numbers stay numbers), with the
/// question, answer, code and provenance on an "about" sheet.
pub fn xlsx(a: &Answer) -> Result<Vec<u8>, ReportError> {
    let t = a.table.as_ref().ok_or(ReportError::NoTable)?;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet().set_name("result")?;
    for (c, col) in t.columns.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, &col.name, &bold)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match v {
                Value::Number(n) => {
                    ws.write_number(r, c, n.as_f64().unwrap_or(0.0))?;
                }
                Value::Bool(b) => {
                    ws.write_boolean(r, c, *b)?;
                }
                Value::Null => {}
                other => {
                    ws.write_string(r, c, cell_text(other))?;
                }
            }
        }
    }
    let about = wb.add_worksheet().set_name("about")?;
    let mut rows = about_rows(a);
    rows.push(("csv export", CSV_FORMULA_NOTE.to_string()));
    for (i, (k, v)) in rows.iter().enumerate() {
        about.write_string_with_format(i as u32, 0, *k, &bold)?;
        about.write_string(i as u32, 1, v)?;
    }
    Ok(wb.save_to_buffer()?)
}

/// What an answer is and where it came from, as label/value pairs.
fn about_rows(a: &Answer) -> Vec<(&'static str, String)> {
    let p = &a.provenance;
    let mut rows = vec![
        ("question", a.question.clone()),
        ("answer", a.answer.clone()),
        ("language", a.language.clone()),
        ("code", a.code.clone()),
        ("attempts", a.attempts.to_string()),
        ("model", p.model.clone()),
        ("privacy", format!("{:?}", p.privacy).to_lowercase()),
        ("data versions", versions(a)),
        ("prompt hash", p.prompt_hash.clone()),
        ("truncated", a.table.as_ref().map(|t| t.truncated).unwrap_or(false).to_string()),
    ];
    // Answers stored before the engine was recorded leave it out.
    if !p.engine.is_empty() {
        rows.insert(6, ("engine", p.engine.clone()));
    }
    rows
}

fn versions(a: &Answer) -> String {
    a.provenance
        .data_versions
        .iter()
        .map(|d| format!("{} v{} ({})", d.table, d.version, short(&d.content_hash)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// `s` safe as HTML text or a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside `<script>`: no `<` (so no `</script>` or `<!--`),
/// and no line separators that older parsers choke on.
fn script_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

const STYLE: &str = r#"
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
.meta { color: #5b6570; font-size: .85rem; }
section.q { border-top: 1px solid #d6dbe0; padding-top: 1rem; margin-top: 1.5rem; }
section.q > h2 { break-after: avoid; }
h2 { font-size: 1.15rem; }
.answer { white-space: pre-wrap; }
.failed { color: #9b1c1c; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #d6dbe0; padding: .2rem .5rem; text-align: left; }
th { background: #f2f4f6; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; white-space: pre-wrap; }
img.figure { max-width: 100%; }
details { margin: .5rem 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; font-size: .8rem; color: #5b6570; }
dt { font-weight: 600; }
@media print { details { display: block; } details > summary { display: none; } details:not([open]) > * { display: block; }
  thead { display: table-header-group; } tr, figure, svg { break-inside: avoid; } }
@page { size: A4; margin: 16mm 12mm 18mm; @bottom-center { content: "Page " counter(page) " of " counter(pages); font: 9pt sans-serif; color: #555; } }
"#;

/// A self-contained HTML page of the report: nothing is fetched when it is
/// opened (the chart libraries are inlined), and it prints cleanly to PDF.
pub fn html(report: &Report) -> String {
    let mut body = String::new();
    let mut charts = Vec::new();
    for (i, a) in report.answers.iter().enumerate() {
        html_answer(&mut body, i + 1, a, &mut charts);
    }
    let mut scripts = String::new();
    if !charts.is_empty() {
        for lib in [vendor::VEGA, vendor::VEGA_LITE, vendor::VEGA_EMBED] {
            // Minified libraries contain no `</script>`; guard anyway.
            let _ = writeln!(scripts, "<script>{}</script>", lib.replace("</script", "<\\/script"));
        }
        let specs: Vec<Value> = charts.iter().map(|(id, spec)| json!({"id": id, "spec": spec})).collect();
        let _ = writeln!(
            scripts,
            "<script>for (const c of {}) vegaEmbed('#' + c.id, c.spec, {{actions: false, renderer: 'svg'}})\
             .catch((e) => {{ document.getElementById(c.id).textContent = 'chart: ' + e.message; }});</script>",
            script_json(&Value::Array(specs))
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"Quarry\"><title>{title}</title><style>{STYLE}</style></head>\n\
         <body><h1>{title}</h1><p class=\"meta\">{n} question{s}, exported from Quarry. Every answer shows the code \
         that produced it and the data versions it read.</p>\n{body}{scripts}</body></html>\n",
        title = escape(report.title),
        n = report.answers.len(),
        s = if report.answers.len() == 1 { "" } else { "s" },
    )
}

fn html_answer(out: &mut String, n: usize, a: &Answer, charts: &mut Vec<(String, Value)>) {
    let _ = writeln!(out, "<section class=\"q\"><h2>{n}. {}</h2>", escape(&a.question));
    let class = if a.ok { "answer" } else { "answer failed" };
    let _ = writeln!(out, "<p class=\"{class}\">{}</p>", escape(&a.answer));
    if let Some(t) = &a.table {
        html_table(out, t);
    }
    if let Some(spec) = &a.chart {
        let id = format!("chart-{n}");
        let _ = writeln!(out, "<div class=\"chart\" id=\"{id}\"></div>");
        charts.push((id, spec.clone()));
    }
    for png in &a.figures {
        // Only base64 text goes into the attribute: anything else is dropped.
        if base64::engine::general_purpose::STANDARD.decode(png).is_ok() {
            let _ = writeln!(out, "<img class=\"figure\" alt=\"figure\" src=\"data:image/png;base64,{png}\">");
        }
    }
    if !a.output.is_empty() {
        let _ = writeln!(out, "<details><summary>Printed output</summary><pre>{}</pre></details>", escape(&a.output));
    }
    if !a.code.is_empty() {
        let _ = writeln!(
            out,
            "<details open><summary>Code ({}, {} attempt{})</summary><pre><code>{}</code></pre></details>",
            escape(&a.language),
            a.attempts,
            if a.attempts == 1 { "" } else { "s" },
            escape(&a.code)
        );
    }
    let failed: Vec<_> = a.steps.iter().filter(|s| !s.ok).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "<details><summary>{} failed attempt(s)</summary>", failed.len());
        for s in failed {
            let _ = writeln!(
                out,
                "<pre><code>{}</code></pre><p class=\"failed\">{}</p>",
                escape(&s.code),
                escape(&s.outcome)
            );
        }
        out.push_str("</details>\n");
    }
    out.push_str("<dl>");
    for (k, v) in about_rows(a) {
        if !matches!(k, "question" | "answer" | "code" | "language") && !v.is_empty() {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
        }
    }
    out.push_str("</dl></section>\n");
}

fn html_table(out: &mut String, t: &Table) {
    out.push_str("<table><thead><tr>");
    for c in &t.columns {
        let _ = write!(out, "<th title=\"{}\">{}</th>", escape(c.type_name()), escape(&c.name));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for v in row {
            let class = if v.is_number() { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(&plain(v)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} row{}{}</p>",
        t.rows.len(),
        if t.rows.len() == 1 { "" } else { "s" },
        if t.truncated { " shown; the result had more (the notebook re-runs the code for all of them)" } else { "" }
    );
}

/// nbformat's multi-line strings: a list of lines, each but the last ending in `\n`.
fn lines(s: &str) -> Value {
    let mut v: Vec<Value> = s.split_inclusive('\n').map(|l| Value::String(l.to_string())).collect();
    if v.is_empty() {
        v.push(Value::String(String::new()));
    }
    Value::Array(v)
}

fn markdown(id: usize, s: &str) -> Value {
    json!({"cell_type": "markdown", "id": format!("cell-{id}"), "metadata": {}, "source": lines(s)})
}

fn code_cell(id: usize, source: &str, outputs: Vec<Value>, count: Option<usize>) -> Value {
    json!({
        "cell_type": "code",
        "id": format!("cell-{id}"),
        "execution_count": count,
        "metadata": {},
        "outputs": outputs,
        "source": lines(source),
    })
}

/// A Python string literal for `s` (JSON's escapes are valid Python).
fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "''".into())
}

/// The first cell of a notebook: the same tables, at the same versions, from
/// their Parquet files, and the same helpers the Quarry kernel offers
/// (`dfs`, `df`, `sql()` on Apache DataFusion's Python package, `show()`).
fn setup_code(sources: &[Source]) -> String {
    let mut s = String::from(
        "# The data this notebook's answers read, at the versions they read.\n\
         # sql() runs on Apache DataFusion, the engine Quarry uses: pip install datafusion pandas pyarrow\n\
         import pandas as pd\n\
         import numpy as np\n\
         import matplotlib.pyplot as plt\n\
         from datafusion import SessionContext\n\n\
         PARQUET = {\n",
    );
    for src in sources {
        let _ = writeln!(
            s,
            "    {}: {},  # version {}",
            py_str(&src.table),
            py_str(&src.parquet.to_string_lossy()),
            src.version
        );
    }
    s.push_str(
        "}\n\
         ctx = SessionContext()\n\
         for name, path in PARQUET.items():\n    ctx.register_parquet(name, path)\n\n\
         def sql(query):\n    \"\"\"Runs SQL on the engine and returns a pandas DataFrame.\"\"\"\n    return ctx.sql(query).to_pandas()\n\n\
         dfs = {name: pd.read_parquet(path) for name, path in PARQUET.items()}\n\
         df = next(iter(dfs.values())) if len(dfs) == 1 else None\n\
         show = display",
    );
    s
}

/// The stored result table as a notebook output: HTML and plain text.
fn table_output(t: &Table, count: usize) -> Value {
    let mut html = String::new();
    html_table(&mut html, t);
    let mut text = t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("\t");
    for row in t.rows.iter().take(50) {
        text.push('\n');
        text.push_str(&row.iter().map(plain).collect::<Vec<_>>().join("\t"));
    }
    if t.rows.len() > 50 {
        let _ = write!(text, "\n… {} rows in all", t.rows.len());
    }
    json!({
        "output_type": "execute_result",
        "execution_count": count,
        "metadata": {},
        "data": {"text/html": lines(&html), "text/plain": lines(&text)},
    })
}

/// A notebook (nbformat 4.5): for each question, its answer as markdown and
/// the code that produced it as a cell, with the outputs Quarry stored (the
/// table, printed text, figures), so it reads without running; run it to
/// compute again on the same data versions.
pub fn notebook(report: &Report) -> Value {
    let mut cells = vec![markdown(
        0,
        &format!(
        "# {}\n\nExported from Quarry. Each question below has the code that answered it; the first cell loads the \
         tables at the data versions those answers read.",
        escape(report.title)
    ),
    )];
    let mut count = 1;
    cells.push(code_cell(cells.len(), &setup_code(report.sources), vec![], None));
    for (i, a) in report.answers.iter().enumerate() {
        // Markdown renders inline HTML: what came from users and the model is escaped.
        let mut md = format!("## {}. {}\n\n{}", i + 1, escape(&a.question), escape(&a.answer));
        let v = versions(a);
        if !v.is_empty() {
            let _ = write!(md, "\n\n*Data: {}. Model: {}.*", escape(&v), escape(&a.provenance.model));
        }
        cells.push(markdown(cells.len(), &md));
        if a.code.trim().is_empty() {
            continue;
        }
        let source = if a.language == "sql" {
            let q = a.code.trim();
            if q.contains("\"\"\"") || q.contains('\\') || q.ends_with('"') {
                format!("result = sql({})\nresult", py_str(q))
            } else {
                format!("result = sql(\"\"\"\n{q}\n\"\"\")\nresult")
            }
        } else {
            a.code.trim_end().to_string()
        };
        let mut outputs = Vec::new();
        if !a.output.is_empty() {
            outputs.push(json!({"output_type": "stream", "name": "stdout", "text": lines(&a.output)}));
        }
        for png in &a.figures {
            outputs.push(json!({"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": ["<Figure>"]}}));
        }
        if let Some(t) = &a.table {
            outputs.push(table_output(t, count));
        }
        cells.push(code_cell(cells.len(), &source, outputs, Some(count)));
        count += 1;
    }
    json!({
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "quarry": {"title": report.title},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_types::{Column, ColumnType};
    use quarry_types::{DataVersion, Privacy, Provenance, Step};

    const HOSTILE: &str = "</script><img src=x onerror=alert(1)>";

    fn answer(question: &str, language: &str, code: &str) -> Answer {
        Answer {
            question: question.into(),
            ok: true,
            answer: "Kano has the highest test positivity (61.2%).".into(),
            code: code.into(),
            language: language.into(),
            attempts: 2,
            steps: vec![
                Step {
                    language: language.into(),
                    code: "SELECT tpr FROM x".into(),
                    ok: false,
                    outcome: "no column tpr".into(),
                },
                Step { language: language.into(), code: code.into(), ok: true, outcome: "3 rows".into() },
            ],
            table: Some(Table {
                columns: vec![
                    Column::new("state", ColumnType::Text),
                    Column::new("tpr", ColumnType::Float),
                    Column::new("facilities", ColumnType::Integer),
                ],
                rows: vec![
                    vec![json!("Kano"), json!(0.6123), json!(12)],
                    vec![json!("Lagos, \"Island\""), json!(0.4), json!(7)],
                    vec![json!(HOSTILE), Value::Null, json!(0)],
                ],
                truncated: false,
            }),
            chart: None,
            output: String::new(),
            figures: vec![],
            provenance: Provenance {
                model: "fake-model".into(),
                privacy: Privacy::Strict,
                prompt_hash: "ab".repeat(32),
                data_versions: vec![DataVersion { table: "malaria".into(), version: 2, content_hash: "cd".repeat(32) }],
                llm_ms: 10,
                exec_ms: 5,
                total_ms: 20,
                input_tokens: 100,
                output_tokens: 20,
                engine: String::new(),
            },
            cached: false,
            template: String::new(),
            definitions: Vec::new(),
            clarify: None,
        }
    }

    fn sql_answer() -> Answer {
        answer(
            "TPR by state <b>now</b>",
            "sql",
            "SELECT state, sum(positive) / sum(tested) AS tpr, count(*) AS facilities\nFROM malaria\nGROUP BY state",
        )
    }

    fn sources() -> Vec<Source> {
        vec![Source {
            table: "malaria".into(),
            version: 2,
            parquet: "/srv/quarry/data/tables/malaria/v2.parquet".into(),
        }]
    }

    /// Formula-leading text is neutralised (OWASP), numbers are not.
    #[test]
    fn csv_neutralises_formulas() {
        let mut a = sql_answer();
        let t = a.table.as_mut().unwrap();
        t.rows = vec![
            vec![json!("=HYPERLINK(\"http://x\",\"y\")"), json!(-5), json!(3)],
            vec![json!("+cmd|' /C calc'!A0"), json!("@SUM(A1)"), json!("-1+2")],
            vec![json!("Kano"), json!("\tx"), json!(null)],
        ];
        let text = String::from_utf8(csv(t)).unwrap();
        let rows: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        assert_eq!(rows[0], ["'=HYPERLINK(\"http://x\",\"y\")", "-5", "3"]);
        assert_eq!(rows[1], ["'+cmd|' /C calc'!A0", "'@SUM(A1)", "'-1+2"]);
        assert_eq!(rows[2], ["Kano", "'\tx", ""]);
    }

    #[test]
    fn csv_quotes_and_keeps_values_unrounded() {
        let a = sql_answer();
        let text = String::from_utf8(csv(a.table.as_ref().unwrap())).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("state,tpr,facilities"));
        assert_eq!(lines.next(), Some("Kano,0.6123,12"));
        assert_eq!(lines.next(), Some("\"Lagos, \"\"Island\"\"\",0.4,7"));
        assert_eq!(lines.next(), Some("</script><img src=x onerror=alert(1)>,,0"));
    }

    #[test]
    fn xlsx_keeps_numbers_as_numbers_and_says_where_they_came_from() {
        use calamine::{Data, Reader, Xlsx};
        let bytes = xlsx(&sql_answer()).unwrap();
        let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        let result = wb.worksheet_range("result").unwrap();
        assert_eq!(result.get_value((1, 1)), Some(&Data::Float(0.6123)));
        assert_eq!(result.get_value((2, 0)), Some(&Data::String("Lagos, \"Island\"".into())));
        assert!(matches!(result.get_value((3, 1)), None | Some(Data::Empty)), "a null stays empty");
        let about = wb.worksheet_range("about").unwrap();
        let rows: Vec<(String, String)> =
            about.rows().map(|r| (r[0].to_string(), r.get(1).map(|c| c.to_string()).unwrap_or_default())).collect();
        assert!(rows.contains(&("data versions".into(), "malaria v2 (cdcdcdcdcdcd)".into())), "{rows:?}");
        assert!(rows.iter().any(|(k, v)| k == "code" && v.contains("GROUP BY state")));
    }

    #[test]
    fn tables_are_required_only_where_the_format_is_a_table() {
        let mut a = sql_answer();
        a.table = None;
        let answers = [a];
        let r = Report { title: "t", answers: &answers, sources: &[] };
        assert!(matches!(render(Format::Csv, &r), Err(ReportError::NoTable)));
        assert!(matches!(render(Format::Xlsx, &r), Err(ReportError::NoTable)));
        for f in [Format::Json, Format::Html, Format::Ipynb] {
            assert!(render(f, &r).is_ok(), "{f:?}");
        }
        let none = Report { title: "t", answers: &[], sources: &[] };
        assert!(matches!(render(Format::Html, &none), Err(ReportError::NoAnswer)));
        assert!(matches!(Format::parse("docx"), Err(ReportError::UnknownFormat(_))));
        assert!(matches!(render(Format::Pdf, &r), Err(ReportError::NeedsPrinting)), "printed by the caller");
        assert_eq!(Format::parse("Notebook").unwrap(), Format::Ipynb);
        for f in Format::ALL {
            assert_eq!(Format::parse(f.extension()).unwrap(), f);
        }
    }

    /// Nothing from data or the model becomes markup or script.
    #[test]
    fn html_escapes_what_came_from_data_and_the_model() {
        let mut a = sql_answer();
        a.answer = format!("The answer {HOSTILE}");
        a.output = HOSTILE.into();
        a.figures = vec!["iVBORw0KGgo=".into(), "\"><script>alert(2)</script>".into()];
        a.chart = Some(json!({
            "mark": "bar",
            "data": {"values": [{"state": HOSTILE, "v": 1}, {"state": "<!--", "v": 2}]},
            "encoding": {"x": {"field": "state"}, "y": {"field": "v"}},
        }));
        let answers = [a];
        let page = html(&Report { title: HOSTILE, answers: &answers, sources: &[] });
        assert!(!page.contains("<img src=x"), "an injected tag survived");
        assert!(!page.contains("alert(2)"), "a figure that is not base64 was kept");
        assert!(page.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""));
        // Three libraries and the embedding script; the chart's data cannot close it.
        let own = page.rsplit("<script>").next().unwrap();
        assert!(own.contains("\\u003c/script>\\u003cimg"), "{}", &own[..200.min(own.len())]);
        assert_eq!(page.matches("</script>").count(), 4);
        assert!(page.contains("id=\"chart-1\""));
    }

    #[test]
    fn html_without_charts_carries_no_script() {
        let answers = [sql_answer()];
        let page = html(&Report { title: "TPR", answers: &answers, sources: &[] });
        assert!(!page.contains("<script"));
        insta::assert_snapshot!("html_report", page);
    }

    #[test]
    fn notebook_reads_the_same_data_versions_and_keeps_outputs() {
        let mut py = answer(
            "Is TPR different between states?",
            "python",
            "from scipy import stats\nprint(stats.ttest_ind([1, 2, 3], [2, 3, 4]))\nshow(df.head())",
        );
        py.output = "TtestResult(statistic=-1.22)\n".into();
        py.figures = vec!["iVBORw0KGgo=".into()];
        let mut tricky = sql_answer();
        tricky.code = "SELECT 'a\"\"\"b\\\\' AS s".into();
        let answers = [sql_answer(), py, tricky];
        let nb = notebook(&Report { title: "Malaria", answers: &answers, sources: &sources() });
        assert_eq!(nb["nbformat"], 4);
        let cells = nb["cells"].as_array().unwrap();
        let ids: std::collections::BTreeSet<&str> = cells.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), cells.len(), "cell ids are unique");
        let src = |c: &Value| c["source"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<String>();
        assert!(src(&cells[1]).contains("\"malaria\": \"/srv/quarry/data/tables/malaria/v2.parquet\",  # version 2"));
        assert!(src(&cells[3]).starts_with("result = sql(\"\"\"\nSELECT state"));
        assert_eq!(cells[3]["outputs"][0]["data"]["text/plain"][1], "Kano\t0.612\t12\n");
        assert!(src(&cells[5]).starts_with("from scipy import stats"));
        let kinds: Vec<&str> =
            cells[5]["outputs"].as_array().unwrap().iter().map(|o| o["output_type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["stream", "display_data", "execute_result"]);
        assert_eq!(src(&cells[7]), "result = sql(\"SELECT 'a\\\"\\\"\\\"b\\\\\\\\' AS s\")\nresult");
        insta::assert_json_snapshot!("notebook", nb);
    }

    #[test]
    fn sources_are_listed_once_with_absolute_paths() {
        let answers = [sql_answer(), sql_answer()];
        let s = Source::for_answers(&answers, |t, v| Some(PathBuf::from(format!("data/tables/{t}/v{v}.parquet"))));
        assert_eq!(s.len(), 1);
        assert!(s[0].parquet.is_absolute() && s[0].parquet.ends_with("data/tables/malaria/v2.parquet"), "{s:?}");
        assert!(Source::for_answers(&answers, |_, _| None).is_empty());
    }

    /// Every code cell is valid Python (checked by the Python that CI installs).
    #[test]
    fn notebook_code_cells_parse_as_python() {
        let mut tricky = sql_answer();
        tricky.code = "SELECT 'a\"\"\"b\\\\' AS s".into();
        let mut ends_in_quote = sql_answer();
        ends_in_quote.code = "SELECT \"state\"".into();
        let answers = [sql_answer(), tricky, ends_in_quote];
        let nb = notebook(&Report { title: "t", answers: &answers, sources: &sources() });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nb.ipynb");
        std::fs::write(&path, serde_json::to_vec(&nb).unwrap()).unwrap();
        let check = "import ast, json, sys\n\
                     nb = json.load(open(sys.argv[1]))\n\
                     cells = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']\n\
                     [ast.parse(c) for c in cells]\n\
                     print(len(cells))";
        let out = std::process::Command::new("python3")
            .args(["-c", check])
            .arg(&path)
            .output()
            .expect("python3 is needed for this test (scripts/test installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
    }
}
