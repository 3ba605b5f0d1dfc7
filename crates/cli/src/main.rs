//! `quarry`: the command-line sink of the pipeline.
//!
//! Subcommands map onto library calls: `load` → `Catalog::load`, `profile` →
//! `quarry_ingest::prepare` + stats, `tables` → the catalog, `demo` → the
//! generated demo data loaded and profiled. Nothing here parses files or runs
//! queries itself.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod analysis;
mod args;
mod ask;
mod cluster;
mod connect;
mod define;
mod engine;
mod eval;
mod gen;
mod insights;
mod loading;
mod pack;

use loading::{catalog_workers, open_repaired};
mod python;
mod render;
mod serve;
mod sql;
mod watch;

use args::{AskArgs, Cli, Cmd, UserCmd, WebArgs};
use clap::Parser;
use quarry_ingest::catalog::{Catalog, Outcome, TableEntry};
use quarry_ingest::stats::{ColumnStats, TableStats};
use quarry_ingest::worker::IngestWorkers;
use quarry_ingest::{IngestOptions, LayoutChoice, Note, Progress};
use serde_json::{json, Value};

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

    /// Run `work` on `path` with a progress bar drawn while it runs.
    pub(crate) fn around<T>(path: &Path, work: impl FnOnce(&Bar) -> T) -> T {
        let bar = Bar::for_file(path);
        let r = work(&bar);
        bar.done();
        r
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
    let opts = cli.ingest_options();
    let ok = match cli.cmd {
        Cmd::Load { files, data, json, layout } => cmd_load(&files, &data, json, &opts, layout.choice()),
        Cmd::Profile { files, json, layout } => cmd_profile(&files, json, &opts, layout.choice()),
        Cmd::Tables { data, json } => cmd_tables(&data, json),
        Cmd::Excluded { table, data } => cmd_excluded(&table, &data),
        Cmd::Demo { dir, data, no_serve, port, py } => cmd_demo(&dir, &data, no_serve, port, &py, &opts),
        Cmd::Serve {
            port,
            bind,
            data,
            no_python,
            config,
            questions_per_minute,
            requests_per_minute,
            watch,
            web,
            engine,
            py,
        } => serve::cmd_serve(serve::Serve {
            web,
            engine,
            data: &data,
            bind,
            port,
            demo_files: Vec::new(),
            py: &py,
            no_python,
            config: &config,
            questions_per_minute,
            requests_per_minute,
            ingest: &opts,
            watch,
        }),
        Cmd::User { cmd: UserCmd::Add { name, admin }, data } => serve::cmd_user_add(&data, &name, admin),
        Cmd::User { cmd: UserCmd::Token { name }, data } => serve::cmd_user_token(&data, &name),
        Cmd::Cluster { cmd } => cluster::cmd_cluster(cmd),
        Cmd::Gen { kind, out, rows } => gen::cmd_gen(&kind, &out, rows),
        Cmd::Sql { files, query, data, format, out, time_limit, memory_limit, max_rows, max_live_rows, engine } => {
            let limits = quarry_sandbox::Limits {
                memory_bytes: memory_limit << 20,
                address_space_bytes: ((memory_limit as u64) << 20) + (2 << 30),
                time: std::time::Duration::from_secs_f64(time_limit.max(0.1)),
                max_rows,
                max_live_rows,
                ..quarry_sandbox::Limits::default()
            };
            match engine.target(Path::new("quarry.toml")) {
                Ok(target) => sql::cmd_sql(&files, &query, &data, (&format, out.as_deref()), (&limits, &target), &opts),
                Err(e) => fail(e),
            }
        }
        Cmd::Worker { kind, spec, data, engine } => {
            return cmd_worker(&kind, spec.as_deref(), data.as_deref(), engine.as_deref())
        }
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
        Cmd::Ask { mut args, ask, json, save_as, params } => {
            let question = args.pop().unwrap_or_default();
            let files: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
            let save = save_as.as_deref().map(|n| (n, params.as_slice()));
            ask::run(&files, Some(&question), &ask, json, &opts, save)
        }
        Cmd::Chat { files, ask } => ask::run(&files, None, &ask, false, &opts, None),
        Cmd::Analysis { what, data } => analysis::run(what, &data),
        Cmd::Pack { what, data } => pack::run(what, &data),
        Cmd::Watch { dir, data, every, once } => watch::run(&dir, &data, every, once, &opts),
        Cmd::BenchAsk { data, n } => ask::bench(&data, n),
        Cmd::Define { what, data } => define::run(what, &data),
        Cmd::Connect { name, url, password_env, list, remove, data } => {
            connect::run(connect::Request { name, url, password_env, list, remove }, &data)
        }
        Cmd::Snapshot { table, filter, name, max_rows, data } => {
            let s = connect::Snapshot { table, filter, name, max_rows };
            connect::snapshot(&s, &data, &opts)
        }
        Cmd::Insights { targets, data, json, explain, privacy, llm } => {
            let explain = explain.then_some(insights::Explain { privacy, llm });
            insights::run(&targets, &data, json, explain.as_ref(), &opts)
        }
        Cmd::Eval { kind, file, suite_dir, limit, ids, concurrency, out, ask } => {
            let run = eval::EvalRun { kind, file, suite_dir, limit, ids, concurrency, out };
            eval::run(&run, &ask, &opts)
        }
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

fn cmd_load(files: &[PathBuf], data: &Path, as_json: bool, opts: &IngestOptions, choice: Option<LayoutChoice>) -> bool {
    let workers = match catalog_workers(data, opts) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut ok = true;
    let mut reports = Vec::new();
    let (mut changed, mut new) = (Vec::new(), Vec::new());
    for f in files {
        let shown = f.display().to_string();
        match Bar::around(f, |bar| workers.load_as(f, &shown, opts, choice.as_ref(), bar, &|| false)) {
            Ok(report) => {
                changed.extend(
                    report.tables.iter().filter(|l| l.outcome == Outcome::NewVersion).map(|l| l.table.name.clone()),
                );
                new.extend(report.tables.iter().filter(|l| l.outcome == Outcome::New).map(|l| l.table.name.clone()));
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
    analysis::rerun_after_load(data, &changed, &new);
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
fn cmd_profile(files: &[PathBuf], as_json: bool, opts: &IngestOptions, choice: Option<LayoutChoice>) -> bool {
    let workers = match quarry_sandbox::Launcher::current() {
        Ok(l) => IngestWorkers::profiling(l, opts.worker_limits()),
        Err(e) => return fail(e),
    };
    let mut ok = true;
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match Bar::around(f, |bar| workers.profile(f, opts, choice.as_ref(), bar)) {
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
        let names: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
        return cmd_load(&files, data, false, opts, None)
            && cmd_profile(&files, false, opts, None)
            && insights::run(&names, data, false, None, opts);
    }
    let files: Vec<PathBuf> = files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())).collect();
    serve::cmd_serve(serve::Serve {
        web: WebArgs {
            session_idle_hours: quarry_server::ServerConfig::SESSION_IDLE_HOURS,
            session_max_days: quarry_server::ServerConfig::SESSION_MAX_DAYS,
            ..WebArgs::default()
        },
        engine: args::EngineArgs::default(),
        data,
        bind: std::net::IpAddr::from([127, 0, 0, 1]),
        port,
        demo_files: files,
        py,
        no_python: false,
        config: Path::new("quarry.toml"),
        questions_per_minute: quarry_server::ServerConfig::QUESTIONS_PER_MINUTE,
        requests_per_minute: quarry_server::ServerConfig::REQUESTS_PER_MINUTE,
        ingest: opts,
        watch: None,
    })
}

/// Worker mode: runs inside the process the launcher started.
fn cmd_worker(kind: &str, spec: Option<&str>, data: Option<&Path>, engine: Option<&str>) -> ExitCode {
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
        "sql" => match quarry_engine::EngineTarget::parse(engine.unwrap_or("local")) {
            Ok(target) => quarry_engine::worker::serve(data, &target, &mut input, &mut out),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
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
