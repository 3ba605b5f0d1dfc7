//! `quarry insights FILE|TABLE…`: the insights pass (no model) over the
//! tables named, or the tables the files became, printed ranked or as JSON;
//! with `--explain`, a model's summary too, where privacy allows.

use std::path::{Path, PathBuf};

use quarry_agent::insights::{phrase, stored_or_analyse, Insights};
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

/// `--explain`: the model summarises the findings, in this privacy mode.
pub(crate) struct Explain {
    pub privacy: quarry_agent::Privacy,
    pub llm: crate::args::LlmArgs,
}

/// The model's summary of each table's findings (`None` where a table has none).
/// (`run` has refused already where privacy does not allow it.)
fn explain(e: &Explain, all: &[Insights]) -> Result<Vec<Option<phrase::Phrased>>, String> {
    let (cfg, _) = crate::ask::llm_config(&e.llm.overrides(), &e.llm.config)?;
    let client = quarry_llm::Client::new(cfg).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let cancel = quarry_llm::CancellationToken::new();
    all.iter()
        .map(|ins| {
            if ins.findings.is_empty() {
                return Ok(None);
            }
            rt.block_on(phrase::phrase(&client, ins, e.privacy, &cancel)).map(Some)
        })
        .collect()
}

pub(crate) fn run(
    targets: &[String],
    data: &Path,
    as_json: bool,
    explained: Option<&Explain>,
    opts: &IngestOptions,
) -> bool {
    if let Some(why) = explained.and_then(|e| phrase::refused(e.privacy)) {
        return fail(format!("--explain: {why}"));
    }
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
    let summaries = match explained.map(|e| explain(e, &all)).transpose() {
        Ok(s) => s.unwrap_or_else(|| vec![None; all.len()]),
        Err(e) => return fail(e),
    };
    if as_json {
        let out: Vec<serde_json::Value> = all
            .iter()
            .zip(&summaries)
            .map(|(ins, s)| {
                let mut v = serde_json::to_value(ins).unwrap_or_default();
                if let Some(s) = s {
                    v["summary"] = serde_json::to_value(s).unwrap_or_default();
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return true;
    }
    for (ins, s) in all.iter().zip(&summaries) {
        print(ins);
        if let Some(s) = s {
            println!("  In {}'s words (the numbers are the findings'):\n  {}\n", s.model, printable(&s.text));
        }
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
