//! `quarry ask` and `quarry chat`: the analyst's terminal sink. Progress
//! (steps, attempts, a spinner) goes to stderr when it is a terminal; the
//! code, the table and the answer (or `--json`) go to stdout.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quarry_agent::{Analyst, Answer, AskOptions, Conversation, Event};
use quarry_engine::worker::SqlWorkers;
use quarry_ingest::catalog::Catalog;
use quarry_ingest::IngestOptions;
use quarry_llm::{CancellationToken, Client, LlmConfig, LlmOverrides};
use quarry_report::{Format, Report, Source};
use quarry_sandbox::{Launcher, Limits};
use serde_json::Value;

use crate::loading::load_files_named;
use crate::render::render_table;
use crate::{fail, AskArgs};

/// `save`: with `--save-as NAME`, the analysis to save the answer as, and the `--param` flags.
pub fn run(
    files: &[PathBuf],
    question: Option<&str>,
    a: &AskArgs,
    as_json: bool,
    opts: &IngestOptions,
    save: Option<(&str, &[String])>,
) -> bool {
    let (privacy, protocol) = (a.privacy, a.protocol);
    if let Some(path) = &a.export {
        if let Err(e) = Format::parse(path.extension().and_then(|e| e.to_str()).unwrap_or_default()) {
            return fail(format!("--export {}: {e}", path.display()));
        }
    }
    let (analyst, limits, _) = match assemble(a, &a.data, 2) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    // A question about named files is about the tables they became.
    let Some(tables) = load_files_named(files, &a.data, opts) else { return false };
    match Catalog::open(&a.data).and_then(|c| c.tables()) {
        Ok(t) if t.is_empty() && quarry_ingest::sources::load(&a.data).map_or(true, |s| s.is_empty()) => {
            return fail(format!(
                "{}: no tables — name files to load before the question, or `quarry connect` a database",
                a.data.display()
            ))
        }
        Ok(_) => {}
        Err(e) => return fail(e),
    }
    let ask_opts = AskOptions {
        privacy,
        max_attempts: a.max_attempts.max(1),
        protocol,
        limits,
        use_cache: !a.no_cache,
        emit_prompt: a.show_prompt,
        tables: if a.all_tables { Vec::new() } else { tables },
        ..AskOptions::default()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("the runtime could not start: {e}")),
    };
    let mut conv = Conversation::default();
    let mut answers = Vec::new();
    let mut ask = |q: &str, as_json: bool| -> bool {
        let Some(answer) = ask_once(&rt, &analyst, &mut conv, q, &ask_opts, as_json, a.figures.as_deref()) else {
            return false;
        };
        let ok = answer.ok;
        answers.push(answer);
        if let Some(path) = &a.export {
            if let Err(e) = export(path, &answers, &a.data) {
                return fail(format!("{}: {e}", path.display()));
            }
            eprintln!("exported: {}", path.display());
        }
        ok
    };
    match question {
        Some(q) => {
            let ok = ask(q, as_json);
            match (save, answers.last()) {
                (Some((name, params)), Some(answer)) if ok => {
                    crate::analysis::save_answer(&a.data, name, answer, params)
                }
                (Some(_), _) => fail("the answer was not saved as an analysis: the question was not answered"),
                (None, _) => ok,
            }
        }
        None => {
            let stdin = std::io::stdin();
            let interactive = stdin.is_terminal();
            if interactive {
                eprintln!("Ask a question about your tables (empty line or Ctrl-D to quit).");
            }
            let mut ok = true;
            loop {
                if interactive {
                    eprint!("\n> ");
                    let _ = std::io::stderr().flush();
                }
                let mut line = String::new();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let q = line.trim();
                if q.is_empty() || q == "exit" || q == "quit" {
                    break;
                }
                ok &= ask(q, false);
            }
            ok
        }
    }
}

/// The model from flags, environment or `quarry.toml`; with none set, a
/// model server found running on this machine (Ollama, LM Studio,
/// llama.cpp, vLLM), said on stderr. Also every local model found.
pub(crate) fn llm_config(flags: &LlmOverrides, file: &Path) -> Result<(LlmConfig, Vec<String>), String> {
    match LlmConfig::from_env(flags, Some(file)) {
        Ok(c) => Ok((c, Vec::new())),
        Err(e) => {
            let found = quarry_llm::discover::local_servers_blocking();
            let Some(cfg) = quarry_llm::discover::configured(&found, flags, Some(file)) else {
                return Err(e.to_string());
            };
            eprintln!(
                "note: no model is configured; using {} at {}, found running here (set QUARRY_LLM_MODEL to choose another)",
                cfg.model, cfg.base_url
            );
            let all = found.iter().flat_map(|f| f.models.iter().cloned()).collect();
            Ok((cfg, all))
        }
    }
}

/// The analyst as `ask`, `chat` and `eval` use it, over `data`: the model
/// from flags, environment or `quarry.toml`, `workers` SQL workers, Python
/// when its runtime is ready; with the per-query limits and the model's name.
pub(crate) fn assemble(a: &AskArgs, data: &Path, workers: usize) -> Result<(Analyst, Limits, String), String> {
    let (cfg, _) = llm_config(&a.llm.overrides(), &a.llm.config)?;
    let model = cfg.model.clone();
    let client = Client::new(cfg).map_err(|e| e.to_string())?;
    let launcher = Launcher::current().map_err(|e| e.to_string())?;
    let limits = Limits {
        time: Duration::from_secs_f64(a.time_limit.max(0.1)),
        max_live_rows: a.max_live_rows,
        ..Limits::default()
    };
    let target = a.engine.target(&a.llm.config)?;
    let kernel = SqlWorkers::on(&target, launcher, data, limits.clone(), workers);
    let python = if a.no_python {
        None
    } else if a.py.runtime().is_ready() {
        let py_limits = Limits { time: limits.time, ..Limits::for_python() };
        crate::python::start_kernels(&a.py, py_limits, true)
            .map_err(|e| eprintln!("note: Python is not offered to the model: {e}"))
            .ok()
    } else {
        eprintln!("note: SQL only — run `quarry setup-python` once to let the analyst use Python too");
        None
    };
    let analyst = Analyst::assemble(Arc::new(client), Arc::new(kernel), data, &data.join("answers"), python);
    Ok((analyst, limits, model))
}

/// Live progress on stderr.
struct Progress {
    spinner: Option<indicatif::ProgressBar>,
    show_prompt: bool,
}

impl Progress {
    fn new(show_prompt: bool) -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        });
        Progress { spinner, show_prompt }
    }

    fn say(&self, msg: impl Into<String>) {
        if let Some(s) = &self.spinner {
            s.set_message(msg.into());
        }
    }

    fn print(&self, line: &str) {
        match &self.spinner {
            Some(s) => s.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn on(&self, e: &Event) {
        match e {
            Event::Started { model, privacy, .. } => {
                self.say(format!("asking {model} (privacy {})…", privacy.as_str()))
            }
            Event::ContextBuilt { tables, columns, omitted_columns, .. } => self.say(format!(
                "context: {} table(s), {columns} columns{} — waiting for the model…",
                tables.len(),
                if *omitted_columns > 0 { format!(" (+{omitted_columns} not described)") } else { String::new() }
            )),
            Event::Prompt { system, question } if self.show_prompt => {
                self.print(&format!("── prompt (system) ──\n{system}\n── prompt (user) ──\n{question}\n──"));
            }
            Event::Plan { text } => self.print(&format!("plan: {text}")),
            Event::CodeProposed { step, attempt, code, .. } => {
                self.print(&format!("step {step}, attempt {attempt}:\n{}", indent(code)));
                self.say(format!("running step {step} in the sandbox…"));
            }
            Event::Refused { message, .. } => self.print(&format!("  refused: {message}")),
            Event::Output { text, figures, .. } => {
                if !text.trim().is_empty() {
                    self.print(&format!("  output:\n{}", indent(text.trim_end())));
                }
                if !figures.is_empty() {
                    self.print(&format!("  {} figure(s)", figures.len()));
                }
            }
            Event::Failed { message, attempt, .. } if *attempt > 0 => self.print(&format!("  failed: {message}")),
            Event::Retrying { attempt, max_attempts, .. } => {
                self.say(format!("asking the model for a fix (attempt {} of {max_attempts})…", attempt + 1))
            }
            Event::Executed { rows, elapsed_ms, truncated, .. } => {
                self.print(&format!(
                    "  ok: {rows} rows{} in {elapsed_ms} ms",
                    if *truncated { " (truncated)" } else { "" }
                ));
                self.say("waiting for the model…");
            }
            Event::EmptyFilter { column, value, closest } => self.print(&format!(
                "  note: no row has {column} = '{value}'{}",
                if closest.is_empty() { String::new() } else { format!("; closest: {}", closest.join(", ")) }
            )),
            Event::Cached { .. } => {
                self.print("(stored answer: same question, data, model and privacy; --no-cache asks again)")
            }
            Event::Cancelled => self.print("cancelled"),
            _ => {}
        }
    }

    fn finish(&self) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
    }
}

fn indent(code: &str) -> String {
    code.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

fn ask_once(
    rt: &tokio::runtime::Runtime,
    analyst: &Analyst,
    conv: &mut Conversation,
    q: &str,
    opts: &AskOptions,
    as_json: bool,
    figures_dir: Option<&Path>,
) -> Option<Answer> {
    let progress = Progress::new(opts.emit_prompt);
    let cancel = CancellationToken::new();
    let q = chosen(conv, q);
    let q = q.as_str();
    let result = rt.block_on(async {
        let c = cancel.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel();
            }
        });
        let r = analyst.ask(conv, q, opts, &mut |e| progress.on(&e), &cancel).await;
        ctrl_c.abort();
        r
    });
    progress.finish();
    match result {
        Ok(a) => {
            if let Some(dir) = figures_dir {
                if let Err(e) = save_figures(&a, dir) {
                    eprintln!("warning: {}: could not save the figures ({e})", dir.display());
                }
            }
            if as_json {
                println!("{}", serde_json::to_string_pretty(&answer_json(&a)).unwrap_or_default());
            } else {
                print_answer(&a);
            }
            Some(a)
        }
        Err(e) => {
            fail(e);
            None
        }
    }
}

/// Writes `answers` to `path` in the format its extension names, with the
/// Parquet files of the data versions they read (for notebooks).
fn export(path: &Path, answers: &[Answer], data: &Path) -> Result<(), String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let format = Format::parse(ext).map_err(|e| e.to_string())?;
    let catalog = Catalog::open(data).map_err(|e| e.to_string())?;
    let sources = Source::for_answers(answers, |t, v| catalog.entry(t, Some(v)).ok().map(|e| e.parquet));
    let title = answers.first().map(|a| a.question.as_str()).unwrap_or("Quarry");
    let report = Report { title, answers, sources: &sources };
    let bytes = match format {
        Format::Pdf => {
            quarry_sandbox::pdf::print(&quarry_report::render(Format::Html, &report).map_err(|e| e.to_string())?)?
        }
        f => quarry_report::render(f, &report).map_err(|e| e.to_string())?,
    };
    std::fs::write(path, bytes).map_err(|e| e.to_string())
}

/// The documented `--json` shape.
fn save_figures(a: &Answer, dir: &Path) -> std::io::Result<()> {
    use base64::Engine;
    std::fs::create_dir_all(dir)?;
    let stem: String = a.question.chars().filter(|c| c.is_ascii_alphanumeric()).take(24).collect();
    for (i, f) in a.figures.iter().enumerate() {
        let png = base64::engine::general_purpose::STANDARD
            .decode(f)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let path = dir.join(format!("{}-{}.png", if stem.is_empty() { "answer" } else { &stem }, i + 1));
        std::fs::write(&path, png)?;
        eprintln!("figure written: {}", path.display());
    }
    Ok(())
}

/// A reply to the analyst's question back that is an option's number, as that option.
fn chosen(conv: &Conversation, reply: &str) -> String {
    let options = conv.pending.as_ref().map(|p| p.options.as_slice()).unwrap_or_default();
    match reply.trim().parse::<usize>() {
        Ok(n) if (1..=options.len()).contains(&n) => options[n - 1].clone(),
        _ => reply.to_string(),
    }
}

/// How a question ended, for `--json`.
fn status(a: &Answer) -> &'static str {
    match (&a.clarify, a.ok) {
        (Some(_), _) => "needs_clarification",
        (None, true) => "answered",
        (None, false) => "failed",
    }
}

fn answer_json(a: &Answer) -> Value {
    serde_json::json!({
        "status": status(a),
        "template": a.template,
        "question": a.question,
        "ok": a.ok,
        "clarify": a.clarify,
        "definitions": a.definitions,
        "answer": a.answer,
        "code": a.code,
        "language": a.language,
        "attempts": a.attempts,
        "table": a.table,
        "chart": a.chart,
        "output": a.output,
        "figures": a.figures,
        "steps": a.steps,
        "provenance": a.provenance,
        "cached": a.cached,
    })
}

fn print_answer(a: &Answer) {
    let mut out = std::io::stdout().lock();
    if let Some(c) = &a.clarify {
        let _ = writeln!(out, "\nThe analyst asks: {}", c.question);
        for (i, o) in c.options.iter().enumerate() {
            let _ = writeln!(out, "  {}. {o}", i + 1);
        }
        let _ = writeln!(
            out,
            "(In `quarry chat`, reply with a number or your own words; with `ask`, ask again naming what you mean.)"
        );
        return;
    }
    if !a.code.is_empty() {
        let _ = writeln!(out, "\n{}:\n{}", a.language, indent(&a.code));
    }
    if let Some(t) = &a.table {
        let _ = writeln!(out, "\n{}", render_table(t, 40));
    }
    if !a.output.trim().is_empty() && a.table.is_none() {
        let _ = writeln!(out, "\n{}", a.output.trim_end());
    }
    if !a.figures.is_empty() {
        let _ = writeln!(
            out,
            "{} figure(s) (--figures DIR saves them; --json carries them as base64 PNG)",
            a.figures.len()
        );
    }
    if let Some(c) = &a.chart {
        let _ = writeln!(
            out,
            "chart: {} of {} (Vega-Lite; `--json` prints the spec)",
            c["mark"]["type"].as_str().unwrap_or("?"),
            c["encoding"]["y"]["field"].as_str().or(c["encoding"]["x"]["field"].as_str()).unwrap_or("?")
        );
    }
    let _ = writeln!(out, "\n{}", a.answer);
    let p = &a.provenance;
    let _ = writeln!(
        out,
        "\n({} · privacy {} · {} attempt{} · {} ms{})",
        p.model,
        p.privacy.as_str(),
        a.attempts,
        if a.attempts == 1 { "" } else { "s" },
        p.total_ms,
        if a.cached { " · stored answer" } else { "" }
    );
}

/// `quarry bench-ask`: time `n` questions over the first table of `data`
/// with an in-process fake LLM that answers at once (a query, then a final
/// answer), warm workers, no cache. Prints JSON: median and p95 per question.
pub fn bench(data: &Path, n: usize) -> bool {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    let tables = match Catalog::open(data).and_then(|c| c.tables()) {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => return fail(format!("{}: no tables", data.display())),
        Err(e) => return fail(e),
    };
    let t = &tables[0];
    let sql = format!("SELECT count(*) AS n FROM \"{}\"", t.name.replace('"', "\"\""));
    let fake = FakeLlm::start(Script {
        replies: vec![
            Reply { turn: Some(0), ..Reply::tool("run_sql", serde_json::json!({"sql": sql})) },
            Reply { turn: Some(1), ..Reply::tool("final_answer", serde_json::json!({"answer": "Rows counted."})) },
        ],
        repeat: true,
    });
    let overrides =
        LlmOverrides { base_url: Some(fake.openai_url()), model: Some("bench".into()), ..LlmOverrides::default() };
    let client = match LlmConfig::resolve(&overrides, &|_| None, None).and_then(Client::new) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let launcher = match Launcher::current() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let kernel = SqlWorkers::new(launcher, data, Limits::default(), 1);
    let analyst = Analyst::new(Arc::new(client), Arc::new(kernel), data);
    let opts = AskOptions { use_cache: false, ..AskOptions::default() };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let mut times = Vec::new();
    for i in 0..n + 3 {
        let t0 = std::time::Instant::now();
        let r = rt.block_on(analyst.ask(
            &mut Conversation::default(),
            "How many rows?",
            &opts,
            &mut |_| {},
            &CancellationToken::new(),
        ));
        match r {
            Ok(a) if a.ok => {}
            Ok(a) => return fail(a.answer),
            Err(e) => return fail(e),
        }
        if i >= 3 {
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}",
        serde_json::json!({"table": t.name, "questions": n, "median_ms": pick(0.5), "p95_ms": pick(0.95), "model_calls_per_question": 2})
    );
    true
}
