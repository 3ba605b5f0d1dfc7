//! `quarry`: the command-line sink of the pipeline.
//!
//! Subcommands map onto library calls: `load` → `Catalog::load`, `profile` →
//! `quarry_ingest::prepare` + stats, `tables` → the catalog, `demo` → the
//! generated demo data loaded and profiled. Nothing here parses files or runs
//! queries itself.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod ask;
mod python;
mod serve;

use clap::{Parser, Subcommand};
use quarry_engine::SqlKernel;
use quarry_ingest::catalog::{self, Catalog, Outcome, TableEntry};
use quarry_ingest::stats::{ColumnStats, TableStats};
use quarry_ingest::worker::IngestWorkers;
use quarry_ingest::{IngestOptions, Note, Progress};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "quarry", version, about = "Self-hosted AI data analyst: load messy tables, ask questions")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load files into the catalog (Parquet + SQLite). Unchanged files are skipped.
    Load {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Data directory holding the catalog.
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Profile files without loading them: tables, columns, types, statistics, notes.
    Profile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the documented JSON shape instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the tables in the catalog.
    Tables {
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the rows ingest kept out of a table (totals, footnotes, ragged rows).
    Excluded {
        table: String,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
    },
    /// Run one read-only SQL query over files (loaded first) or an existing catalog.
    /// The query runs in a separate worker process under limits.
    Sql {
        /// Files to load first (as `quarry load` does); each becomes a table.
        files: Vec<PathBuf>,
        /// The query (a leading `--` comment is fine).
        #[arg(long, short, allow_hyphen_values = true)]
        query: String,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// table, csv, json or parquet.
        #[arg(long, default_value = "table")]
        format: String,
        /// Write the result here instead of standard output (required for parquet).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Wall-clock limit in seconds.
        #[arg(long, default_value_t = 30.0)]
        time_limit: f64,
        /// Memory pool for the query, in MiB.
        #[arg(long, default_value_t = 2048)]
        memory_limit: usize,
        /// Most rows returned.
        #[arg(long, default_value_t = 10_000)]
        max_rows: usize,
    },
    /// Ask a question in plain language: the model writes SQL, Quarry checks
    /// and runs it in a sandboxed worker, repairs failures, and answers.
    Ask {
        /// Files to load first, then the question (last).
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
        #[command(flatten)]
        ask: AskArgs,
        /// Print the final answer object as JSON.
        #[arg(long)]
        json: bool,
    },
    /// An interactive conversation with follow-up questions over FILEs.
    Chat {
        files: Vec<PathBuf>,
        #[command(flatten)]
        ask: AskArgs,
    },
    /// Run a kernel inside a worker process (started by Quarry itself).
    #[command(hide = true)]
    Worker {
        kind: String,
        /// For `jail`: what to run behind the walls (JSON).
        spec: Option<String>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Set up Quarry's Python environment (a venv with pinned pandas, numpy,
    /// scipy, statsmodels, scikit-learn, matplotlib) and test the sandbox.
    SetupPython {
        /// The system Python 3 to build from (default: /usr/bin/python3).
        #[arg(long)]
        python: Option<PathBuf>,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Run Python scripts over FILEs (loaded first) or the catalog, in the
    /// sandboxed kernel the analyst uses: `df` is the table when there is
    /// one, `dfs["name"]` every table, `sql("SELECT …")` runs on the engine.
    /// Several --code scripts run in order in one kernel, like notebook cells.
    Python {
        files: Vec<PathBuf>,
        /// The script to run (repeatable).
        #[arg(long, required = true)]
        code: Vec<PathBuf>,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Print one JSON object per script.
        #[arg(long)]
        json: bool,
        /// Directory for figures (PNG); default the current directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Wall-clock limit per script, in seconds.
        #[arg(long, default_value_t = 30.0)]
        time_limit: f64,
        /// Address space of the kernel, in MiB.
        #[arg(long, default_value_t = 4096)]
        memory_limit: u64,
        #[command(flatten)]
        py: python::PyArgs,
        /// Test-only: skip the AST check to show the OS walls hold alone.
        #[arg(long, hide = true)]
        skip_ast_check: bool,
    },
    /// Measure the warm Python kernel's start against a cold `import pandas`.
    #[command(hide = true)]
    BenchPython {
        #[arg(long, default_value_t = 30)]
        n: usize,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Write the demo dataset (a malaria facility workbook, a population
    /// table, a French CSV, a UTF-16 export) and serve it in the web app.
    Demo {
        /// Where the demo files go.
        #[arg(long, default_value = "quarry-demo")]
        dir: PathBuf,
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Load and profile the files on the terminal instead of serving them.
        #[arg(long)]
        no_serve: bool,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Serve the web app: upload, explore and ask, in the browser.
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on; anything but loopback requires login.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Holds quarry.sqlite and the workspaces.
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        /// Do not offer the model the Python kernel.
        #[arg(long)]
        no_python: bool,
        /// Configuration file with an [llm] table.
        #[arg(long, default_value = "quarry.toml")]
        config: PathBuf,
        /// Questions each user may ask per minute.
        #[arg(long, default_value_t = 30)]
        questions_per_minute: u32,
        /// API requests each user may make per minute.
        #[arg(long, default_value_t = 1200)]
        requests_per_minute: u32,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        py: python::PyArgs,
    },
    /// Accounts for `quarry serve --bind` (login required off loopback).
    User {
        #[command(subcommand)]
        cmd: UserCmd,
        #[arg(long, default_value = catalog::DEFAULT_DIR, global = true)]
        data: PathBuf,
    },
    /// Serve a scripted fake LLM (OpenAI and Anthropic wire protocols) for
    /// tests and demos: replays SCRIPT (JSON or YAML) and records requests.
    FakeLlm {
        /// Port on 127.0.0.1 (0 picks a free one; the URL is printed).
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long)]
        script: PathBuf,
        /// Append every request received to this file as JSON lines.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Measure the analyst's own overhead per question (fake LLM answering at once).
    #[command(hide = true)]
    BenchAsk {
        #[arg(long, default_value = catalog::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long, default_value_t = 50)]
        n: usize,
    },
    /// Generate test and benchmark data.
    #[command(hide = true)]
    Gen {
        /// `csv` or `xlsx`.
        kind: String,
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        rows: usize,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account; the password comes from QUARRY_PASSWORD or standard input.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
    },
    /// Print a new API token for NAME (send it as `Authorization: Bearer …`).
    Token { name: String },
}

/// Who may reach `quarry serve`, and how long logins last.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct WebArgs {
    /// A host name the server answers to besides IP addresses and
    /// localhost (repeatable); other names are refused (DNS rebinding).
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// The URL users reach Quarry at behind a proxy, e.g. https://quarry.example.org
    /// (its host is allowed; https makes the session cookie Secure).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// A login session ends after this many hours unused.
    #[arg(long, default_value_t = 12.0)]
    pub session_idle_hours: f64,
    /// A login session ends this many days after it began.
    #[arg(long, default_value_t = 7.0)]
    pub session_max_days: f64,
}

/// Options shared by `ask` and `chat`.
#[derive(clap::Args, Clone)]
struct AskArgs {
    #[arg(long, default_value = catalog::DEFAULT_DIR)]
    data: PathBuf,
    /// strict (no cell value reaches the model), sample (a few rows) or full (the model reads results).
    #[arg(long, default_value = "strict")]
    privacy: String,
    /// Attempts per step before giving up.
    #[arg(long, default_value_t = 5)]
    max_attempts: usize,
    /// Print the prompt sent to the model.
    #[arg(long)]
    show_prompt: bool,
    /// Ask the model again even when a stored answer exists.
    #[arg(long)]
    no_cache: bool,
    /// tools (native tool calling), json (constrained JSON) or text (fenced ```sql blocks).
    #[arg(long, default_value = "tools")]
    protocol: String,
    /// Wall-clock limit per query, in seconds.
    #[arg(long, default_value_t = 30.0)]
    time_limit: f64,
    /// openai (any OpenAI-compatible server: Ollama, vLLM, llama.cpp, LM Studio, OpenRouter) or anthropic.
    #[arg(long)]
    llm_provider: Option<String>,
    /// e.g. http://localhost:11434/v1 for Ollama.
    #[arg(long)]
    llm_base_url: Option<String>,
    #[arg(long)]
    llm_model: Option<String>,
    /// Prefer QUARRY_LLM_API_KEY or OPENAI_API_KEY/ANTHROPIC_API_KEY: flags show up in process lists.
    #[arg(long)]
    llm_api_key: Option<String>,
    /// Configuration file with an [llm] table.
    #[arg(long, default_value = "quarry.toml")]
    config: PathBuf,
    /// Do not offer the model the Python kernel (SQL only).
    #[arg(long)]
    no_python: bool,
    /// Save figures drawn by Python steps in this directory.
    #[arg(long)]
    figures: Option<PathBuf>,
    /// Write the answers to FILE, by its extension: .html (a self-contained
    /// report), .ipynb (a Jupyter notebook), .json, or .csv/.xlsx (the last
    /// result table). In `chat` it is rewritten after every answer.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    #[command(flatten)]
    py: python::PyArgs,
}

struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub(crate) fn for_file(path: &Path) -> Bar {
        let big = std::fs::metadata(path).map(|m| m.len() > 16 << 20).unwrap_or(false);
        if !big || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Bar(Some(pb))
    }
    pub(crate) fn done(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn advance(&self, phase: &str, done: u64, total: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(total);
            pb.set_position(done);
            pb.set_message(phase.to_string());
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("QUARRY_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let opts = IngestOptions::default();
    let ok = match cli.cmd {
        Cmd::Load { files, data, json } => cmd_load(&files, &data, json, &opts),
        Cmd::Profile { files, json } => cmd_profile(&files, json, &opts),
        Cmd::Tables { data, json } => cmd_tables(&data, json),
        Cmd::Excluded { table, data } => cmd_excluded(&table, &data),
        Cmd::Demo { dir, data, no_serve, port, py } => cmd_demo(&dir, &data, no_serve, port, &py, &opts),
        Cmd::Serve { port, bind, data, no_python, config, questions_per_minute, requests_per_minute, web, py } => {
            serve::cmd_serve(serve::Serve {
                web,
                data: &data,
                bind,
                port,
                demo_files: Vec::new(),
                py: &py,
                no_python,
                config: &config,
                questions_per_minute,
                requests_per_minute,
            })
        }
        Cmd::User { cmd: UserCmd::Add { name, admin }, data } => serve::cmd_user_add(&data, &name, admin),
        Cmd::User { cmd: UserCmd::Token { name }, data } => serve::cmd_user_token(&data, &name),
        Cmd::Gen { kind, out, rows } => cmd_gen(&kind, &out, rows),
        Cmd::Sql { files, query, data, format, out, time_limit, memory_limit, max_rows } => {
            let limits = quarry_sandbox::Limits {
                memory_bytes: memory_limit << 20,
                address_space_bytes: ((memory_limit as u64) << 20) + (2 << 30),
                time: std::time::Duration::from_secs_f64(time_limit.max(0.1)),
                max_rows,
                ..quarry_sandbox::Limits::default()
            };
            cmd_sql(&files, &query, &data, &format, out.as_deref(), &limits, &opts)
        }
        Cmd::Worker { kind, spec, data } => return cmd_worker(&kind, spec.as_deref(), data.as_deref()),
        Cmd::SetupPython { python, py } => python::cmd_setup_python(python.as_deref(), &py),
        Cmd::Python { files, code, data, json, out, time_limit, memory_limit, py, skip_ast_check } => {
            let limits = quarry_sandbox::Limits {
                address_space_bytes: memory_limit << 20,
                time: std::time::Duration::from_secs_f64(time_limit.max(0.1)),
                ..quarry_sandbox::Limits::for_python()
            };
            let run = python::PythonRun {
                files: &files,
                scripts: &code,
                data: &data,
                json,
                out: out.as_deref(),
                limits,
                py: &py,
                ast_check: !skip_ast_check,
            };
            python::cmd_python(run, &opts)
        }
        Cmd::BenchPython { n, py } => python::cmd_bench_python(&py, n),
        Cmd::FakeLlm { port, script, record } => cmd_fake_llm(port, &script, record),
        Cmd::Ask { mut args, ask, json } => {
            let question = args.pop().unwrap_or_default();
            let files: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
            ask::run(&files, Some(&question), &ask, json, &opts)
        }
        Cmd::Chat { files, ask } => ask::run(&files, None, &ask, false, &opts),
        Cmd::BenchAsk { data, n } => ask::bench(&data, n),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn fail(e: impl std::fmt::Display) -> bool {
    eprintln!("error: {}", printable(&e.to_string()));
    false
}

/// Text from a file (names, sheet names, cell values in notes) made safe
/// for a terminal: control characters and bidirectional overrides are
/// written as escapes (`\u{1b}`), so a file name cannot move the cursor,
/// recolour the screen or reorder what follows. Newlines and tabs stay.
pub(crate) fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars().map(|c| if bad(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect(),
    )
}

/// Files are parsed in an ingest worker process, never in this one.
pub(crate) fn ingest_workers(data: &Path) -> Result<IngestWorkers, quarry_sandbox::WorkerError> {
    let launcher = quarry_sandbox::Launcher::current()?;
    Ok(IngestWorkers::new(launcher, data, quarry_sandbox::Limits::for_ingest(), 1))
}

/// Open the catalog, clearing what an interrupted load left behind (with a
/// line saying so).
pub(crate) fn open_repaired(data: &Path) -> quarry_ingest::Result<Catalog> {
    let mut cat = Catalog::open(data)?;
    let removed = cat.repair()?;
    if !removed.is_empty() {
        eprintln!(
            "note: {}: cleared what an interrupted load left: {}",
            data.display(),
            printable(&removed.join(", "))
        );
    }
    Ok(cat)
}

fn cmd_load(files: &[PathBuf], data: &Path, as_json: bool, opts: &IngestOptions) -> bool {
    if let Err(e) = open_repaired(data) {
        return fail(e);
    }
    let workers = match ingest_workers(data) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut ok = true;
    let mut reports = Vec::new();
    for f in files {
        let bar = Bar::for_file(f);
        let r = workers.load(f, opts, &bar);
        bar.done();
        match r {
            Ok(report) => {
                if !as_json {
                    for l in &report.tables {
                        let what = match l.outcome {
                            Outcome::New => "new".to_string(),
                            Outcome::NewVersion => format!("changed → version {}", l.table.version),
                            Outcome::Unchanged => "unchanged".to_string(),
                        };
                        let line = format!(
                            "{}  {} rows × {} columns  ({what})  from {}{}",
                            l.table.name,
                            l.table.rows,
                            l.table.columns.len(),
                            report.file,
                            l.table.sheet.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default()
                        );
                        println!("{}", printable(&line));
                    }
                    for n in &report.notes {
                        println!("  note: {}", printable(&n.text));
                    }
                }
                reports.push(serde_json::to_value(&report).unwrap_or(Value::Null));
            }
            Err(e) => {
                ok = fail(e);
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "loaded": reports })).unwrap_or_default());
    }
    ok
}

/// The documented `profile --json` shape for one table.
fn table_json(
    name: &str,
    source: &str,
    sheet: Option<&str>,
    format: &str,
    stats: &TableStats,
    notes: &[Note],
    excluded: usize,
) -> Value {
    json!({
        "name": name,
        "source": source,
        "sheet": sheet,
        "format": format,
        "rows": stats.rows,
        "columns": stats.columns,
        "notes": notes,
        "excluded_rows": excluded,
    })
}

/// Files are profiled in an ingest worker, under the same limits as a load.
fn cmd_profile(files: &[PathBuf], as_json: bool, opts: &IngestOptions) -> bool {
    let workers = match quarry_sandbox::Launcher::current() {
        Ok(l) => IngestWorkers::profiling(l, quarry_sandbox::Limits::for_ingest()),
        Err(e) => return fail(e),
    };
    let mut ok = true;
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let bar = Bar::for_file(f);
        let result = workers.profile(f, opts, &bar);
        bar.done();
        match result {
            Ok(p) => {
                for t in p.tables {
                    let (meta, stats, notes) = (t.meta, t.stats, t.notes);
                    if !as_json {
                        print_table(&meta.name, &meta.source, meta.sheet.as_deref(), &stats, &notes);
                    }
                    tables.push(table_json(
                        &meta.name,
                        &meta.source,
                        meta.sheet.as_deref(),
                        &meta.format,
                        &stats,
                        &notes,
                        meta.excluded.len(),
                    ));
                }
            }
            Err(e) => {
                errors.push(json!({"file": f.display().to_string(), "error": e.to_string()}));
                ok = fail(e);
            }
        }
    }
    if as_json {
        let out = json!({ "tables": tables, "errors": errors });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    ok
}

fn fmt_value(v: &Option<Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn summary(c: &ColumnStats) -> String {
    if let Some(m) = c.mean {
        format!("{} … {}, mean {:.4}", fmt_value(&c.min), fmt_value(&c.max), m)
    } else if !c.top.is_empty() {
        c.top.iter().take(3).map(|(v, n)| format!("{v} ({n})")).collect::<Vec<_>>().join(", ")
    } else {
        format!("{} … {}", fmt_value(&c.min), fmt_value(&c.max))
    }
}

fn print_table(name: &str, source: &str, sheet: Option<&str>, stats: &TableStats, notes: &[Note]) {
    let mut text = Vec::new();
    write_table(&mut text, name, source, sheet, stats, notes);
    let _ = std::io::stdout().lock().write_all(printable(&String::from_utf8_lossy(&text)).as_bytes());
}

fn write_table(out: &mut Vec<u8>, name: &str, source: &str, sheet: Option<&str>, stats: &TableStats, notes: &[Note]) {
    let _ = writeln!(
        out,
        "\n{name}  —  {} rows × {} columns  from {source}{}",
        stats.rows,
        stats.columns.len(),
        sheet.map(|s| format!(" [{s}]")).unwrap_or_default()
    );
    let w = stats.columns.iter().map(|c| c.name.len()).max().unwrap_or(4).clamp(4, 40);
    let _ = writeln!(out, "  {:<w$}  {:<8}  {:>7}  {:>8}  summary", "name", "type", "nulls", "distinct");
    for c in &stats.columns {
        let label = if quarry_ingest::names::base_name(&c.label) == c.name {
            String::new()
        } else {
            format!("  ‹{}›", c.label)
        };
        let _ = writeln!(
            out,
            "  {:<w$}  {:<8}  {:>7}  {:>8}  {}{}",
            c.name,
            c.dtype.as_str(),
            c.nulls,
            c.distinct,
            summary(c),
            label
        );
    }
    for n in notes {
        let _ = writeln!(out, "  note: {}", n.text);
    }
}

fn cmd_tables(data: &Path, as_json: bool) -> bool {
    let cat = match open_repaired(data) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match cat.tables() {
        Ok(ts) => {
            if as_json {
                let v: Vec<Value> = ts.iter().map(entry_json).collect();
                println!("{}", serde_json::to_string_pretty(&json!({ "tables": v })).unwrap_or_default());
            } else if ts.is_empty() {
                println!("no tables yet: run `quarry load FILE`");
            } else {
                for t in ts {
                    let line = format!(
                        "{}  v{}  {} rows × {} columns  {}{}  data version {}",
                        t.name,
                        t.version,
                        t.rows,
                        t.columns.len(),
                        t.source,
                        t.sheet.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default(),
                        &t.content_hash[..12]
                    );
                    println!("{}", printable(&line));
                }
            }
            true
        }
        Err(e) => fail(e),
    }
}

fn entry_json(t: &TableEntry) -> Value {
    let mut v = table_json(&t.name, &t.source, t.sheet.as_deref(), &t.format, &t.stats, &t.notes, t.excluded.len());
    v["version"] = json!(t.version);
    v["content_hash"] = json!(t.content_hash);
    v["parquet"] = json!(t.parquet.display().to_string());
    v["loaded_at"] = json!(t.loaded_at);
    v
}

fn cmd_excluded(table: &str, data: &Path) -> bool {
    let cat = match Catalog::open(data) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match cat.entry(table, None) {
        Ok(t) => {
            if t.excluded.is_empty() {
                println!("{table}: no rows were kept out");
            }
            for e in &t.excluded {
                let line = format!("row {:>6}  {:<24} {}", e.row, e.reason.describe(), e.cells.join(" | "));
                println!("{}", printable(&line));
            }
            true
        }
        Err(e) => fail(e),
    }
}

fn cmd_demo(dir: &Path, data: &Path, no_serve: bool, port: u16, py: &python::PyArgs, opts: &IngestOptions) -> bool {
    let files = match quarry_testdata::write_demo(dir) {
        Ok(f) => f,
        Err(e) => return fail(format!("{}: could not write the demo files ({e})", dir.display())),
    };
    println!("demo files written to {}", dir.display());
    if no_serve {
        return cmd_load(&files, data, false, opts) && cmd_profile(&files, false, opts);
    }
    let files: Vec<PathBuf> = files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())).collect();
    serve::cmd_serve(serve::Serve {
        web: WebArgs { session_idle_hours: 12.0, session_max_days: 7.0, ..WebArgs::default() },
        data,
        bind: std::net::IpAddr::from([127, 0, 0, 1]),
        port,
        demo_files: files,
        py,
        no_python: false,
        config: Path::new("quarry.toml"),
        questions_per_minute: 30,
        requests_per_minute: 1200,
    })
}

fn cmd_gen(kind: &str, out: &Path, rows: usize) -> bool {
    let r = match kind {
        "csv" => quarry_testdata::write_big_csv(out, rows),
        "xlsx" => quarry_testdata::write_big_xlsx(out, rows),
        other => return fail(format!("unknown kind '{other}': use csv or xlsx")),
    };
    match r {
        Ok(()) => true,
        Err(e) => fail(format!("{}: {e}", out.display())),
    }
}

fn cmd_sql(
    files: &[PathBuf],
    query: &str,
    data: &Path,
    format: &str,
    out: Option<&Path>,
    limits: &quarry_sandbox::Limits,
    opts: &IngestOptions,
) -> bool {
    if !["table", "csv", "json", "parquet"].contains(&format) {
        return fail(format!("unknown format '{format}': use table, csv, json or parquet"));
    }
    if format == "parquet" && out.is_none() {
        return fail("--format parquet needs --out PATH");
    }
    if !files.is_empty() {
        if !ask::load_files(files, data, opts) {
            return false;
        }
    } else if !data.join("catalog.sqlite").exists() {
        return fail(format!("{}: no catalog here — load files first, or name them before --query", data.display()));
    }
    let launcher = match quarry_sandbox::Launcher::current() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let workers = quarry_engine::worker::SqlWorkers::new(launcher, data, limits.clone(), 1);
    let result = match workers.query(query, limits) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let written = write_result(&result, format, out);
    if let Err(e) = written {
        return fail(format!("writing the result failed: {e}"));
    }
    if result.truncated {
        eprintln!("note: showing the first {} rows; the query returned more", result.rows);
    }
    true
}

fn write_result(r: &quarry_engine::QueryResult, format: &str, out: Option<&Path>) -> anyhow::Result<()> {
    if format == "parquet" {
        let path = out.ok_or_else(|| anyhow::anyhow!("--format parquet needs --out PATH"))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, r.schema.clone(), None)?;
        for b in &r.batches {
            w.write(b)?;
        }
        w.close()?;
        return Ok(());
    }
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    match format {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut sink);
            for b in &r.batches {
                w.write(b)?;
            }
        }
        "json" => {
            let mut w = arrow::json::ArrayWriter::new(&mut sink);
            for b in &r.batches {
                w.write(b)?;
            }
            w.finish()?;
            if r.batches.is_empty() {
                sink.write_all(b"[]")?;
            }
            sink.write_all(b"\n")?;
        }
        _ => {
            writeln!(sink, "{}", arrow::util::pretty::pretty_format_batches(&r.batches)?)?;
            writeln!(sink, "({} rows)", r.rows)?;
        }
    }
    sink.flush()?;
    Ok(())
}

/// Worker mode: runs inside the process the launcher started.
fn cmd_worker(kind: &str, spec: Option<&str>, data: Option<&Path>) -> ExitCode {
    if kind == "jail" {
        match serde_json::from_str(spec.unwrap_or_default()) {
            Ok(spec) => quarry_sandbox::jail::enter(spec),
            Err(e) => {
                eprintln!("quarry-jail: bad spec: {e}");
                return ExitCode::from(quarry_sandbox::jail::JAIL_REFUSED as u8);
            }
        }
    }
    if kind == "ingest" {
        let (mut input, mut out) = (std::io::stdin().lock(), std::io::stdout().lock());
        return ExitCode::from(quarry_ingest::worker::serve(data, &mut input, &mut out) as u8);
    }
    let Some(data) = data else {
        eprintln!("error: worker {kind} needs --data");
        return ExitCode::from(2);
    };
    let (mut input, mut out) = (std::io::stdin().lock(), std::io::stdout().lock());
    let code = match kind {
        "sql" => quarry_engine::worker::serve(data, &mut input, &mut out),
        _ => {
            eprintln!("error: unknown worker kind '{kind}'");
            2
        }
    };
    ExitCode::from(code as u8)
}

fn cmd_fake_llm(port: u16, script: &Path, record: Option<PathBuf>) -> bool {
    let script = match quarry_fake_llm::Script::from_file(script) {
        Ok(s) => s,
        Err(e) => return fail(format!("{e} — see `quarry fake-llm --help` for the script format")),
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let fake = match quarry_fake_llm::FakeLlm::start_on(addr, script, record) {
        Ok(f) => f,
        Err(e) => return fail(format!("127.0.0.1:{port}: could not listen ({e})")),
    };
    println!("fake LLM listening: OpenAI-compatible at {} , Anthropic at {}", fake.openai_url(), fake.anthropic_url());
    let _ = std::io::stdout().flush();
    fake.wait();
    true
}
