//! The Python kernel through the real binary and sandbox: attacks (the
//! shared corpus with and without the AST check, and the project's own),
//! each OS wall on its own, statistics with known answers, figures, `sql()`,
//! kernel state per conversation, and limits.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_agent::python::{decode, EngineData};
use quarry_sandbox::jail::Walls;
use quarry_sandbox::python::{PyRun, PythonConfig, PythonError, PythonKernels, RunRequest, Runtime};
use quarry_sandbox::{Launcher, Limits, WorkerError};
use quarry_testdata::shared_dir as shared;
use serde_json::Value;

use crate::common::{ensure_python_runtime, python_runtime, BIN};

const CANARY: &str = "canary-7f3a-host-secret";

/// A data directory holding `t` (state, tests, positives) and `groups` (g, v).
fn dataset() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut t = String::from("state,tests,positives\n");
    for i in 0..40u32 {
        let state = ["Kano", "Lagos", "Oyo", "Kaduna"][(i % 4) as usize];
        let tests = 100 + i * 7;
        t.push_str(&format!("{state},{tests},{}\n", tests * 3 / 10 + (i % 5)));
    }
    std::fs::write(tmp.path().join("t.csv"), t).expect("csv");
    let (a, b) = groups();
    let mut g = String::from("g,v\n");
    for v in a {
        g.push_str(&format!("a,{v}\n"));
    }
    for v in b {
        g.push_str(&format!("b,{v}\n"));
    }
    std::fs::write(tmp.path().join("groups.csv"), g).expect("csv");
    let out = Command::new(BIN)
        .args(["load", "t.csv", "groups.csv", "--data", "d"])
        .current_dir(tmp.path())
        .output()
        .expect("load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tmp
}

fn groups() -> (Vec<f64>, Vec<f64>) {
    let a = (0..12).map(|i| 10.0 + (i as f64 * 1.7) % 5.0).collect();
    let b = (0..15).map(|i| 12.5 + (i as f64 * 2.3) % 6.0).collect();
    (a, b)
}

/// `quarry python --json` on one script; the JSON line and the whole output.
fn python(dir: &Path, script: &str, extra: &[&str]) -> (Value, String, std::process::ExitStatus, Duration) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("script-{n}.py"));
    std::fs::write(&file, script).expect("script");
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(["python", "--data", "d", "--json", "--time-limit", "4", "--code"])
        .arg(&file)
        .args(extra)
        .current_dir(dir)
        .env("QUARRY_TEST_CANARY", CANARY)
        .env("OPENAI_API_KEY", "sk-test-secret-not-for-workers")
        .output()
        .expect("quarry python");
    let elapsed = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let v = stdout.lines().next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    (v, all, out.status, elapsed)
}

/// Which wall stopped a run, from its JSON report.
fn wall(v: &Value) -> String {
    if let Some(r) = v["refused"].as_array() {
        let rules: Vec<&str> = r.iter().filter_map(|x| x["rule"].as_str()).collect();
        return format!("AST ({})", rules.join(", "));
    }
    let msg = v["error"]["message"].as_str().or(v["failure"].as_str()).unwrap_or("");
    let m = msg.to_lowercase();
    let w = if m.contains("operation not permitted") {
        "seccomp (EPERM)"
    } else if m.contains("permission denied") {
        "Landlock (EACCES)"
    } else if m.contains("no such file") {
        "namespaces (not visible)"
    } else if m.contains("name resolution") || m.contains("network is unreachable") || m.contains("connection refused")
    {
        "network namespace"
    } else if m.contains("memoryerror") || m.contains("out of memory") {
        "rlimit (address space)"
    } else if m.contains("no space left") || m.contains("file too large") {
        "scratch tmpfs / RLIMIT_FSIZE"
    } else if m.contains("can't start new thread") || m.contains("resource temporarily unavailable") {
        "rlimit (processes)"
    } else if m.contains("time limit") {
        "wall-clock kill"
    } else if m.contains("crashed") || m.contains("os limits") {
        "worker died, replaced"
    } else if v["ok"] == Value::Bool(true) {
        "contained (ran inside the sandbox)"
    } else if msg.is_empty() {
        "?"
    } else {
        "Python error inside the sandbox"
    };
    w.to_string()
}

fn assert_no_leak(name: &str, all: &str) {
    for secret in ["root:x:0:0", CANARY, "sk-test-secret", "PRIVATE KEY", "uid=0(root)"] {
        assert!(!all.contains(secret), "{name}: leaked {secret:?}:\n{}", &all[..all.len().min(2000)]);
    }
}

fn pwned() -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains("pwned")).collect())
        .unwrap_or_default()
}

#[test]
fn shared_python_attacks_stopped_with_and_without_the_ast_check() {
    let Some(attacks) = shared("attacks/python") else { return };
    ensure_python_runtime();
    let tmp = dataset();
    for p in pwned() {
        let _ = std::fs::remove_file(&p);
    }
    // Listeners the network attacks aim at: nothing may arrive.
    let tcp = TcpListener::bind("127.0.0.1:8765").ok();
    if let Some(l) = &tcp {
        l.set_nonblocking(true).expect("nonblocking");
    }
    let udp = UdpSocket::bind("127.0.0.1:8766").ok();
    if let Some(u) = &udp {
        u.set_nonblocking(true).expect("nonblocking");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&attacks).expect("attacks").flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "py"));
    files.sort();
    assert!(files.len() >= 50, "expected the shared corpus, found {}", files.len());
    let jobs: Vec<(PathBuf, bool)> = files.iter().flat_map(|f| [(f.clone(), true), (f.clone(), false)]).collect();
    let jobs = Arc::new(Mutex::new(jobs));
    let results = Arc::new(Mutex::new(Vec::new()));
    let dir = tmp.path().to_path_buf();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (jobs, results, dir) = (jobs.clone(), results.clone(), dir.clone());
            std::thread::spawn(move || loop {
                let Some((f, ast)) = jobs.lock().expect("jobs").pop() else { return };
                let code = std::fs::read_to_string(&f).expect("attack");
                let extra: &[&str] = if ast { &[] } else { &["--skip-ast-check"] };
                let (v, all, status, elapsed) = python(&dir, &code, extra);
                let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                assert!(status.code().is_some(), "{name}: quarry itself was killed ({status})");
                assert!(v.is_object(), "{name}: no JSON report:\n{all}");
                assert!(elapsed < Duration::from_secs(25), "{name}: took {elapsed:?}");
                assert_no_leak(&name, &all);
                results.lock().expect("results").push((name, ast, wall(&v)));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("attack thread");
    }
    assert!(pwned().is_empty(), "files written outside the sandbox: {:?}", pwned());
    if let Some(l) = &tcp {
        assert!(l.accept().is_err(), "a TCP connection reached the host");
    }
    if let Some(u) = &udp {
        assert!(u.recv_from(&mut [0u8; 64]).is_err(), "a UDP datagram reached the host");
    }
    let mut results = results.lock().expect("results").clone();
    results.sort();
    eprintln!("{:<44} {:<34} without the AST check", "attack", "with the AST check");
    let mut refused = 0;
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let with = results.iter().find(|r| r.0 == name && r.1).map(|r| r.2.clone()).unwrap_or_default();
        let without = results.iter().find(|r| r.0 == name && !r.1).map(|r| r.2.clone()).unwrap_or_default();
        refused += with.starts_with("AST") as usize;
        assert!(!without.starts_with("AST"), "{name}: refused with the check switched off");
        eprintln!("{name:<44} {with:<34} {without}");
    }
    assert!(refused >= 40, "the AST check refused only {refused} attacks");
    // Quarry still works afterwards.
    let (v, all, _, _) = python(tmp.path(), "dfs['t'].tests.sum()", &[]);
    assert_eq!(v["value"], Value::from((0..40).map(|i| 100 + i * 7).sum::<i64>()), "{all}");
}

#[test]
fn own_attacks_held_by_the_os_walls_alone() {
    ensure_python_runtime();
    let tmp = dataset();
    let _ = std::fs::remove_file("/tmp/pwned_quarry_own");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let script = format!(
        r#"
import os, socket, json, subprocess
out = {{}}
def attempt(name, f):
    try:
        out[name] = "ALLOWED: " + str(f())[:200]
    except BaseException as e:
        out[name] = type(e).__name__ + ": " + str(e)
attempt("read_passwd", lambda: open("/etc/passwd").read())
attempt("read_host_data", lambda: os.listdir("{host}"))
attempt("write_tmp", lambda: open("/tmp/pwned_quarry_own", "w").write("x"))
attempt("socket", lambda: socket.socket().connect(("127.0.0.1", {port})))
attempt("fork", lambda: os.fork())
attempt("subprocess", lambda: subprocess.run(["/bin/sh", "-c", "id"]))
attempt("kill_parent", lambda: os.kill(os.getppid(), 9))
out["uid"] = os.getuid()
out["processes"] = sorted(p for p in os.listdir("/proc") if p.isdigit())
out["env"] = sorted(os.environ)
out["scratch_write"] = open("ok.txt", "w").write("fine")
print(json.dumps(out))
"#,
        host = tmp.path().display()
    );
    let (v, all, status, _) = python(tmp.path(), &script, &["--skip-ast-check"]);
    assert!(status.success(), "{all}");
    assert_no_leak("own attacks", &all);
    let out: Value = serde_json::from_str(v["stdout"].as_str().unwrap_or("").trim()).expect("report");
    for k in ["read_passwd", "read_host_data", "write_tmp", "socket", "fork", "subprocess"] {
        let s = out[k].as_str().unwrap_or("");
        assert!(!s.starts_with("ALLOWED"), "{k} was allowed: {s}");
        assert!(s.contains("Error"), "{k}: {s}");
    }
    assert_eq!(out["uid"], 1000, "the kernel is not root inside its namespace");
    assert_eq!(out["processes"], serde_json::json!(["1"]), "host processes are visible");
    assert!(!out["env"].as_array().expect("env").iter().any(|k| k.as_str().unwrap_or("").contains("CANARY")));
    assert_eq!(out["scratch_write"], 4);
    assert!(!Path::new("/tmp/pwned_quarry_own").exists());
    assert!(listener.accept().is_err(), "the sandbox reached a host socket");
}

/// Kernels over the data directory, with the given walls.
fn kernels(dir: &Path, walls: Walls, limits: Limits) -> (PythonKernels, EngineData) {
    ensure_python_runtime();
    let mut cfg = PythonConfig::new(python_runtime());
    // The walls are what these tests are about; the AST check stays out of the way.
    cfg.ast_check = false;
    cfg.walls = walls;
    cfg.limits = limits;
    let launcher = Launcher::with_exe(PathBuf::from(BIN));
    let k = PythonKernels::start(launcher.clone(), cfg).expect("kernels");
    let sql = quarry_engine::worker::SqlWorkers::new(launcher, &dir.join("d"), Limits::default(), 1);
    (k, EngineData::new(Arc::new(sql) as Arc<dyn quarry_types::SqlKernel>, &Limits::default()))
}

fn run(k: &PythonKernels, data: &EngineData, session: &str, code: &str) -> Result<PyRun, PythonError> {
    let tables = vec!["t".to_string(), "groups".to_string()];
    k.run(session, &RunRequest { code, tables: &tables, params: &[] }, data)
}

fn stdout_of(r: Result<PyRun, PythonError>) -> String {
    match r {
        Ok(r) => {
            assert!(r.ok, "{:?}", r.error);
            r.stdout.trim().to_string()
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn each_wall_holds_on_its_own() {
    let tmp = dataset();
    let off = Walls { namespaces: false, landlock: false, seccomp: false, best_effort: true, ..Walls::default() };
    let probe = r#"
import os, socket
def attempt(f):
    try:
        f()
        return "allowed"
    except BaseException as e:
        return type(e).__name__
s = socket.socket() if attempt(lambda: socket.socket().close()) == "allowed" else None
print(attempt(lambda: open("/etc/passwd").read(1)), attempt(lambda: socket.socket().close()),
      attempt(lambda: s.connect(("1.1.1.1", 80))) if s else "-", os.getuid(), len([p for p in os.listdir("/proc") if p.isdigit()]) == 1)
"#;
    let cases = [
        ("Landlock", Walls { landlock: true, ..off.clone() }, "PermissionError allowed"),
        ("seccomp", Walls { seccomp: true, ..off.clone() }, "allowed PermissionError -"),
        ("namespaces", Walls { namespaces: true, ..off.clone() }, "allowed allowed OSError 1000 True"),
    ];
    for (name, walls, expect) in cases {
        let (k, data) = kernels(tmp.path(), walls, Limits::for_python());
        let out = stdout_of(run(&k, &data, "w", probe));
        assert!(out.starts_with(expect), "{name} alone: {out}");
        // The uid wall is always up: never root.
        assert!(!out.contains(" 0 "), "{name}: ran as root: {out}");
    }
}

#[test]
fn statistics_give_the_known_numbers() {
    let tmp = dataset();
    let (k, data) = kernels(tmp.path(), Walls::default(), Limits::for_python());
    let code = r#"
import json
a = dfs["groups"].query("g == 'a'").v
b = dfs["groups"].query("g == 'b'").v
t, p = stats.ttest_ind(a, b)
t_df = dfs["t"]
fit = sm.OLS(t_df.positives, sm.add_constant(t_df.tests)).fit()
engine = sql("SELECT regr_slope(positives, tests) AS slope, regr_intercept(positives, tests) AS icpt FROM t")
print(json.dumps({"t": t, "p": p, "slope": fit.params["tests"], "icpt": fit.params["const"],
                  "engine_slope": float(engine.slope[0]), "engine_icpt": float(engine.icpt[0])}))
"#;
    let r = run(&k, &data, "stats", code).expect("run");
    assert!(r.ok, "{:?}", r.error);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("json");
    // Student's t (equal variances), computed here from the same numbers.
    let (a, b) = groups();
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let var = |x: &[f64]| {
        let m = mean(x);
        x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)
    };
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let sp = ((na - 1.0) * var(&a) + (nb - 1.0) * var(&b)) / (na + nb - 2.0);
    let t = (mean(&a) - mean(&b)) / (sp * (1.0 / na + 1.0 / nb)).sqrt();
    assert!((v["t"].as_f64().expect("t") - t).abs() < 1e-9, "t = {} vs {t}", v["t"]);
    let p = v["p"].as_f64().expect("p");
    assert!(p > 0.0 && p < 1.0);
    // Least squares, here and in the engine.
    let x: Vec<f64> = (0..40).map(|i| 100.0 + i as f64 * 7.0).collect();
    let y: Vec<f64> = (0..40u32).map(|i| ((100 + i * 7) * 3 / 10 + (i % 5)) as f64).collect();
    let (mx, my) = (mean(&x), mean(&y));
    let slope = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>()
        / x.iter().map(|a| (a - mx).powi(2)).sum::<f64>();
    let icpt = my - slope * mx;
    for (key, want) in [("slope", slope), ("engine_slope", slope), ("icpt", icpt), ("engine_icpt", icpt)] {
        let got = v[key].as_f64().expect(key);
        assert!((got - want).abs() < 1e-6, "{key}: {got} vs {want}");
    }
    assert_eq!(r.queries.len(), 1, "sql() ran on the engine");
}

#[test]
fn figures_tables_and_sql_come_back() {
    let tmp = dataset();
    let (k, data) = kernels(tmp.path(), Walls::default(), Limits::for_python());
    let code = r#"
by = sql("SELECT state, sum(positives) AS positives, sum(tests) AS tests FROM t GROUP BY state ORDER BY state")
by["tpr"] = by.positives / by.tests
fig, ax = plt.subplots()
ax.bar(by.state, by.tpr)
by
"#;
    let r = run(&k, &data, "fig", code).expect("run");
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.figures.len(), 1);
    assert!(r.figures[0].starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(r.tables.len(), 1);
    let q = decode(&r.tables[0]).expect("arrow");
    assert_eq!(q.rows, 4);
    let names: Vec<String> = q.schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["state", "positives", "tests", "tpr"]);
    // Through the CLI: the figure lands in --out.
    let (v, all, status, _) = python(tmp.path(), code, &["--out", "figs"]);
    assert!(status.success(), "{all}");
    assert_eq!(v["tables"][0]["rows"], 4);
    let png = std::fs::read(tmp.path().join("figs/figure-1.png")).expect("figure file");
    assert!(png.starts_with(b"\x89PNG"));
}

#[test]
fn state_survives_turns_of_a_conversation_not_across_conversations() {
    let tmp = dataset();
    let (k, data) = kernels(tmp.path(), Walls::default(), Limits::for_python());
    let first = run(&k, &data, "conv-1", "x = 41\nprint('set')").expect("run");
    assert!(first.fresh_kernel);
    let second = run(&k, &data, "conv-1", "x + 1").expect("run");
    assert!(!second.fresh_kernel);
    assert_eq!(second.value, Some(Value::from(42)));
    let other = run(&k, &data, "conv-2", "x").expect("run");
    assert!(!other.ok);
    assert_eq!(other.error.as_ref().map(|e| e.kind.as_str()), Some("NameError"));
    // Several scripts of one `quarry python` are one conversation.
    let a = tmp.path().join("a.py");
    let b = tmp.path().join("b.py");
    std::fs::write(&a, "y = 5").expect("a");
    std::fs::write(&b, "y * 2").expect("b");
    let out = Command::new(BIN)
        .args(["python", "--data", "d", "--json", "--code"])
        .arg(&a)
        .arg("--code")
        .arg(&b)
        .current_dir(tmp.path())
        .output()
        .expect("python");
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["value"], 10);
}

#[test]
fn memory_hog_and_infinite_loop_stop_at_their_limits_and_the_next_run_works() {
    let tmp = dataset();
    let limits = Limits { time: Duration::from_secs(3), ..Limits::for_python() };
    let (k, data) = kernels(tmp.path(), Walls::default(), limits);
    let hog = run(&k, &data, "s", "x = bytearray(8 << 30)").expect("run");
    assert!(!hog.ok);
    assert_eq!(hog.error.as_ref().map(|e| e.kind.as_str()), Some("MemoryError"));
    let after = run(&k, &data, "s", "1 + 1").expect("run");
    assert_eq!(after.value, Some(Value::from(2)));
    assert!(after.fresh_kernel, "a kernel that ran out of memory is recycled");
    let t0 = Instant::now();
    let spin = run(&k, &data, "s", "while True:\n    pass");
    assert!(matches!(spin, Err(PythonError::Worker(WorkerError::Timeout(_)))), "{spin:?}");
    assert!(t0.elapsed() < Duration::from_secs(6), "killed after {:?}", t0.elapsed());
    let after = run(&k, &data, "s", "'alive'").expect("run");
    assert_eq!(after.value, Some(Value::from("alive")));
    assert!(after.fresh_kernel);
    // Output beyond the cap is dropped, not buffered.
    let flood = run(&k, &data, "s", "for i in range(200000):\n    print('x' * 100)").expect("run");
    assert!(flood.stdout.len() <= 64 * 1024 && flood.stdout_dropped > 0);
}

#[test]
fn refusals_are_explained_and_nothing_runs() {
    let tmp = dataset();
    let (v, all, status, _) = python(tmp.path(), "import os\nos.system('id')\n", &[]);
    assert!(!status.success());
    let refused = v["refused"].as_array().expect("refused");
    assert_eq!(refused[0]["line"], 1);
    assert!(refused[0]["message"].as_str().unwrap_or("").contains("import os"), "{all}");
    let (v, _, _, _) = python(tmp.path(), "pd.read_csv('/etc/passwd')", &[]);
    assert!(v["refused"][0]["message"].as_str().unwrap_or("").contains("already loaded"));
}

#[test]
fn a_missing_runtime_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = PythonConfig::new(Runtime::new(tmp.path().join("none")));
    let e = PythonKernels::start(Launcher::with_exe(PathBuf::from(BIN)), cfg).err().expect("refused");
    assert!(e.to_string().contains("quarry setup-python"), "{e}");
}

#[test]
fn a_wall_that_cannot_be_raised_stops_python_unless_unsafe() {
    ensure_python_runtime();
    for wall in ["namespaces", "landlock", "seccomp"] {
        let mut cfg = PythonConfig::new(python_runtime());
        cfg.walls.inject_failure = Some(wall.into());
        let e = PythonKernels::start(Launcher::with_exe(PathBuf::from(BIN)), cfg.clone()).err().expect("refused");
        let msg = e.to_string();
        assert!(msg.contains("refusing to run Python") && msg.contains("--unsafe-python"), "{msg}");
        assert!(msg.to_lowercase().contains(wall), "{wall}: {msg}");
        // With --unsafe-python it runs with the walls that hold, and says which did not.
        cfg.walls.best_effort = true;
        let tmp = dataset();
        let k = PythonKernels::start(Launcher::with_exe(PathBuf::from(BIN)), cfg).expect("unsafe start");
        assert!(!k.walls().all_up());
        let sql = quarry_engine::worker::SqlWorkers::new(
            Launcher::with_exe(PathBuf::from(BIN)),
            &tmp.path().join("d"),
            Limits::default(),
            1,
        );
        let data = EngineData::new(Arc::new(sql) as Arc<dyn quarry_types::SqlKernel>, &Limits::default());
        assert_eq!(run(&k, &data, "u", "x = 2 * 21\nx").expect("runs").value, Some(Value::from(42)));
        // Regression: without its own PID namespace the kernel saw the host's
        // processes as its leftovers and was recycled after every run.
        let again = run(&k, &data, "u", "x + 1").expect("runs");
        assert_eq!(again.value, Some(Value::from(43)), "{wall}: the kernel kept its state");
        assert!(!again.fresh_kernel);
    }
}

#[test]
fn an_idle_kernel_is_recycled() {
    let tmp = dataset();
    ensure_python_runtime();
    let mut cfg = PythonConfig::new(python_runtime());
    cfg.idle = Duration::from_millis(200);
    let launcher = Launcher::with_exe(PathBuf::from(BIN));
    let k = PythonKernels::start(launcher.clone(), cfg).expect("kernels");
    let sql = quarry_engine::worker::SqlWorkers::new(launcher, &tmp.path().join("d"), Limits::default(), 1);
    let data = EngineData::new(Arc::new(sql) as Arc<dyn quarry_types::SqlKernel>, &Limits::default());
    run(&k, &data, "idle", "x = 1").expect("run");
    assert_eq!(k.sessions(), 1);
    std::thread::sleep(Duration::from_millis(400));
    k.reap();
    assert_eq!(k.sessions(), 0, "the idle kernel was recycled");
    let r = run(&k, &data, "idle", "'x' in dir()").expect("run");
    assert!(r.fresh_kernel);
    assert_eq!(r.value, Some(Value::Bool(false)));
}

#[test]
fn no_python_found_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["setup-python", "--python", "/nonexistent/python3", "--python-home"])
        .arg(tmp.path().join("home"))
        .output()
        .expect("setup-python");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no usable Python 3") && err.contains("python3-venv"), "{err}");
    assert!(err.contains("SQL questions keep working"), "{err}");
}

#[test]
fn interrupt_stops_running_code_at_once_and_the_next_run_works() {
    let tmp = dataset();
    let (k, data) = kernels(tmp.path(), Walls::default(), Limits::for_python());
    let k = Arc::new(k);
    run(&k, &data, "s", "x = 1").expect("warm");
    let k2 = k.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        k2.interrupt("s")
    });
    let t0 = Instant::now();
    let r = run(&k, &data, "s", "while True:\n    pass");
    assert!(stopper.join().expect("stopper"), "something was running");
    assert!(matches!(r, Err(PythonError::Worker(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "stopped after {:?}", t0.elapsed());
    assert!(!k.interrupt("s"), "nothing runs now");
    let after = run(&k, &data, "s", "'x' in dir()").expect("runs");
    assert!(after.fresh_kernel);
    assert_eq!(after.value, Some(Value::Bool(false)));
}
