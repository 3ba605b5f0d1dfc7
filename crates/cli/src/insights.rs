//! `quarry insights FILE|TABLE…`: the insights pass (no model) over the
//! tables named, or the tables the files became, printed ranked or as JSON.

use std::path::{Path, PathBuf};

use quarry_agent::insights::{stored_or_analyse, Insights};
use quarry_ingest::IngestOptions;
use quarry_sandbox::Limits;

use crate::loading::{load_files_named, open_repaired};
use crate::{fail, printable};

/// The tables the targets name: files are loaded (the tables they became), names are looked up.
fn tables(targets: &[String], data: &Path, opts: &IngestOptions) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for t in targets {
        let p = PathBuf::from(t);
        if p.is_file() {
            out.extend(load_files_named(&[p], data, opts).ok_or_else(|| format!("{t}: not loaded"))?);
        } else {
            out.push(t.clone());
        }
    }
    Ok(out)
}

pub(crate) fn run(targets: &[String], data: &Path, as_json: bool, opts: &IngestOptions) -> bool {
    let names = match tables(targets, data, opts) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let catalog = match open_repaired(data) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let kernel = match crate::loading::sql_worker(data) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let mut all: Vec<Insights> = Vec::new();
    for name in &names {
        let entry = match catalog.entry(name, None) {
            Ok(e) => e,
            Err(_) => return fail(format!("{}: no such file or table in {}", printable(name), data.display())),
        };
        all.push(stored_or_analyse(data, &entry, &kernel, &Limits::default()));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return true;
    }
    for ins in &all {
        print(ins);
    }
    true
}

fn print(ins: &Insights) {
    println!("{} (v{}, {} rows): {} finding(s)", ins.table, ins.version, ins.rows, ins.findings.len());
    for f in &ins.findings {
        println!("\n  {} — {}", f.kind.label(), printable(&f.text));
        println!("    {}", f.sql.replace('\n', " "));
    }
    for s in &ins.skipped {
        println!("\n  (not checked: {s})");
    }
    println!();
}
