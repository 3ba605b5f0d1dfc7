//! A Ballista cluster on loopback — `quarry cluster scheduler` and two
//! `quarry cluster executor`s, separate processes — answering the same
//! queries as the local engine: group-bys, a join, Quarry's UDFs; a query
//! past its time limit cancelled on the scheduler; an executor killed
//! mid-query giving a result or a clear error, never a hang; DDL refused
//! before anything reaches the scheduler. And a cluster whose executors
//! read the tables from an S3-compatible object store (s3s-fs, a real S3
//! server over a directory) instead of a shared path. Built with
//! `--features ballista`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{load, quarry, BIN};

/// A child process killed when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` distinct free ports (all held until all are picked).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("port")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{}.log", args.join("-").replace('/', "_")))).expect("log");
    let child = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("quarry cluster starts");
    Proc(child)
}

/// The scheduler's REST answer at `path`.
fn rest(port: u16, path: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        quarry_llm::install_crypto();
        match reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    })
}

struct Cluster {
    scheduler: Proc,
    executors: Vec<Proc>,
    port: u16,
}

/// A scheduler and `n` executors, waited for until all have registered,
/// each with the variables `env`.
fn cluster(dir: &Path, n: usize, env: &[(&str, String)]) -> Cluster {
    let ports = free_ports(1 + 2 * n);
    let port = ports[0];
    let scheduler = spawn(dir, &["cluster", "scheduler", "--port", &port.to_string()], env);
    let executors = (0..n)
        .map(|i| {
            let (flight, grpc) = (ports[1 + 2 * i], ports[2 + 2 * i]);
            let work = dir.join(format!("executor-{i}"));
            spawn(
                dir,
                &[
                    "cluster",
                    "executor",
                    "--scheduler",
                    &format!("127.0.0.1:{port}"),
                    "--port",
                    &flight.to_string(),
                    "--grpc-port",
                    &grpc.to_string(),
                    "--work-dir",
                    work.to_str().expect("path"),
                    "--vcores",
                    "2",
                    "--memory-limit",
                    "1024",
                ],
                env,
            )
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    while rest(port, "/api/executors").as_array().map_or(0, Vec::len) < n {
        if Instant::now() > until {
            let logs: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .map(|e| format!("{}:\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap_or_default()))
                .collect();
            panic!("the executors did not register with the scheduler:\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Cluster { scheduler, executors, port }
}

fn sql(dir: &Path, engine: &str, query: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sql", "--data", "data", "--engine", engine, "--format", "csv", "-q", query];
    args.extend_from_slice(extra);
    quarry(dir, &args)
}

const TABLE: &str = "clinic_reports_2024_monthly_data";

#[test]
fn a_ballista_cluster_answers_as_the_local_engine_does_and_stops_when_told() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = quarry_testdata::write_demo(&dir.join("files")).expect("demo");
    for f in &files {
        load(&dir.join("data"), f);
    }
    let c = cluster(dir, 2, &[]);
    let engine = format!("ballista://127.0.0.1:{}", c.port);
    let known = [
        format!("SELECT location_state AS state, sum(tested_positive_rdt_ge5yrs) AS positives FROM {TABLE} GROUP BY 1 ORDER BY 1"),
        format!(
            "SELECT c.location_state, p.population_2024_projected AS people, count(*) AS reports \
             FROM {TABLE} c JOIN population_2024 p ON p.state = c.location_state GROUP BY 1, 2 ORDER BY 1"
        ),
        format!(
            "SELECT location_lga, pct(sum(tested_positive_rdt_ge5yrs), sum(tested_malaria_rdt_ge5yrs)) AS tpr, \
             safe_div(sum(tested_positive_rdt_lt5yrs), 0) AS none FROM {TABLE} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
        ),
        format!("SELECT count(DISTINCT location_health_facility) AS facilities, max(remarks) AS last FROM {TABLE}"),
    ];
    for q in &known {
        let local = sql(dir, "local", q, &[]);
        let remote = sql(dir, &engine, q, &[]);
        let (l, r) = (String::from_utf8_lossy(&local.stdout), String::from_utf8_lossy(&remote.stdout));
        assert!(local.status.success() && !l.trim().is_empty(), "{q}: {}", String::from_utf8_lossy(&local.stderr));
        assert!(remote.status.success(), "{q} on the cluster: {}", String::from_utf8_lossy(&remote.stderr));
        assert_eq!(r, l, "{q}: the cluster and the local engine differ");
    }
    let jobs = || rest(c.port, "/api/jobs").as_array().map_or(0, Vec::len);
    let ran = jobs();
    assert!(ran >= known.len(), "every query ran as a job on the scheduler ({ran})");

    // The guard refuses DDL before anything reaches the scheduler.
    let ddl = sql(dir, &engine, "CREATE TABLE x AS SELECT 1", &[]);
    assert!(!ddl.status.success());
    assert!(String::from_utf8_lossy(&ddl.stderr).to_lowercase().contains("read-only"), "{ddl:?}");
    assert_eq!(jobs(), ran, "a refused query submitted no job");

    // Past its time limit: a clear error, and the job cancelled on the scheduler.
    // (A filter over every combination: a bare count of a cross join is answered from statistics.)
    let slow = |n: usize| {
        let from: Vec<String> = (0..n).map(|i| format!("{TABLE} t{i}")).collect();
        let sum: Vec<String> = (0..n).map(|i| format!("t{i}.tested_positive_rdt_ge5yrs")).collect();
        format!("SELECT count(*) AS n FROM {} WHERE {} > 7", from.join(", "), sum.join(" + "))
    };
    let huge = slow(5);
    let t0 = Instant::now();
    let timed = sql(dir, &engine, &huge, &["--time-limit", "3"]);
    assert!(!timed.status.success(), "{timed:?}");
    assert!(
        String::from_utf8_lossy(&timed.stderr).contains("ran longer than"),
        "{}",
        String::from_utf8_lossy(&timed.stderr)
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "stopped at its limit: {:?}", t0.elapsed());
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let list = rest(c.port, "/api/jobs");
        let running = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| j["status"].as_str().is_some_and(|s| s.contains("Running") || s.contains("Queued")))
            .count();
        if running == 0 {
            break;
        }
        assert!(Instant::now() < until, "the timed-out job still runs on the cluster: {list}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // An executor killed mid-query: an answer (retried on the other) or a clear error, never a hang.
    let mut c = c;
    let four = slow(4);
    let worker = {
        let (dir, engine) = (dir.to_path_buf(), engine.clone());
        std::thread::spawn(move || sql(&dir, &engine, &four, &["--time-limit", "30"]))
    };
    std::thread::sleep(Duration::from_millis(700));
    drop(c.executors.pop());
    let t0 = Instant::now();
    let out = worker.join().expect("the query returns");
    assert!(t0.elapsed() < Duration::from_secs(100));
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let n: u64 = text.trim().strip_prefix("n\n").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{text}"));
        assert!(n > 0 && n <= 144u64.pow(4), "{text}");
    } else {
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!e.trim().is_empty(), "a failure says why");
    }
    drop(c.scheduler);
}

/// s3s-fs, an S3 server over a directory: `QUARRY_S3_SERVER`, else the one
/// `scripts/test` installs in `target/tools`, else on the PATH.
fn s3_server() -> Option<std::path::PathBuf> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin/s3s-fs");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("s3s-fs"));
    std::env::var_os("QUARRY_S3_SERVER").map(Into::into).into_iter().chain([tools]).chain(on_path).find(|p| p.is_file())
}

/// Every object under `root` (the S3 server's directory), as keys.
fn objects(root: &Path) -> Vec<String> {
    fn walk(d: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).expect("under root").display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.retain(|k| k.ends_with(".parquet"));
    out.sort();
    out
}

#[test]
fn a_cluster_reads_the_tables_a_query_needs_from_an_s3_compatible_store() {
    let Some(server) = s3_server() else {
        assert!(
            std::env::var_os("QUARRY_REQUIRE_SERVICES").is_none(),
            "s3s-fs is not installed (scripts/test installs it)"
        );
        eprintln!("skipped: no s3s-fs (cargo install --locked s3s-fs --features binary)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = quarry_testdata::write_demo(&dir.join("files")).expect("demo");
    for f in &files {
        load(&dir.join("data"), f);
    }
    let root = dir.join("s3");
    std::fs::create_dir_all(root.join("quarry-test")).expect("bucket");
    let port = free_ports(1)[0];
    let mut s3 = Command::new(server);
    s3.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "quarry", "--secret-key"])
        .arg("s3cret-key-for-tests")
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("s3.log")).expect("log"));
    let _s3 = Proc(s3.spawn().expect("s3s-fs starts"));
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the S3 server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = |secret: &str| {
        vec![
            ("AWS_ACCESS_KEY_ID", "quarry".to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    };
    let good = env("s3cret-key-for-tests");
    let c = cluster(dir, 2, &good);
    let engine = format!("ballista://127.0.0.1:{}?store=s3://quarry-test/team", c.port);
    let run = |env: &[(&str, String)], q: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["sql", "--data", "data", "--engine", &engine, "--format", "csv", "-q", q]).current_dir(dir);
        cmd.envs(env.iter().map(|(k, v)| (k, v))).output().expect("quarry runs")
    };
    let local = |q: &str| sql(dir, "local", q, &[]);

    // First a query over one table: that table alone is copied, under the
    // workspace's prefix, and the answer is the local engine's.
    let by_state = format!(
        "SELECT location_state, sum(tested_positive_rdt_ge5yrs) AS p, \
         pct(sum(tested_positive_rdt_ge5yrs), sum(tested_malaria_rdt_ge5yrs)) AS tpr FROM {TABLE} GROUP BY 1 ORDER BY 1"
    );
    let remote = run(&good, &by_state);
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    assert_eq!(String::from_utf8_lossy(&remote.stdout), String::from_utf8_lossy(&local(&by_state).stdout));
    let first = objects(&root);
    assert_eq!(first.len(), 1, "only the table the query read: {first:?}");
    assert!(first[0].starts_with("quarry-test/team/") && first[0].contains(&format!("/{TABLE}/v1-")), "{first:?}");

    // A join reads a second table; the first is not copied again.
    let copied_at = std::fs::metadata(root.join(&first[0])).and_then(|m| m.modified()).expect("object");
    let join = format!(
        "SELECT c.location_state, p.population_2024_projected AS people, count(*) AS n \
         FROM {TABLE} c JOIN population_2024 p ON p.state = c.location_state GROUP BY 1, 2 ORDER BY 1"
    );
    let remote = run(&good, &join);
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    assert_eq!(String::from_utf8_lossy(&remote.stdout), String::from_utf8_lossy(&local(&join).stdout));
    let second = objects(&root);
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second.iter().any(|k| k.contains("/population_2024/v1-")), "{second:?}");
    assert_eq!(std::fs::metadata(root.join(&first[0])).and_then(|m| m.modified()).expect("object"), copied_at);

    // Wrong credentials: a clear error naming what to check, no answer.
    let denied = run(&env("not-the-key"), &format!("SELECT count(*) FROM {TABLE}"));
    assert!(!denied.status.success());
    let e = String::from_utf8_lossy(&denied.stderr);
    assert!(e.contains("AWS_SECRET_ACCESS_KEY") || e.to_lowercase().contains("credential"), "{e}");

    // The executors read the store's copy, not the local file: a copy
    // damaged in the store (same size) fails the query.
    let obj = root.join(&first[0]);
    let len = std::fs::metadata(&obj).expect("object").len() as usize;
    std::fs::write(&obj, vec![0u8; len]).expect("damage");
    let broken = run(&good, &by_state);
    assert!(!broken.status.success(), "{}", String::from_utf8_lossy(&broken.stdout));
    assert!(!String::from_utf8_lossy(&broken.stderr).trim().is_empty());
    drop(c);
}
