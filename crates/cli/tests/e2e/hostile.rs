//! Hostile files and crashes through the real binary (issue: nothing
//! poisoned, nothing lost). Every hostile file is written here by the test;
//! none is committed. Memory bounds are checked by running `quarry` under a
//! hard address-space limit (`ulimit -v`), which its workers inherit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Date32Array, DictionaryArray, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use futures_util::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::common::BIN;

fn quarry(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("quarry runs")
}

/// `quarry ARGS` under a hard address-space limit of `mib` MiB.
fn quarry_within(mib: u64, args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
    let script = format!("ulimit -v {}; exec '{BIN}' {}", mib * 1024, quoted.join(" "));
    Command::new("sh").arg("-c").arg(script).output().expect("sh runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tables(data: &Path) -> Vec<Value> {
    let o = quarry(&["tables", "--json", "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "quarry tables failed: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    v["tables"].as_array().cloned().unwrap_or_default()
}

fn files_under(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn write_parquet(path: &Path, batches: impl IntoIterator<Item = RecordBatch>) {
    write_parquet_with(path, batches, None)
}

fn write_parquet_with(path: &Path, batches: impl IntoIterator<Item = RecordBatch>, props: Option<WriterProperties>) {
    let mut batches = batches.into_iter().peekable();
    let schema = batches.peek().expect("a batch").schema();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    for b in batches {
        w.write(&b).unwrap();
    }
    w.close().unwrap();
}

/// (Failure 1.) A Parquet date column holding i32::MAX and i32::MIN: a clear note,
/// no panic, and the workspace stays usable for every later command.
#[test]
fn parquet_dates_outside_the_calendar_are_noted_and_the_workspace_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extreme.parquet");
    let schema =
        Arc::new(Schema::new(vec![Field::new("day", DataType::Date32, true), Field::new("n", DataType::Int64, true)]));
    let days: ArrayRef = Arc::new(Date32Array::from(vec![i32::MAX, i32::MIN, 19_000]));
    let n: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    write_parquet(&file, [RecordBatch::try_new(schema, vec![days, n]).unwrap()]);
    let f = file.to_str().unwrap();
    let o = quarry(&["profile", "--json", f]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let notes = v["tables"][0]["notes"].to_string();
    assert!(notes.contains("out_of_range") && notes.contains("2 values"), "{notes}");
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let o = quarry(&["load", "--data", d, f]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(tables(&data).len(), 1);
    let o = quarry(&["sql", "--data", d, "--format", "csv", "-q", "SELECT count(day) AS c, sum(n) AS s FROM extreme"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1,6"), "{}", text(&o));
}

fn demo_csv(dir: &Path, rows: usize) -> PathBuf {
    let p = dir.join("facilities.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    writeln!(f, "state,facility,tested,positive").unwrap();
    for i in 0..rows {
        writeln!(f, "State {},Facility {i},{},{}", i % 37, 100 + i % 900, i % 97).unwrap();
    }
    f.flush().unwrap();
    p
}

/// (Failure 2.) A load stopped (SIGKILL) at every named step leaves the catalog as it
/// was, nothing half-written visible, and the next load works. The file is
/// read in 16 KiB pieces, so its table is written while it is scanned
/// (`load:reading`) and only moved afterwards.
#[test]
fn a_load_killed_at_every_step_leaves_the_catalog_usable() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_csv(dir.path(), 2000);
    for (point, committed) in [
        ("load:reading", false),
        ("load:before_parquet", false),
        ("load:parquet_written", false),
        ("load:renamed", false),
        ("load:committed", true),
    ] {
        let data = dir.path().join(point.replace(':', "_"));
        let d = data.to_str().unwrap();
        let o = Command::new(BIN)
            .args(["load", "--data", d, "--ingest-limit", "text_chunk_bytes=16K", file.to_str().unwrap()])
            .env("QUARRY_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{point}: the load should have been stopped");
        let t = tables(&data);
        assert_eq!(t.len(), usize::from(committed), "{point}: {t:?}");
        let half = files_under(&data, &|p| p.to_string_lossy().ends_with(".tmp"));
        assert!(half.is_empty(), "{point}: left {half:?}");
        let parquet = files_under(&data, &|p| p.extension().is_some_and(|e| e == "parquet"));
        assert_eq!(parquet.len(), usize::from(committed), "{point}: {parquet:?}");
        let o = quarry(&["load", "--data", d, file.to_str().unwrap()]);
        assert!(o.status.success(), "{point}: reload: {}", text(&o));
        let o = quarry(&["sql", "--data", d, "--format", "csv", "-q", "SELECT count(*) AS n FROM facilities"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("2000"), "{point}: {}", text(&o));
    }
}

fn ingest_workers_for(data: &Path) -> Vec<i32> {
    let needle = format!("--data\0{}", data.display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("worker\0ingest") && cmd.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

/// (Failures 2 and 6.) kill -9 of `quarry load` at spread-out moments: its worker dies
/// with it (nothing is committed behind the user's back), and afterwards
/// `quarry tables`, the next load and queries all work.
#[test]
fn kill_9_at_random_points_of_a_load_never_breaks_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_csv(dir.path(), 200_000);
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_string();
    // A fixed spread of moments (ms) across start-up, scanning, writing and committing.
    for delay in [5u64, 60, 150, 300, 500, 800, 1200, 1700] {
        let mut child = Command::new(BIN).args(["load", "--data", &d, file.to_str().unwrap()]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let until = Instant::now() + Duration::from_secs(5);
        while !ingest_workers_for(&data).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ingest_workers_for(&data).is_empty(), "after {delay} ms: the ingest worker outlived quarry load");
        let t = tables(&data);
        assert!(t.len() <= 1, "{t:?}");
        assert!(files_under(&data, &|p| p.to_string_lossy().ends_with(".tmp")).is_empty());
    }
    let o = quarry(&["load", "--data", &d, file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = quarry(&["sql", "--data", &d, "--format", "csv", "-q", "SELECT count(*) AS n FROM facilities"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("200000"), "{}", text(&o));
}

/// (Failure 2.) While a load runs, `quarry tables` keeps working (the new table
/// appears only when complete).
#[test]
fn tables_work_while_a_load_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_csv(dir.path(), 300_000);
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    assert!(quarry(&["tables", "--data", d]).status.success());
    let mut child = Command::new(BIN).args(["load", "--data", d, file.to_str().unwrap()]).spawn().unwrap();
    let mut polls = 0;
    while child.try_wait().unwrap().is_none() {
        for t in tables(&data) {
            assert_eq!(t["rows"], 300_000, "only a complete table is visible: {t}");
        }
        polls += 1;
    }
    assert!(child.wait().unwrap().success());
    assert!(polls > 0);
    assert_eq!(tables(&data).len(), 1);
}

/// (Failure 6.) A FIFO is refused at once by `profile` and `load`, not waited on.
#[test]
fn a_named_pipe_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("data.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let f = fifo.to_str().unwrap();
    let data = dir.path().join("data");
    for args in [vec!["profile", f], vec!["load", "--data", data.to_str().unwrap(), f]] {
        let t = Instant::now();
        let o = quarry(&args);
        assert!(!o.status.success());
        assert!(text(&o).contains("named pipe"), "{}", text(&o));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

fn expect_refused_within(limit_mib: u64, file: &Path, words: &str) {
    let t = Instant::now();
    let o = quarry_within(limit_mib, &["profile", file.to_str().unwrap()]);
    let out = text(&o);
    assert!(!o.status.success(), "{}: should be refused: {out}", file.display());
    assert!(out.contains(words), "{}: {out}", file.display());
    assert!(!out.contains("bug in Quarry") && !out.contains("unreadable"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(60), "{}: took {:?}", file.display(), t.elapsed());
}

/// (Failure 5.) Files that claim far more than they hold: each is read within 1 GiB
/// or refused with a clear message.
#[test]
fn amplifying_files_stay_within_a_gibibyte_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A sparse workbook: a header in A1, one value per row in column XFD.
    let sparse = dir.path().join("sparse.xlsx");
    {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet_with_constant_memory().unwrap();
        ws.write_string(0, 0, "id").unwrap();
        ws.write_string(0, 16_383, "value").unwrap();
        for r in 1..60_000u32 {
            ws.write_number(r, 16_383, r as f64).unwrap();
        }
        wb.save(&sparse).unwrap();
    }
    let o = quarry_within(1024, &["profile", "--json", sparse.to_str().unwrap()]);
    assert!(o.status.success(), "sparse workbook: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tables"][0]["rows"], 59_999);

    // Run-length encoding: 16 million equal values in some 100 KB are
    // streamed batch by batch (no longer collected whole).
    let rle = dir.path().join("rle.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    let one: ArrayRef = Arc::new(Int32Array::from(vec![7; 1 << 20]));
    write_parquet(&rle, (0..16).map(|_| RecordBatch::try_new(schema.clone(), vec![one.clone()]).unwrap()));
    let o = quarry_within(1024, &["profile", "--json", rle.to_str().unwrap()]);
    assert!(o.status.success(), "rle: {}", text(&o));
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap()["tables"][0]["rows"], 1 << 24);
    // The same values in a few kilobytes (one page per row group): the footer
    // claims thousands of values per byte, refused before decoding.
    let bomb = dir.path().join("rle-bomb.parquet");
    let props = WriterProperties::builder()
        .set_data_page_row_count_limit(usize::MAX)
        .set_data_page_size_limit(usize::MAX)
        .set_max_row_group_row_count(Some(1 << 24))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build();
    write_parquet_with(
        &bomb,
        (0..16).map(|_| RecordBatch::try_new(schema.clone(), vec![one.clone()]).unwrap()),
        Some(props),
    );
    expect_refused_within(1024, &bomb, "values in");

    // Dictionary bomb: one 256 KiB string, 2 048 rows pointing at it (512 MiB expanded).
    let dict = dir.path().join("dict.parquet");
    let values = StringArray::from(vec!["a".repeat(256 << 10)]);
    let keys = Int32Array::from(vec![0; 2048]);
    let arr: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap());
    let schema = Arc::new(Schema::new(vec![Field::new(
        "s",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    )]));
    write_parquet(&dict, [RecordBatch::try_new(schema, vec![arr]).unwrap()]);
    expect_refused_within(1024, &dict, "expand to");

    // 200 000 columns in a 1.9 MB CSV.
    let wide = dir.path().join("wide.csv");
    let header: Vec<String> = (0..200_000).map(|i| format!("c{i}")).collect();
    std::fs::write(&wide, format!("{}\n{}\n", header.join(","), vec!["1"; 200_000].join(","))).unwrap();
    expect_refused_within(1024, &wide, "columns");

    // One line of 100 MB: refused after the record limit, not after buffering it all.
    let line = dir.path().join("oneline.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&line).unwrap());
        f.write_all(b"a,b\n").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
    }
    expect_refused_within(1024, &line, "longer than");

    // A JSON object with a million keys.
    let keys = dir.path().join("keys.json");
    let body: Vec<String> = (0..1_000_000).map(|i| format!("\"k{i}\":1")).collect();
    std::fs::write(&keys, format!("{{{}}}", body.join(","))).unwrap();
    expect_refused_within(1024, &keys, "fields");

    // One NDJSON value of 70 MB.
    let big = dir.path().join("big.ndjson");
    std::fs::write(&big, format!("{{\"a\":1}}\n{{\"a\":\"{}\"}}\n", "y".repeat(70 << 20))).unwrap();
    expect_refused_within(1024, &big, "line 2");
}

/// (Failure 7.) Numbers no column type can hold exactly are kept as text with a note,
/// never rounded or nulled silently.
#[test]
fn numbers_beyond_range_are_kept_as_text_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.csv");
    std::fs::write(&f, "id,x\n12345678901234567890123,1\n22345678901234567890123,2\n32345678901234567890123,1e400\n")
        .unwrap();
    let o = quarry(&["profile", "--json", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &v["tables"][0];
    assert_eq!(t["columns"][0]["type"], "text");
    assert_eq!(t["columns"][1]["type"], "text");
    assert_eq!(t["columns"][0]["min"], "12345678901234567890123");
    let notes = t["notes"].to_string();
    assert!(notes.contains("out_of_range") && notes.contains("1e400"), "{notes}");
}

/// (Failure 7.) Escape sequences in a file name are printed escaped, never raw.
#[test]
fn terminal_escapes_in_names_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("evil\u{1b}[2J\u{1b}[31m.csv");
    std::fs::write(&f, "a,b\n1,2\n").unwrap();
    let data = dir.path().join("data");
    let o = quarry(&["load", "--data", data.to_str().unwrap(), f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(!out.contains('\u{1b}'), "raw escape printed: {out:?}");
    assert!(out.contains("\\u{1b}"), "{out:?}");
    let missing = dir.path().join("gone\u{1b}[31m.csv");
    let o = quarry(&["load", "--data", data.to_str().unwrap(), missing.to_str().unwrap()]);
    assert!(!o.status.success() && !text(&o).contains('\u{1b}'), "{:?}", text(&o));
}

/// (Failure 7.) Under a hard `ulimit -v` below the ingest worker's 8 GiB, loads work
/// (the worker takes the lower limit) instead of failing to start.
#[test]
fn a_hard_address_space_limit_below_the_workers_does_not_stop_loads() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_csv(dir.path(), 500);
    let data = dir.path().join("data");
    let o = quarry_within(3072, &["load", "--data", data.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(tables(&data).len(), 1);
}

/// `quarry serve` as a process, on a free port; its URL.
fn start_server(data: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--no-python", "--data", data.to_str().unwrap()])
        .env("QUARRY_LLM_MODEL", "")
        .env("QUARRY_LLM_BASE_URL", "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    let url = line.split("serving ").nth(1).and_then(|s| s.split_whitespace().next()).expect("url").to_string();
    (child, url)
}

/// (Failures 2 and 6.) kill -9 of the server at spread-out moments of an
/// upload (while the body streams in, while it is parsed): after a restart
/// no half upload is left, no worker outlived the server, the workspace's
/// tables answer, and the next upload works.
#[test]
fn kill_9_of_the_server_mid_upload_never_breaks_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut csv = String::from("state,facility,tested,positive\n");
    for i in 0..300_000 {
        csv.push_str(&format!("State {},Facility {i},{},{}\n", i % 37, 100 + i % 900, i % 97));
    }
    let csv = csv.into_bytes();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        quarry_llm::install_crypto();
        let c = reqwest::Client::new();
        for delay in [30u64, 150, 400, 900, 1500] {
            let (mut server, url) = start_server(&data);
            let ws: Value = c.get(format!("{url}/api/workspaces")).send().await.unwrap().json().await.unwrap();
            let ws = ws[0]["id"].as_str().unwrap().to_string();
            // The body trickles in for the first 300 ms, then the server parses it.
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                csv.chunks(csv.len() / 6 + 1).map(|c| Ok(c.to_vec())).collect();
            let body = futures_util::stream::iter(chunks).then(|c| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                c
            });
            let req = c
                .post(format!("{url}/api/workspaces/{ws}/datasets?name=big.csv"))
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(body))
                .send();
            let upload = tokio::spawn(req);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            server.kill().unwrap();
            server.wait().unwrap();
            let _ = upload.await;
            let ws_data = data.join("workspaces").join(&ws).join("data");
            let until = Instant::now() + Duration::from_secs(5);
            while !ingest_workers_for(&ws_data).is_empty() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(ingest_workers_for(&ws_data).is_empty(), "after {delay} ms: a worker outlived the server");
            let (mut server, url) = start_server(&data);
            let uploads = data.join("workspaces").join(&ws).join("uploads");
            let half: Vec<_> = std::fs::read_dir(&uploads)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".incoming-"))
                .collect();
            assert!(half.is_empty(), "after {delay} ms: {half:?}");
            assert!(files_under(&ws_data, &|p| p.to_string_lossy().ends_with(".tmp")).is_empty());
            let r = c.get(format!("{url}/api/workspaces/{ws}/tables")).send().await.unwrap();
            assert_eq!(r.status(), 200, "after {delay} ms");
            server.kill().unwrap();
            server.wait().unwrap();
        }
        let (mut server, url) = start_server(&data);
        let ws: Value = c.get(format!("{url}/api/workspaces")).send().await.unwrap().json().await.unwrap();
        let ws = ws[0]["id"].as_str().unwrap().to_string();
        let r = c
            .post(format!("{url}/api/workspaces/{ws}/datasets?name=big.csv"))
            .header("content-type", "application/octet-stream")
            .body(csv.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t: Value = c.get(format!("{url}/api/workspaces/{ws}/tables")).send().await.unwrap().json().await.unwrap();
        assert_eq!(t[0]["rows"], 300_000, "{t}");
        server.kill().unwrap();
        server.wait().unwrap();
    });
}
