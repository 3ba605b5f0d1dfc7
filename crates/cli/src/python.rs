//! `quarry setup-python`, `quarry python` and `quarry bench-python`: the
//! Python kernel from the command line, through the same checks and sandbox
//! the analyst uses.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quarry_agent::python::{decode, EngineData};
use quarry_ingest::catalog::Catalog;
use quarry_ingest::IngestOptions;
use quarry_sandbox::python::{
    DataAccess, PyRun, PythonConfig, PythonError, PythonKernels, RunRequest, Runtime, SetupProgress,
};
use quarry_sandbox::{Launcher, Limits};
use serde_json::{json, Value};

use crate::fail;

/// Where the Python runtime lives and how strictly it is walled; shared by
/// every command that may run Python.
#[derive(clap::Args, Clone, Debug)]
pub struct PyArgs {
    /// Directory of Quarry's Python environment (default: /var/lib/quarry/python
    /// as root, else ~/.local/share/quarry/python).
    #[arg(long, env = "QUARRY_PYTHON_HOME")]
    pub python_home: Option<PathBuf>,
    /// Run Python even where this machine cannot raise every sandbox wall
    /// (namespaces, Landlock, seccomp), with those it can. Not for untrusted use.
    #[arg(long)]
    pub unsafe_python: bool,
}

impl PyArgs {
    pub fn runtime(&self) -> Runtime {
        let home = self.python_home.clone().unwrap_or_else(|| {
            Runtime::default_home(
                std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            )
        });
        Runtime::new(home)
    }

    /// The one place a [`PythonConfig`] is assembled from flags.
    pub fn config(&self, limits: Limits) -> PythonConfig {
        let mut cfg = PythonConfig::new(self.runtime());
        cfg.limits = limits;
        cfg.walls.best_effort = self.unsafe_python;
        cfg
    }
}

/// Build the runtime if it is missing, with a progress bar on a terminal.
pub fn ensure_runtime(runtime: &Runtime, python: Option<&Path>) -> Result<(), PythonError> {
    if runtime.is_ready() {
        return Ok(());
    }
    let tty = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(0);
    if tty {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    eprintln!("Setting up Quarry's Python environment in {} (once; a few minutes)…", runtime.home().display());
    let r = runtime.setup(python, &mut |p| match p {
        SetupProgress::Step(s) => {
            if tty {
                bar.set_message(s);
            } else {
                eprintln!("  {s}");
            }
        }
        SetupProgress::Package { done, total, name } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("downloading {name}"));
        }
    });
    bar.finish_and_clear();
    r.map(|info| eprintln!("Python {} ready ({})", info.version, runtime.dir().display()))
}

pub fn cmd_setup_python(python: Option<&Path>, py: &PyArgs) -> bool {
    let runtime = py.runtime();
    if let Err(e) = ensure_runtime(&runtime, python) {
        return fail(e);
    }
    // Show which walls hold here, so a refusal later is no surprise.
    let launcher = match Launcher::current() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let mut walls = py.config(Limits::for_python()).walls;
    walls.read = runtime.read_paths();
    match quarry_sandbox::jail::probe(&launcher, &walls) {
        Ok(r) => {
            println!("sandbox walls on this machine:");
            println!("  user      {}", r.uid);
            println!("  namespaces {}", r.namespaces.as_ref().map(|_| "up".to_string()).unwrap_or_else(|e| e.clone()));
            println!("  Landlock  {}", r.landlock.as_ref().map(|s| format!("up ({s})")).unwrap_or_else(|e| e.clone()));
            println!("  seccomp   {}", r.seccomp.as_ref().map(|_| "up".to_string()).unwrap_or_else(|e| e.clone()));
            if !r.all_up() {
                eprintln!(
                    "warning: Python will refuse to run here without --unsafe-python: {} cannot be raised",
                    r.missing().join(", ")
                );
            }
            true
        }
        Err(e) => fail(format!("could not test the sandbox: {e}")),
    }
}

/// Options of `quarry python`.
pub struct PythonRun<'a> {
    pub files: &'a [PathBuf],
    pub scripts: &'a [PathBuf],
    pub data: &'a Path,
    pub json: bool,
    pub out: Option<&'a Path>,
    pub limits: Limits,
    pub py: &'a PyArgs,
    pub ast_check: bool,
}

/// Start the kernels for `quarry python`/`ask`, setting the runtime up first if needed.
pub fn start_kernels(py: &PyArgs, limits: Limits, ast_check: bool) -> Result<Arc<PythonKernels>, PythonError> {
    let cfg = PythonConfig { ast_check, ..py.config(limits) };
    ensure_runtime(&cfg.runtime, None)?;
    let launcher = Launcher::current().map_err(PythonError::Worker)?;
    PythonKernels::start(launcher, cfg).map(Arc::new)
}

/// Python kernels started on first use, for saved Python analyses: the
/// runtime of `QUARRY_PYTHON_HOME` (or the default home), every wall.
#[derive(Default)]
pub struct LazyKernels {
    cell: std::sync::OnceLock<Result<Arc<PythonKernels>, String>>,
}

impl LazyKernels {
    fn kernels(&self) -> Result<&Arc<PythonKernels>, PythonError> {
        let started = self.cell.get_or_init(|| {
            let py =
                PyArgs { python_home: std::env::var_os("QUARRY_PYTHON_HOME").map(PathBuf::from), unsafe_python: false };
            start_kernels(&py, Limits::for_python(), true).map_err(|e| e.to_string())
        });
        started.as_ref().map_err(|e| PythonError::Unavailable(e.clone()))
    }
}

impl quarry_agent::analyses::PythonRunner for LazyKernels {
    fn run(&self, session: &str, req: &RunRequest<'_>, data: &dyn DataAccess) -> Result<PyRun, PythonError> {
        self.kernels()?.run(session, req, data)
    }

    fn end(&self, session: &str) {
        if let Some(Ok(k)) = self.cell.get() {
            k.end(session);
        }
    }
}

pub fn cmd_python(run: PythonRun<'_>, opts: &IngestOptions) -> bool {
    let mut codes = Vec::new();
    for s in run.scripts {
        match std::fs::read_to_string(s) {
            Ok(c) => codes.push((s.display().to_string(), c)),
            Err(e) => return fail(format!("{}: could not read the script ({e})", s.display())),
        }
    }
    let tables = match crate::loading::load_files_named(run.files, run.data, opts) {
        Some(t) if !run.files.is_empty() => t,
        Some(_) => match Catalog::open(run.data).and_then(|c| c.tables()) {
            Ok(t) => t.into_iter().map(|t| t.name).collect(),
            Err(e) => return fail(e),
        },
        None => return false,
    };
    let kernels = match start_kernels(run.py, run.limits.clone(), run.ast_check) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let launcher = match Launcher::current() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let sql: Arc<dyn quarry_engine::SqlKernel> =
        Arc::new(quarry_engine::worker::SqlWorkers::new(launcher, run.data, Limits::default(), 1));
    let data = EngineData::new(sql, &Limits::default());
    let session = format!("cli-{}", std::process::id());
    let mut all_ok = true;
    let mut figure_no = 0;
    for (name, code) in &codes {
        let result = kernels.run(&session, &RunRequest { code, tables: &tables, params: &[] }, &data);
        let mut figures = Vec::new();
        if let Ok(r) = &result {
            for png in &r.figures {
                figure_no += 1;
                let dir = run.out.unwrap_or(Path::new("."));
                let path = dir.join(format!("figure-{figure_no}.png"));
                if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, png)) {
                    return fail(format!("{}: could not write the figure ({e})", path.display()));
                }
                figures.push(path);
            }
        }
        all_ok &= matches!(&result, Ok(r) if r.ok);
        if run.json {
            println!("{}", report_json(name, &result, &figures, &kernels));
        } else {
            print_text(&result, &figures);
        }
    }
    all_ok
}

fn report_json(
    script: &str,
    result: &Result<quarry_sandbox::python::PyRun, PythonError>,
    figures: &[PathBuf],
    kernels: &PythonKernels,
) -> Value {
    let walls = serde_json::to_value(kernels.walls()).unwrap_or_default();
    match result {
        Ok(r) => {
            let tables: Vec<Value> = r
                .tables
                .iter()
                .map(|t| {
                    let table = decode(t).ok().map(|q| quarry_agent::Table::from_result(&q));
                    json!({
                        "name": t.name,
                        "rows": t.rows,
                        "truncated": t.truncated,
                        "columns": table.as_ref().map(|t| t.columns.iter().map(|c| json!({"name": c.name, "type": c.type_name()})).collect::<Vec<_>>()),
                        "data": table.as_ref().map(|t| t.rows.iter().take(1000).cloned().collect::<Vec<_>>()),
                    })
                })
                .collect();
            json!({
                "script": script,
                "ok": r.ok,
                "refused": null,
                "stdout": r.stdout,
                "stdout_dropped": r.stdout_dropped,
                "value": r.value,
                "error": r.error,
                "tables": tables,
                "figures": figures,
                "queries": r.queries,
                "elapsed_ms": r.elapsed_ms,
                "fresh_kernel": r.fresh_kernel,
                "walls": walls,
            })
        }
        Err(PythonError::Refused(rs)) => json!({"script": script, "ok": false, "refused": rs, "walls": walls}),
        Err(e) => json!({
            "script": script,
            "ok": false,
            "refused": null,
            "failure": e.to_string(),
            "walls": walls,
        }),
    }
}

fn print_text(result: &Result<quarry_sandbox::python::PyRun, PythonError>, figures: &[PathBuf]) {
    match result {
        Ok(r) => {
            if !r.stdout.is_empty() {
                print!("{}", r.stdout);
                if !r.stdout.ends_with('\n') {
                    println!();
                }
            }
            if r.stdout_dropped > 0 {
                eprintln!("note: {} more characters of output were dropped (output cap)", r.stdout_dropped);
            }
            for t in &r.tables {
                match decode(t) {
                    Ok(q) => {
                        let shown: Vec<_> = q.batches.iter().map(|b| b.slice(0, b.num_rows().min(50))).collect();
                        let text = arrow::util::pretty::pretty_format_batches(&shown[..shown.len().min(1)])
                            .map(|t| t.to_string())
                            .unwrap_or_default();
                        println!(
                            "{} ({} rows{}):\n{text}",
                            t.name,
                            t.rows,
                            if t.rows > 50 { ", first 50 shown" } else { "" }
                        );
                    }
                    Err(e) => eprintln!("{}: could not decode ({e})", t.name),
                }
            }
            match &r.value {
                Some(Value::Object(o)) if o.contains_key("repr") => {
                    println!("{}", o["repr"].as_str().unwrap_or_default())
                }
                Some(v) => println!("{v}"),
                None => {}
            }
            for f in figures {
                eprintln!("figure written: {}", f.display());
            }
            if let Some(e) = &r.error {
                let at = e.line.map(|l| format!(" (line {l})")).unwrap_or_default();
                eprintln!("error{at}: {}", e.message);
                if let Some(h) = &e.hint {
                    eprintln!("hint: {h}");
                }
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
}

/// Time from request to the first line of user code, warm kernel vs a cold
/// `python -c "import pandas"`; printed as JSON for bench/run.py.
pub fn cmd_bench_python(py: &PyArgs, n: usize) -> bool {
    let kernels = match start_kernels(py, Limits::for_python(), true) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    struct NoData;
    impl quarry_sandbox::python::DataAccess for NoData {
        fn table(&self, _: &str) -> Result<quarry_sandbox::python::ArrowData, String> {
            Err("no tables in this benchmark".into())
        }
        fn sql(&self, _: &str) -> Result<quarry_sandbox::python::ArrowData, String> {
            Err("no engine in this benchmark".into())
        }
    }
    // Warm: the first run waits for the pre-started worker's imports; then time n runs.
    let code = "x = 1";
    if let Err(e) = kernels.run("bench", &RunRequest { code, tables: &[], params: &[] }, &NoData) {
        return fail(e);
    }
    let mut warm = Vec::new();
    for _ in 0..n {
        let t0 = quarry_sandbox::python::monotonic_ns();
        match kernels.run("bench", &RunRequest { code, tables: &[], params: &[] }, &NoData) {
            Ok(r) => warm.push((r.started_ns.saturating_sub(t0)) as f64 / 1e6),
            Err(e) => return fail(e),
        }
    }
    // A new conversation taking a pre-started kernel (imports already done).
    let mut fresh = Vec::new();
    for i in 0..n.min(10) {
        std::thread::sleep(Duration::from_millis(2500)); // let the pool's next worker finish importing
        let t0 = quarry_sandbox::python::monotonic_ns();
        match kernels.run(&format!("bench-{i}"), &RunRequest { code, tables: &[], params: &[] }, &NoData) {
            Ok(r) => fresh.push((r.started_ns.saturating_sub(t0)) as f64 / 1e6),
            Err(e) => return fail(e),
        }
        kernels.end(&format!("bench-{i}"));
    }
    // A new conversation with no pre-started worker: jail, interpreter and imports on the clock.
    let cold_kernel = {
        let cfg = PythonConfig { warm: 0, ..kernels.config().clone() };
        let cold = match Launcher::current().map_err(PythonError::Worker).and_then(|l| PythonKernels::start(l, cfg)) {
            Ok(k) => k,
            Err(e) => return fail(e),
        };
        let mut v = Vec::new();
        for i in 0..3 {
            let t0 = quarry_sandbox::python::monotonic_ns();
            match cold.run(&format!("cold-{i}"), &RunRequest { code, tables: &[], params: &[] }, &NoData) {
                Ok(r) => v.push((r.started_ns.saturating_sub(t0)) as f64 / 1e6),
                Err(e) => return fail(e),
            }
            cold.end(&format!("cold-{i}"));
        }
        v
    };
    let cold = {
        let python = kernels.config().runtime.interpreter();
        let mut v = Vec::new();
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let ok = quarry_sandbox::python::time_cold_import(&python);
            if !ok {
                return fail("the cold `python -c \"import pandas\"` failed");
            }
            v.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        v
    };
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        json!({
            "warm_same_kernel_ms": med(warm),
            "warm_new_conversation_ms": med(fresh),
            "cold_import_pandas_ms": med(cold),
            "cold_kernel_ms": med(cold_kernel),
            "n": n,
        })
    );
    true
}
