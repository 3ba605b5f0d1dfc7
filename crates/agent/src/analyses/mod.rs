//! Saved analyses: an answer kept as a named analysis — its query (or its
//! Python steps, [`python`]) with the parameters a person confirmed (bound
//! as data: named placeholders in SQL, variables in Python, never spliced
//! into the text), its narrative template (slots), its chart,
//! the tables it reads by name — that runs again with no model: on request
//! with other parameter values, and whenever a table it reads gets a new
//! data version. Each run is stored beside the earlier ones with a computed
//! comparison to the previous run ([`compare`]); a column the query needs
//! that a new version lacks is a run error naming it and the closest new
//! names, never a silently different result. Stored by [`store`].

pub mod compare;
pub mod python;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use quarry_ingest::catalog::TableEntry;
use quarry_types::sql::Param;
use quarry_types::{Answer, DataVersion, Limits, SqlKernel, Table};

use crate::chart::{self, ChartProposal};
use crate::words::mentions;
pub use python::PythonRunner;

/// Where analyses run: the workspace's SQL workers, Python kernels when the
/// process has them, and the limits of each run.
#[derive(Clone, Copy)]
pub struct Kernels<'a> {
    pub sql: &'a dyn SqlKernel,
    pub python: Option<&'a dyn PythonRunner>,
    pub limits: &'a Limits,
}

/// What one run of an analysis's code gave: its table (the query's, or the
/// last Python step's first one or its value), what Python printed, its
/// figures (PNG).
pub(crate) struct Outcome {
    pub table: Option<Table>,
    pub output: String,
    pub figures: Vec<Vec<u8>>,
}

/// The languages an analysis may be written in (as [`Answer::language`]).
pub const SQL: &str = "sql";
pub const PYTHON: &str = "python";

fn sql_language() -> String {
    SQL.into()
}

/// A parameter of a saved analysis: a literal of the query made a placeholder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The placeholder's name (`$state`).
    pub name: String,
    /// The column the literal was compared with.
    pub column: String,
    /// The value the answer used: the default, and its type (text or number).
    pub default: Value,
}

/// A named analysis that runs with no model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub name: String,
    /// The question it answered first.
    pub question: String,
    /// [`SQL`] or [`PYTHON`].
    #[serde(default = "sql_language")]
    pub language: String,
    /// The query, with `$name` placeholders for its parameters; or the
    /// Python code of the answer's last step, parameters as variables.
    #[serde(alias = "sql")]
    pub code: String,
    /// Python: the answer's earlier steps, run first in the same kernel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    pub params: Vec<ParamSpec>,
    /// The narrative with slots, filled from each result (empty: Quarry's own summary).
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub chart: Option<ChartProposal>,
    /// The tables it reads, by name (a new version of one re-runs it).
    pub tables: Vec<String>,
    /// Each table's columns when it was saved, to name what a new version renamed.
    pub columns: BTreeMap<String, Vec<String>>,
    pub created_at: String,
}

/// One run of an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRun {
    /// 1 for the first run, then counting.
    pub number: u32,
    pub at: String,
    /// Why it ran: "saved", "asked", or the new data version that triggered it.
    pub trigger: String,
    pub params: Vec<Param>,
    pub data_versions: Vec<DataVersion>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub narrative: String,
    pub table: Option<Table>,
    pub chart: Option<Value>,
    /// Python: what the code printed, and its figures (PNG in base64).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<String>,
    /// What changed since the previous run, computed (`tpr in Kano: 48.2 → 53.9`).
    #[serde(default)]
    pub comparison: Vec<String>,
}

impl AnalysisRun {
    /// This run as an answer to the analysis's question, for what shows and
    /// exports answers (a share link, a report): its narrative, table, chart
    /// and data versions; the code is the analysis's, with its parameters'
    /// values listed in the narrative's last line.
    pub fn as_answer(&self, a: &Analysis) -> Answer {
        let params: Vec<String> = self.params.iter().map(|p| format!("{} = {}", p.name, p.value)).collect();
        let mut narrative = match &self.error {
            Some(e) if !self.ok => format!("This run failed: {e}"),
            _ => self.narrative.clone(),
        };
        if !params.is_empty() {
            narrative.push_str(&format!("\n\nParameters: {}.", params.join(", ")));
        }
        Answer {
            question: a.question.clone(),
            ok: self.ok,
            answer: narrative,
            code: a.code.clone(),
            language: a.language.clone(),
            attempts: 1,
            steps: Vec::new(),
            table: self.table.clone(),
            chart: self.chart.clone(),
            output: self.output.clone(),
            figures: self.figures.clone(),
            provenance: quarry_types::Provenance {
                model: format!("saved analysis '{}', run {} ({}, {})", a.name, self.number, self.trigger, self.at),
                privacy: quarry_types::Privacy::Strict,
                prompt_hash: String::new(),
                data_versions: self.data_versions.clone(),
                llm_ms: 0,
                exec_ms: 0,
                total_ms: 0,
                input_tokens: 0,
                output_tokens: 0,
                engine: String::new(),
            },
            cached: false,
            template: String::new(),
            definitions: Vec::new(),
            clarify: None,
        }
    }
}

/// The literals of an answer's code a person may make parameters (one per
/// column): those its query, or its Python steps, compare with a column.
pub fn propose(answer: &Answer) -> Vec<ParamSpec> {
    let found: Vec<(String, Value)> = if answer.language == PYTHON {
        python::literals(&python::steps(answer))
    } else {
        quarry_sql::params::literals(&answer.code).into_iter().map(|l| (l.column, l.value)).collect()
    };
    let mut out: Vec<ParamSpec> = Vec::new();
    for (column, value) in found {
        let base: String =
            column.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let base = if quarry_sql::params::valid_name(&base) { base } else { format!("p_{base}") };
        let mut name = base.clone();
        let mut k = 2;
        while out.iter().any(|p| p.name == name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        out.push(ParamSpec { name, column, default: value });
    }
    out
}

/// The tables an analysis may read in the workspace at `data`: the
/// catalog's (`catalog`) and its live sources' (`crate::live`), whose data
/// version in a run records that, and when, they were read live.
pub fn readable(data: &std::path::Path, catalog: Vec<TableEntry>) -> Vec<TableEntry> {
    let mut all = catalog;
    all.extend(crate::live::entries(data));
    all
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("unix:{secs}")
}

impl Analysis {
    /// An answer as an analysis named `name`, with the confirmed parameters
    /// (a subset of [`propose`]'s, possibly renamed).
    pub fn from_answer(
        name: &str,
        answer: &Answer,
        params: &[ParamSpec],
        entries: &[TableEntry],
    ) -> Result<Analysis, String> {
        store::check_name(name)?;
        if !answer.ok || answer.code.trim().is_empty() {
            return Err("only an answer that ran can be saved".into());
        }
        if answer.language != SQL && answer.language != PYTHON {
            return Err(format!("a {} answer cannot be saved as an analysis", answer.language));
        }
        if let Some(p) = params.iter().find(|p| !quarry_sql::params::valid_name(&p.name)) {
            return Err(format!("parameter name '{}': use letters, digits and _", p.name));
        }
        let (code, before) = if answer.language == PYTHON {
            let mut steps = python::bind(&python::steps(answer), params)?;
            let last = steps.pop().unwrap_or_default();
            (last, steps)
        } else {
            let binds: Vec<(String, Value, String)> =
                params.iter().map(|p| (p.column.clone(), p.default.clone(), p.name.clone())).collect();
            let sql =
                if binds.is_empty() { answer.code.clone() } else { quarry_sql::params::bind(&answer.code, &binds)? };
            (sql, Vec::new())
        };
        let all_code = [before.as_slice(), std::slice::from_ref(&code)].concat().join("\n");
        let mut read: Vec<&TableEntry> = entries.iter().filter(|e| mentions(&all_code, &e.name)).collect();
        if read.is_empty() && answer.language == PYTHON {
            // Code that uses `df` reads the one table the answer had.
            let used = &answer.provenance.data_versions;
            read = entries.iter().filter(|e| used.len() == 1 && used[0].table == e.name).collect();
        }
        if read.is_empty() {
            return Err("the code reads none of the workspace's tables".into());
        }
        Ok(Analysis {
            name: name.to_string(),
            question: answer.question.clone(),
            language: answer.language.clone(),
            code,
            before,
            params: params.to_vec(),
            template: answer.template.clone(),
            chart: answer.chart.as_ref().and_then(chart::proposal_of),
            tables: read.iter().map(|e| e.name.clone()).collect(),
            columns: read
                .iter()
                .map(|e| (e.name.clone(), e.columns.iter().map(|c| c.name.clone()).collect()))
                .collect(),
            created_at: now(),
        })
    }

    /// An analysis over one table from SQL a pack rendered (no parameters).
    pub fn over_table(
        name: &str,
        title: &str,
        sql: &str,
        template: &str,
        chart: Option<ChartProposal>,
        entry: &TableEntry,
    ) -> Analysis {
        Analysis {
            name: name.to_string(),
            question: title.to_string(),
            language: sql_language(),
            code: sql.to_string(),
            before: Vec::new(),
            params: Vec::new(),
            template: template.to_string(),
            chart,
            tables: vec![entry.name.clone()],
            columns: BTreeMap::from([(entry.name.clone(), entry.columns.iter().map(|c| c.name.clone()).collect())]),
            created_at: now(),
        }
    }

    /// The parameter values for a run: the defaults, with `given` (name → value) over them.
    pub fn values(&self, given: &[(String, String)]) -> Result<Vec<Param>, String> {
        if let Some((k, _)) = given.iter().find(|(k, _)| !self.params.iter().any(|p| &p.name == k)) {
            let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "{} has no parameter '{k}' (it has: {})",
                self.name,
                if names.is_empty() { "none".into() } else { names.join(", ") }
            ));
        }
        self.params
            .iter()
            .map(|p| {
                let value = match given.iter().find(|(k, _)| k == &p.name) {
                    None => p.default.clone(),
                    Some((_, v)) if p.default.is_number() => {
                        let n: f64 =
                            v.trim().parse().map_err(|_| format!("parameter {}: '{v}' is not a number", p.name))?;
                        serde_json::Number::from_f64(n)
                            .map(|x| {
                                if n.fract() == 0.0 && n.abs() < 9e15 {
                                    Value::from(n as i64)
                                } else {
                                    Value::Number(x)
                                }
                            })
                            .unwrap_or(Value::Null)
                    }
                    Some((_, v)) => Value::String(v.clone()),
                };
                Ok(Param { name: p.name.clone(), value })
            })
            .collect()
    }

    /// Every piece of code the analysis runs, in order.
    pub fn steps(&self) -> Vec<String> {
        [self.before.as_slice(), std::slice::from_ref(&self.code)].concat()
    }

    /// Columns the analysis's tables had when saved that their current
    /// versions lack, each with the closest names they have now.
    fn missing_columns(&self, entries: &[TableEntry]) -> Result<(), String> {
        let code = self.steps().join("\n");
        for t in &self.tables {
            let Some(e) = entries.iter().find(|e| &e.name == t) else {
                return Err(format!("table {t}, which this analysis reads, is no longer in the workspace"));
            };
            let now: Vec<&str> = e.columns.iter().map(|c| c.name.as_str()).collect();
            let used: Vec<&String> = self.columns.get(t).into_iter().flatten().filter(|c| mentions(&code, c)).collect();
            if let Some(gone) = used.into_iter().find(|c| !now.contains(&c.as_str())) {
                // A renamed column is among those the table did not have before.
                let before = self.columns.get(t).cloned().unwrap_or_default();
                let new: Vec<&str> = now.iter().copied().filter(|n| !before.iter().any(|b| b == n)).collect();
                let pool = if new.is_empty() { &now } else { &new };
                let mut close: Vec<(f64, &str)> =
                    pool.iter().map(|n| (strsim::normalized_levenshtein(gone, n), *n)).collect();
                close.sort_by(|a, b| b.0.total_cmp(&a.0));
                let names: Vec<String> = close.iter().take(3).map(|(_, n)| format!("'{n}'")).collect();
                return Err(format!(
                    "column '{gone}' of table {t} is not in its version {} any more; the closest new names are {}. Save the analysis again over the new columns.",
                    e.version,
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Run the analysis on the tables as they are now (no model), compared
    /// with `previous`. A failure is a run with `ok` false and the error.
    pub fn run(
        &self,
        params: Vec<Param>,
        k: Kernels<'_>,
        entries: &[TableEntry],
        previous: Option<&AnalysisRun>,
        trigger: &str,
    ) -> AnalysisRun {
        let data_versions = entries
            .iter()
            .filter(|e| self.tables.contains(&e.name))
            .map(|e| DataVersion { table: e.name.clone(), version: e.version, content_hash: e.content_hash.clone() })
            .collect();
        let mut run = AnalysisRun {
            number: previous.map_or(1, |p| p.number + 1),
            at: now(),
            trigger: trigger.to_string(),
            params: params.clone(),
            data_versions,
            ok: false,
            error: None,
            narrative: String::new(),
            table: None,
            chart: None,
            output: String::new(),
            figures: Vec::new(),
            comparison: Vec::new(),
        };
        match self.missing_columns(entries).and_then(|()| self.execute(&params, k)) {
            Err(e) => {
                run.narrative = format!("The analysis could not run: {e}");
                run.error = Some(e);
            }
            Ok(out) => {
                run.output = out.output;
                run.figures = out.figures.iter().map(|p| crate::answer::png_base64(p)).collect();
                if let Some(t) = out.table {
                    self.describe(&mut run, t, entries, previous);
                } else {
                    // Printed output only: the first lines of it.
                    run.narrative = run.output.trim().chars().take(2000).collect();
                }
                run.ok = true;
            }
        }
        run
    }

    /// The code on its kernel: the query's table, or what the Python gave.
    fn execute(&self, params: &[Param], k: Kernels<'_>) -> Result<Outcome, String> {
        if self.language == PYTHON {
            return python::run(&self.name, &self.steps(), &self.tables, params, k);
        }
        let r = k.sql.query_with(&self.code, params, k.limits).map_err(|e| e.to_string())?;
        Ok(Outcome { table: Some(Table::from_result(&r)), output: String::new(), figures: Vec::new() })
    }

    /// A run's narrative (the template filled, or Quarry's own summary),
    /// chart and comparison, from its table.
    fn describe(&self, run: &mut AnalysisRun, t: Table, entries: &[TableEntry], previous: Option<&AnalysisRun>) {
        run.narrative = match crate::slots::fill(&self.template, Some(&t)) {
            Ok(f) if f.slots > 0 => f.text,
            _ => crate::answer::describe(&t),
        };
        run.chart = chart::build(self.chart.as_ref(), &t, "");
        if let Some(c) = run.chart.as_mut() {
            chart::with_labels(c, entries);
        }
        run.comparison = previous.map(|p| compare::compare(p, &t)).unwrap_or_default();
        run.table = Some(t);
    }
}

/// Run `a` with `params`, compared with its last run, and keep the run.
pub fn run_and_keep(
    data: &std::path::Path,
    a: &Analysis,
    params: Vec<Param>,
    k: Kernels<'_>,
    entries: &[TableEntry],
    trigger: &str,
) -> Result<AnalysisRun, String> {
    let previous = store::last_run(data, &a.name)?;
    let run = a.run(params, k, entries, previous.as_ref(), trigger);
    store::save_run(data, &a.name, &run)?;
    Ok(run)
}

/// Run again every analysis that reads one of `tables` (after their new
/// data versions), with its last run's parameters; each run kept.
pub fn rerun_reading(
    data: &std::path::Path,
    tables: &[String],
    k: Kernels<'_>,
    entries: &[TableEntry],
) -> Vec<(String, Result<AnalysisRun, String>)> {
    let Ok(list) = store::reading(data, tables) else { return Vec::new() };
    list.into_iter()
        .map(|a| {
            let params = match store::last_run(data, &a.name).ok().flatten() {
                Some(last) => last.params,
                None => a.values(&[]).unwrap_or_default(),
            };
            let changed: Vec<String> = entries
                .iter()
                .filter(|e| tables.contains(&e.name) && a.tables.contains(&e.name))
                .map(|e| format!("{} v{}", e.name, e.version))
                .collect();
            let trigger = format!("new data: {}", changed.join(", "));
            let r = run_and_keep(data, &a, params, k, entries, &trigger);
            (a.name.clone(), r)
        })
        .collect()
}

/// A file's name with its digits taken out: `nmep_tpr_2024_07.xlsx` and
/// `nmep_tpr_2024_08.xlsx` are the same report for two periods.
fn report_stem(source: &str) -> String {
    let name = std::path::Path::new(source).file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// Whether `new` is the next file of the report `old` came from: the same
/// file name but for its digits, the same sheet, the same columns.
pub fn same_report(old: &TableEntry, new: &TableEntry) -> bool {
    fn cols(e: &TableEntry) -> Vec<&str> {
        let mut c: Vec<&str> = e.columns.iter().map(|c| c.name.as_str()).collect();
        c.sort();
        c
    }
    old.name != new.name
        && old.source != new.source
        && report_stem(&old.source) == report_stem(&new.source)
        && old.sheet == new.sheet
        && cols(old) == cols(new)
}

/// A new table that is the next file of a report (see [`same_report`]):
/// every analysis reading that report's table follows it — reads the new
/// table from now on — and runs, compared with its last run on the old file.
pub fn follow_new_files(
    data: &std::path::Path,
    new_tables: &[String],
    k: Kernels<'_>,
    entries: &[TableEntry],
) -> Vec<(String, Result<AnalysisRun, String>)> {
    let Ok(list) = store::list(data) else { return Vec::new() };
    let mut out = Vec::new();
    for new in entries.iter().filter(|e| new_tables.contains(&e.name)) {
        for a in list.iter().filter(|a| a.tables.len() == 1) {
            let old_name = &a.tables[0];
            let Some(old) = entries.iter().find(|e| &e.name == old_name) else { continue };
            if !same_report(old, new) {
                continue;
            }
            let r = follow(data, a, old, new).and_then(|moved| {
                let params = store::last_run(data, &moved.name)?.map(|r| r.params).unwrap_or_default();
                let trigger = format!("new file: {} (the next {})", new.name, old.name);
                run_and_keep(data, &moved, params, k, entries, &trigger)
            });
            out.push((a.name.clone(), r));
        }
    }
    out
}

/// `a` reading `new` instead of `old`, saved.
fn follow(data: &std::path::Path, a: &Analysis, old: &TableEntry, new: &TableEntry) -> Result<Analysis, String> {
    let mut moved = a.clone();
    if a.language == PYTHON {
        moved.code = python::rename_word(&a.code, &old.name, &new.name);
        moved.before = a.before.iter().map(|c| python::rename_word(c, &old.name, &new.name)).collect();
    } else {
        moved.code = quarry_sql::params::rename_table(&a.code, &old.name, &new.name)?;
    }
    moved.tables = vec![new.name.clone()];
    moved.columns = BTreeMap::from([(new.name.clone(), new.columns.iter().map(|c| c.name.clone()).collect())]);
    store::save(data, &moved)?;
    Ok(moved)
}
