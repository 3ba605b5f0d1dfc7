//! `quarry eval`: a suite's questions asked of the analyst as `ask` would
//! (each about its own files' tables, in a fresh conversation), each answer
//! scored by `quarry-eval` and appended to `OUT/records.jsonl` at once, then
//! the summary written as `OUT/summary.json` and `OUT/summary.md` (and
//! printed). Started again with the same OUT, a run asks only what has no
//! record yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt;
use quarry_agent::{Analyst, Answer, AskOptions, Conversation};
use quarry_eval::summary::{append_record, read_records};
use quarry_eval::{score, Case, Record, Suite, Summary};
use quarry_ingest::IngestOptions;
use quarry_llm::CancellationToken;

use crate::args::EvalKind;
use crate::loading::load_files_named;
use crate::{fail, printable, AskArgs};

/// What `quarry eval` was asked to run.
pub(crate) struct EvalRun {
    pub kind: EvalKind,
    pub file: Option<PathBuf>,
    pub suite_dir: Option<PathBuf>,
    pub limit: Option<usize>,
    pub ids: Vec<String>,
    pub concurrency: usize,
    pub out: PathBuf,
}

fn suite(run: &EvalRun) -> Result<Suite, String> {
    let suite = match (run.kind, &run.file, &run.suite_dir) {
        (EvalKind::Dabench, _, Some(dir)) => Suite::dabench(dir)?,
        (EvalKind::Dabench, _, None) => return Err("eval dabench needs --suite-dir DIR (DABench's dev set)".into()),
        (EvalKind::Suite, Some(f), _) => Suite::from_file(f)?,
        (EvalKind::Suite, None, _) => return Err("eval suite needs the suite FILE (YAML or JSON)".into()),
    };
    suite.select(&run.ids, run.limit)
}

/// Load every file the cases name (unchanged files are skipped): the tables
/// each became, or why it could not be loaded (its questions are then
/// recorded as not answered; the run goes on).
fn load_all(cases: &[&Case], data: &Path, opts: &IngestOptions) -> HashMap<PathBuf, Result<Vec<String>, String>> {
    let mut tables = HashMap::new();
    for f in cases.iter().flat_map(|c| c.files.iter()) {
        if tables.contains_key(f) {
            continue;
        }
        let names = load_files_named(std::slice::from_ref(f), data, opts)
            .ok_or_else(|| format!("{}: the file could not be loaded", f.display()));
        tables.insert(f.clone(), names);
    }
    tables
}

/// The tables a case is about, or why its files could not be loaded.
fn tables_of(case: &Case, loaded: &HashMap<PathBuf, Result<Vec<String>, String>>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for f in &case.files {
        match loaded.get(f) {
            Some(Ok(names)) => out.extend(names.iter().cloned()),
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(format!("{}: not loaded", f.display())),
        }
    }
    Ok(out)
}

fn record(case: &Case, result: Result<Answer, String>, ms: u64) -> Record {
    let (answer, error) = match result {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e)),
    };
    let text = answer.as_ref().map(|a| a.answer.clone()).unwrap_or_default();
    let s = score(&case.expected, &text, answer.as_ref().and_then(|a| a.table.as_ref()));
    let a = answer.as_ref();
    Record {
        id: case.id.clone(),
        question: case.question.clone(),
        level: case.level.clone(),
        concepts: case.concepts.clone(),
        answer: text,
        code: a.map(|a| a.code.clone()).unwrap_or_default(),
        language: a.map(|a| a.language.clone()).unwrap_or_default(),
        ok: a.is_some_and(|a| a.ok),
        attempts: a.map_or(0, |a| a.attempts),
        input_tokens: a.map_or(0, |a| a.provenance.input_tokens),
        output_tokens: a.map_or(0, |a| a.provenance.output_tokens),
        ms,
        score: s,
        error,
    }
}

async fn ask_case(analyst: &Analyst, case: &Case, opts: Result<AskOptions, String>) -> Record {
    let t0 = Instant::now();
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return record(case, Err(e), 0),
    };
    let mut conv = Conversation::default();
    let r = analyst.ask(&mut conv, &case.question, &opts, &mut |_| {}, &CancellationToken::new()).await;
    record(case, r.map_err(|e| e.message), t0.elapsed().as_millis() as u64)
}

pub(crate) fn run(run: &EvalRun, a: &AskArgs, ingest: &IngestOptions) -> bool {
    let suite = match suite(run) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let (data, records_path) = (run.out.join("data"), run.out.join("records.jsonl"));
    if let Err(e) = std::fs::create_dir_all(&run.out) {
        return fail(format!("{}: {e}", run.out.display()));
    }
    let done = match read_records(&records_path) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let todo: Vec<&Case> = suite.cases.iter().filter(|c| !done.iter().any(|r| r.id == c.id)).collect();
    if !done.is_empty() {
        eprintln!(
            "resuming: {} of {} questions already scored in {}",
            done.len(),
            suite.cases.len(),
            records_path.display()
        );
    }
    let loaded = load_all(&todo, &data, ingest);
    let k = run.concurrency.max(1);
    let (analyst, limits, model) = match crate::ask::assemble(a, &data, k.max(2)) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("the runtime could not start: {e}")),
    };
    let opts_for = |c: &Case| {
        tables_of(c, &loaded).map(|tables| AskOptions {
            privacy: a.privacy,
            max_attempts: a.max_attempts.max(1),
            protocol: a.protocol,
            limits: limits.clone(),
            use_cache: !a.no_cache,
            tables,
            ..AskOptions::default()
        })
    };
    let total = todo.len();
    let mut written_ok = true;
    rt.block_on(async {
        let mut stream =
            futures_util::stream::iter(todo.iter().map(|c| ask_case(&analyst, c, opts_for(c)))).buffer_unordered(k);
        let mut n = 0;
        while let Some(r) = stream.next().await {
            n += 1;
            eprintln!(
                "[{n}/{total}] {}: {}/{} right ({:.1} s)",
                printable(&r.id),
                r.score.right,
                r.score.total,
                r.ms as f64 / 1000.0
            );
            if let Err(e) = append_record(&records_path, &r) {
                written_ok = fail(e);
            }
        }
    });
    summarize(&suite, &model, a.privacy.as_str(), &run.out) && written_ok
}

/// The summary of every record so far (for the suite's cases), written and printed.
fn summarize(suite: &Suite, model: &str, privacy: &str, out: &Path) -> bool {
    let records = match read_records(&out.join("records.jsonl")) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let records: Vec<Record> = records.into_iter().filter(|r| suite.cases.iter().any(|c| c.id == r.id)).collect();
    let summary = Summary::of(&suite.name, model, privacy, &records);
    let md = summary.markdown(&records);
    let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
    for (name, text) in [("summary.json", json.as_str()), ("summary.md", md.as_str())] {
        if let Err(e) = std::fs::write(out.join(name), text) {
            return fail(format!("{}: {e}", out.join(name).display()));
        }
    }
    println!("{md}");
    eprintln!("records: {}; summary: {}", out.join("records.jsonl").display(), out.join("summary.md").display());
    true
}
