//! `quarry analysis …`, `ask --save-as`, and the re-runs after a load: saved
//! analyses from the command line. What an analysis is and how it runs is
//! `quarry_agent::analyses`; this prints.

use std::path::Path;

use quarry_agent::analyses::{self, store, Analysis, AnalysisRun, ParamSpec};
use quarry_agent::Answer;
use quarry_ingest::catalog::{Catalog, TableEntry};

use crate::args::AnalysisCmd;
use crate::{fail, printable};

/// What saved analyses run on from the command line: one SQL worker over
/// `data`, Python kernels started only if an analysis is Python.
pub(crate) struct AnalysisKernels {
    sql: quarry_engine::worker::SqlWorkers,
    python: crate::python::LazyKernels,
    limits: quarry_sandbox::Limits,
}

impl AnalysisKernels {
    pub(crate) fn new(data: &Path) -> Result<AnalysisKernels, String> {
        Ok(AnalysisKernels {
            sql: crate::loading::sql_worker(data)?,
            python: Default::default(),
            limits: Default::default(),
        })
    }

    pub(crate) fn get(&self) -> quarry_agent::analyses::Kernels<'_> {
        quarry_agent::analyses::Kernels { sql: &self.sql, python: Some(&self.python), limits: &self.limits }
    }
}

fn entries(data: &Path) -> Result<Vec<TableEntry>, String> {
    let catalog = Catalog::open(data).and_then(|c| c.tables()).map_err(|e| e.to_string())?;
    Ok(analyses::readable(data, catalog))
}

/// `COLUMN[=NAME]` flags as the confirmed subset of the proposals.
fn confirmed(proposed: &[ParamSpec], flags: &[String]) -> Result<Vec<ParamSpec>, String> {
    flags
        .iter()
        .map(|f| {
            let (col, name) = f.split_once('=').map_or((f.as_str(), None), |(c, n)| (c, Some(n)));
            let mut p = proposed.iter().find(|p| p.column == col || p.name == col).cloned().ok_or_else(|| {
                let cols: Vec<String> = proposed.iter().map(|p| format!("{} (= {})", p.column, p.default)).collect();
                format!(
                    "--param {f}: the query compares no column '{col}' with a value; it can take: {}",
                    if cols.is_empty() { "none".into() } else { cols.join(", ") }
                )
            })?;
            if let Some(n) = name {
                p.name = n.to_string();
            }
            Ok(p)
        })
        .collect()
}

/// Save `answer` as analysis `name` with the parameters `flags` confirm.
pub(crate) fn save_answer(data: &Path, name: &str, answer: &Answer, flags: &[String]) -> bool {
    let proposed = analyses::propose(answer);
    let params = match confirmed(&proposed, flags) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let all = match entries(data) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let a = match Analysis::from_answer(name, answer, &params, &all) {
        Ok(a) => a,
        Err(e) => return fail(format!("not saved: {e}")),
    };
    if let Err(e) = store::save(data, &a) {
        return fail(e);
    }
    eprintln!("saved analysis {name}, reading {}", a.tables.join(", "));
    for p in &a.params {
        eprintln!("  parameter ${} (compared with {}), default {}", p.name, p.column, p.default);
    }
    let left: Vec<String> = proposed
        .iter()
        .filter(|p| !a.params.iter().any(|x| x.column == p.column))
        .map(|p| format!("{} = {}", p.column, p.default))
        .collect();
    if !left.is_empty() {
        eprintln!("  could also be parameters (save again with --param COLUMN): {}", left.join(", "));
    }
    run_now(data, &a, &[], "saved", false)
}

fn run_now(data: &Path, a: &Analysis, given: &[(String, String)], trigger: &str, as_json: bool) -> bool {
    let params = match a.values(given) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let (k, all) = match (AnalysisKernels::new(data), entries(data)) {
        (Ok(k), Ok(e)) => (k, e),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    match analyses::run_and_keep(data, a, params, k.get(), &all, trigger) {
        Ok(run) => {
            if as_json {
                println!("{}", serde_json::to_string_pretty(&run).unwrap_or_default());
            } else {
                print_run(&a.name, &run);
            }
            run.ok || fail(format!("analysis {} failed", a.name))
        }
        Err(e) => fail(e),
    }
}

fn print_run(name: &str, run: &AnalysisRun) {
    println!("{name}, run {} ({}):", run.number, printable(&run.trigger));
    println!("  {}", printable(&run.narrative));
    if let Some(t) = &run.table {
        println!("{}", crate::render::render_table(t, 20));
    }
    for c in &run.comparison {
        println!("  since the last run: {}", printable(c));
    }
}

/// After a load: run again the analyses that read tables with a new
/// version (`changed`), and move those whose report's next file became a
/// new table (`new`) onto it.
pub(crate) fn rerun_after_load(data: &Path, changed: &[String], new: &[String]) {
    let none_changed = changed.is_empty() || store::reading(data, changed).map_or(true, |l| l.is_empty());
    if none_changed && (new.is_empty() || store::list(data).map_or(true, |l| l.is_empty())) {
        return;
    }
    let (k, all) = match (AnalysisKernels::new(data), entries(data)) {
        (Ok(k), Ok(e)) => (k, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("warning: the analyses over {} were not run again: {e}", changed.join(", "));
            return;
        }
    };
    let mut done = analyses::rerun_reading(data, changed, k.get(), &all);
    done.extend(analyses::follow_new_files(data, new, k.get(), &all));
    for (name, r) in done {
        match r {
            Ok(run) if run.ok => print_run(&name, &run),
            Ok(run) => eprintln!("analysis {name} failed on the new data: {}", run.error.unwrap_or_default()),
            Err(e) => eprintln!("analysis {name}: {e}"),
        }
    }
}

/// `NAME=VALUE` flags.
fn pairs(flags: &[String]) -> Result<Vec<(String, String)>, String> {
    flags
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| format!("--param {f}: write NAME=VALUE"))
        })
        .collect()
}

pub(crate) fn run(cmd: AnalysisCmd, data: &Path) -> bool {
    match cmd {
        AnalysisCmd::Save { name, answer, params } => {
            let text = match std::fs::read_to_string(&answer) {
                Ok(t) => t,
                Err(e) => return fail(format!("{}: {e}", answer.display())),
            };
            match serde_json::from_str::<Answer>(&text) {
                Ok(a) => save_answer(data, &name, &a, &params),
                Err(e) => fail(format!("{}: not an answer from `quarry ask --json` ({e})", answer.display())),
            }
        }
        AnalysisCmd::List { json } => match store::list(data) {
            Ok(list) if json => {
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
                true
            }
            Ok(list) => {
                if list.is_empty() {
                    eprintln!("no analyses yet: `quarry ask FILE QUESTION --save-as NAME` saves one");
                }
                for a in list {
                    let params: Vec<String> = a.params.iter().map(|p| format!("${}", p.name)).collect();
                    println!(
                        "{}  {}  [{}]  reads {}",
                        a.name,
                        printable(&a.question),
                        params.join(" "),
                        a.tables.join(", ")
                    );
                }
                true
            }
            Err(e) => fail(e),
        },
        AnalysisCmd::Show { name, json } => match (store::load(data, &name), store::runs(data, &name)) {
            (Ok(a), Ok(runs)) => {
                if json {
                    println!("{}", serde_json::json!({"analysis": a, "runs": runs}));
                } else {
                    println!("{}: {} ({})", a.name, printable(&a.question), a.language);
                    for (i, code) in a.steps().iter().enumerate() {
                        let n = if a.before.is_empty() { String::new() } else { format!("step {}:\n", i + 1) };
                        println!("{n}{code}");
                    }
                    for p in &a.params {
                        println!("  ${} (compared with {}), default {}", p.name, p.column, p.default);
                    }
                    for r in &runs {
                        println!("  run {} ({}): {}", r.number, printable(&r.trigger), printable(&r.narrative));
                    }
                }
                true
            }
            (Err(e), _) | (_, Err(e)) => fail(e),
        },
        AnalysisCmd::Run { name, params, json } => {
            let given = match pairs(&params) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match store::load(data, &name) {
                Ok(a) => run_now(data, &a, &given, "asked", json),
                Err(e) => fail(e),
            }
        }
        AnalysisCmd::Remove { name } => match store::remove(data, &name) {
            Ok(()) => {
                eprintln!("removed analysis {name}");
                true
            }
            Err(e) => fail(e),
        },
    }
}
