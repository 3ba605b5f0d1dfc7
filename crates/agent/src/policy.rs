//! The privacy policy: the one place that decides what of the data each
//! view the model gets may hold. Everything the analyst sends the model
//! about data — the context's values, sample rows and load notes, results,
//! Python output, SQL and Python errors, filter suggestions — goes through a
//! [`Policy`] method, and [`Policy::shows`] is the one table of which mode
//! shows which [`View`]. The canary test below runs every mode over every
//! view: a view that lets a planted value through where the table says no
//! fails it.

use quarry_sandbox::python::{PyFailure, PyRun, PythonError};
use quarry_types::EngineError;
use quarry_types::{Privacy, Table};
use serde_json::Value;

use crate::answer::{self, plain};

/// The views of the data the model may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Ranges, means and top values in the tables' descriptions.
    ColumnValues,
    /// A few rows per table in the context.
    SampleRows,
    /// Notes from loading a file that quote cell values.
    QuotingNotes,
    /// The first rows of a query's result.
    ResultRows,
    /// What Python code printed, and its result's values.
    PythonOutput,
    /// The messages of SQL and Python errors (which may quote values).
    ErrorMessages,
    /// The existing values closest to a filter value that matched nothing.
    FilterSuggestions,
}

impl View {
    pub const ALL: [View; 7] = [
        View::ColumnValues,
        View::SampleRows,
        View::QuotingNotes,
        View::ResultRows,
        View::PythonOutput,
        View::ErrorMessages,
        View::FilterSuggestions,
    ];
}

/// A privacy mode applied to each view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    privacy: Privacy,
}

impl Policy {
    pub fn new(privacy: Privacy) -> Policy {
        Policy { privacy }
    }

    pub fn privacy(self) -> Privacy {
        self.privacy
    }

    /// Whether `view` may carry values from the data in this mode.
    pub fn shows(self, view: View) -> bool {
        match self.privacy {
            Privacy::Strict => false,
            Privacy::Sample => !matches!(view, View::ResultRows | View::PythonOutput),
            Privacy::Full => true,
        }
    }

    /// Whether a load note goes into the context.
    pub fn note(self, quotes_values: bool) -> bool {
        !quotes_values || self.shows(View::QuotingNotes)
    }

    /// A failed query as the model reads it.
    pub fn sql_error(self, e: &EngineError) -> String {
        if self.shows(View::ErrorMessages) {
            e.to_string()
        } else {
            e.redacted()
        }
    }

    /// Python code that raised, as the model reads it: the exception's type
    /// and place always, its message only where errors may quote values.
    pub fn python_failure(self, e: &PyFailure) -> String {
        if self.shows(View::ErrorMessages) {
            python_failure_text(e)
        } else {
            format!("{}{} (message withheld in strict privacy mode)", e.kind, place(e))
        }
    }

    /// Python that could not run (refused, worker died), as the model reads it.
    pub fn python_error(self, e: &PythonError) -> String {
        if self.shows(View::ErrorMessages) {
            e.to_string()
        } else {
            e.redacted()
        }
    }

    /// The result's first rows, where the model may read them.
    pub fn result(self, table: &Table) -> Option<String> {
        self.shows(View::ResultRows).then(|| preview(table, 30))
    }

    /// What a Python run printed and returned, where the model may read it.
    pub fn python_output(self, run: &PyRun, table: Option<&Table>) -> Option<String> {
        self.shows(View::PythonOutput).then(|| python_details(run, table))
    }

    /// The closest existing values to a filter that matched nothing, where
    /// the model may read them.
    pub fn filter_suggestions(self, closest: &[String]) -> Option<&[String]> {
        self.shows(View::FilterSuggestions).then_some(closest)
    }

    /// The answer's narrative: the model's words where it read the result
    /// or Quarry filled its slots with the result's numbers, else its words
    /// plus Quarry's own statement of the numbers.
    pub fn narrative(self, model_text: &str, table: Option<&Table>, slots_filled: bool) -> String {
        answer::narrative(model_text, table, self.shows(View::ResultRows) || slots_filled)
    }
}

/// The first `n` rows as pipe-separated text: the result view of `full`
/// mode. Numbers at full precision (the shortest text that reads back as
/// the same number): formatting is for people, not for the model.
pub fn preview(table: &Table, n: usize) -> String {
    let mut s = table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" | ");
    for r in table.rows.iter().take(n) {
        s.push('\n');
        s.push_str(&r.iter().map(|v| crate::quote::data_str(&exact(v), 60)).collect::<Vec<_>>().join(" | "));
    }
    if table.rows.len() > n {
        s.push_str(&format!("\n… {} more rows", table.rows.len() - n));
    }
    s
}

/// A value exactly, for the model: numbers as the shortest text that reads
/// back as the same number (`0.3333333333333333`), nulls as `NULL`.
pub fn exact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format!("{f}"),
            _ => n.to_string(),
        },
        other => plain(other),
    }
}

/// Where an exception was raised, and the kernel's hint: never data.
fn place(e: &PyFailure) -> String {
    let at = e.line.map(|l| format!(" at line {l}")).unwrap_or_default();
    let src = e.source.as_ref().map(|s| format!(" (`{s}`)")).unwrap_or_default();
    let hint = e.hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default();
    format!("{at}{src}{hint}")
}

/// A Python exception in full: what the user sees.
pub fn python_failure_text(e: &PyFailure) -> String {
    format!("{}{}", e.message, place(e))
}

/// What the model reads of a Python run where output is shown.
fn python_details(run: &PyRun, table: Option<&Table>) -> String {
    let mut s = String::new();
    if !run.stdout.is_empty() {
        let out: String = run.stdout.chars().take(4000).collect();
        s.push_str(&format!("printed:\n{out}\n"));
    }
    if let Some(t) = table.filter(|_| !run.tables.is_empty()) {
        s.push_str(&format!("table:\n{}\n", preview(t, 30)));
    } else if let Some(v) = &run.value {
        let text: String = v.to_string().chars().take(4000).collect();
        s.push_str(&format!("value: {text}\n"));
    }
    s.trim_end().to_string()
}

/// What the model may always know about a Python run: its shape.
pub fn python_summary(run: &PyRun, table: Option<&Table>) -> String {
    let mut parts = Vec::new();
    let lines = run.stdout.lines().count();
    if lines > 0 {
        parts.push(format!("printed {lines} line{}", if lines == 1 { "" } else { "s" }));
    }
    if let Some(t) = run.tables.first() {
        let shape = table.map(|t| t.shape()).unwrap_or_default();
        parts.push(format!("result table '{}' with {} rows: {shape}", t.name, t.rows));
    } else if let Some(v) = &run.value {
        let kind = match v {
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "a list",
            Value::Object(o) if o.contains_key("repr") => "an object",
            Value::Object(_) => "a dict",
            Value::Null => "None",
        };
        parts.push(format!("value: {kind}"));
    }
    if !run.figures.is_empty() {
        parts.push(format!("{} figure{}", run.figures.len(), if run.figures.len() == 1 { "" } else { "s" }));
    }
    if parts.is_empty() {
        "ran, with no output and no result".into()
    } else {
        parts.join("; ")
    }
}

/// The guarantee, over every mode and every view: a value planted in the
/// data reaches the model through a view exactly when [`Policy::shows`] says
/// that view may carry values — and in `strict` through none.
#[cfg(test)]
mod canary {
    use std::collections::HashMap;

    use quarry_ingest::catalog::Catalog;
    use quarry_ingest::{IngestOptions, Quiet};
    use quarry_types::{Column, EngineError, ErrorKind};
    use serde_json::json;

    use super::*;
    use crate::{context, prompt};

    const WORD: &str = "Zqxcanaryvale";
    const NUMBER: &str = "987654321";
    /// A value only a sample row holds.
    const SAMPLED: &str = "Zqxsampledonly";

    fn table() -> Table {
        Table {
            columns: vec![
                Column::new("facility", quarry_types::ColumnType::Text),
                Column::new("tested", quarry_types::ColumnType::Integer),
            ],
            rows: vec![vec![json!(WORD), json!(987654321)]],
            truncated: false,
        }
    }

    /// The context of a table whose values, labels of categories and load
    /// notes hold the canary, built in `privacy` with `samples` rows.
    fn context_text(privacy: Privacy, with_samples: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("canary.csv");
        let mut s = String::from("facility,state,tested\n");
        for i in 0..40 {
            s.push_str(&format!("{WORD},Kano,{}\n", 100 + i));
        }
        // The largest count is in the column's range only; a second spelling
        // of the facility makes a note, the only place that quotes it.
        s.push_str(&format!("{WORD},Kano,{NUMBER}\n"));
        s.push_str(&format!("{} ,Kano,5\n", WORD.to_uppercase()));
        std::fs::write(&csv, s).unwrap();
        let mut c = Catalog::open(&dir.path().join("data")).unwrap();
        c.load(&csv, &IngestOptions::default(), &Quiet).unwrap();
        let entries = c.tables().unwrap();
        let mut samples = HashMap::new();
        if with_samples {
            samples.insert(entries[0].name.clone(), (vec!["facility".into()], vec![vec![SAMPLED.to_string()]]));
        }
        context::build(&entries, &samples, "which facility?", privacy, 6000).text
    }

    /// What the model reads through `view`, made by the policy from data
    /// holding a canary, and the canary only that view could carry.
    fn view(policy: Policy, view: View) -> (String, Vec<&'static str>) {
        let text = view_text(policy, view);
        let canaries = match view {
            View::ColumnValues => vec![NUMBER],
            View::SampleRows => vec![SAMPLED],
            View::QuotingNotes => vec!["ZQXCANARYVALE"],
            _ => vec![WORD, NUMBER],
        };
        (text, canaries)
    }

    fn view_text(policy: Policy, view: View) -> String {
        let full_table = table();
        let run = PyRun { ok: true, stdout: format!("{WORD}\n"), value: Some(json!(WORD)), ..PyRun::default() };
        match view {
            View::ColumnValues => context_text(policy.privacy(), false),
            View::SampleRows => context_text(policy.privacy(), true),
            View::QuotingNotes => context_text(policy.privacy(), false),
            View::ResultRows => policy.result(&full_table).unwrap_or_else(|| full_table.shape()),
            View::PythonOutput => policy.python_output(&run, None).unwrap_or_else(|| python_summary(&run, None)),
            View::ErrorMessages => {
                let sql = EngineError::new(ErrorKind::Invalid, format!("cannot cast '{WORD}' to INT"), "check types");
                let py = PyFailure {
                    kind: "ValueError".into(),
                    message: format!("invalid literal for int(): '{WORD}'"),
                    line: Some(2),
                    source: Some("int(df.facility[0])".into()),
                    hint: None,
                };
                let died = PythonError::Worker(quarry_sandbox::WorkerError::Died {
                    signal: None,
                    code: Some(1),
                    stderr: format!("KeyError: '{WORD}'"),
                });
                [policy.sql_error(&sql), policy.python_failure(&py), policy.python_error(&died)].join("\n")
            }
            View::FilterSuggestions => {
                let closest = vec![WORD.to_string()];
                prompt::empty_filter("facility", "Zqxcanaryval", policy.filter_suggestions(&closest))
            }
        }
    }

    #[test]
    fn every_mode_over_every_view() {
        for privacy in Privacy::ALL {
            let policy = Policy::new(privacy);
            for v in View::ALL {
                let (text, canaries) = view(policy, v);
                let leaked = canaries.iter().any(|c| text.contains(c));
                assert_eq!(leaked, policy.shows(v), "{privacy:?} {v:?}: {text}");
            }
        }
        assert!(View::ALL.iter().all(|v| !Policy::new(Privacy::Strict).shows(*v)));
    }
}
