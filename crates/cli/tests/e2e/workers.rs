//! Warm worker processes, through the real `quarry` binary: reuse, catalog
//! changes, replacement after a death, and ingest in a worker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_engine::worker::SqlWorkers;
use quarry_engine::{ErrorKind, SqlKernel};
use quarry_ingest::worker::IngestWorkers;
use quarry_ingest::{IngestOptions, Quiet};
use quarry_sandbox::{Launcher, Limits};

fn launcher() -> Launcher {
    Launcher::with_exe(PathBuf::from(env!("CARGO_BIN_EXE_quarry")))
}

fn small_limits() -> Limits {
    Limits { memory_bytes: 256 << 20, address_space_bytes: 2 << 30, time: Duration::from_secs(10), ..Limits::default() }
}

fn load(data: &Path, file: &Path) {
    let w = IngestWorkers::new(launcher(), data, Limits::for_ingest(), 1);
    w.load(file, &IngestOptions::default(), &Quiet).expect("loads");
}

fn one_number(k: &dyn SqlKernel, sql: &str, limits: &Limits) -> i64 {
    let r = k.query(sql, limits).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let col = r.batches[0].column(0);
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64).expect("cast");
    col.as_any().downcast_ref::<arrow::array::Int64Array>().expect("i64").value(0)
}

#[test]
fn one_warm_worker_answers_many_queries_and_sees_new_tables() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let a = tmp.path().join("a.csv");
    quarry_testdata::write_big_csv(&a, 1000).expect("csv");
    load(&data, &a);
    let limits = small_limits();
    let k = SqlWorkers::new(launcher(), &data, limits.clone(), 2);
    for _ in 0..5 {
        assert_eq!(one_number(&k, "SELECT count(*) FROM a", &limits), 1000);
    }
    assert_eq!(k.started(), 1, "the worker stays warm between queries");
    // A table loaded by another process is visible to the warm worker.
    let b = tmp.path().join("b.csv");
    quarry_testdata::write_big_csv(&b, 300).expect("csv");
    load(&data, &b);
    assert_eq!(one_number(&k, "SELECT count(*) FROM b", &limits), 300);
    assert_eq!(k.started(), 1);
}

#[test]
fn a_worker_killed_by_a_limit_is_replaced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let a = tmp.path().join("a.csv");
    quarry_testdata::write_big_csv(&a, 100).expect("csv");
    load(&data, &a);
    let limits = small_limits();
    let k = SqlWorkers::new(launcher(), &data, limits.clone(), 1);
    assert_eq!(one_number(&k, "SELECT count(*) FROM a", &limits), 100);
    // A value the memory pool does not track: the address-space limit ends the worker.
    let hog = "SELECT length(repeat('x', 2100000000)) AS n";
    let e = k.query(hog, &limits).expect_err("the hog fails");
    assert_eq!(e.kind, ErrorKind::MemoryLimit, "{e:?}");
    assert!(e.message.contains("killed"), "{e:?}");
    assert_eq!(one_number(&k, "SELECT count(*) FROM a", &limits), 100, "the next query works");
    assert_eq!(k.started(), 2, "the dead worker was replaced");
}

#[test]
fn a_timeout_cancels_the_query_and_the_next_one_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let a = tmp.path().join("a.csv");
    quarry_testdata::write_big_csv(&a, 3000).expect("csv");
    load(&data, &a);
    let limits = Limits { time: Duration::from_secs(1), ..small_limits() };
    let k = SqlWorkers::new(launcher(), &data, limits.clone(), 1);
    let started = std::time::Instant::now();
    let slow = "SELECT count(*) FROM a x, a y, a z WHERE x.tested + y.tested + z.tested = -1";
    let e = k.query(slow, &limits).expect_err("too slow");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(8), "cancelled promptly: {:?}", started.elapsed());
    assert_eq!(one_number(&k, "SELECT count(*) FROM a", &limits), 3000);
}

#[test]
fn a_cross_join_needing_100_gib_fails_within_the_memory_cap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let a = tmp.path().join("a.csv");
    quarry_testdata::write_big_csv(&a, 200_000).expect("csv");
    load(&data, &a);
    // 200 000² rows sorted: far beyond 100 GiB if it were materialised.
    let limits = Limits { time: Duration::from_secs(60), ..small_limits() };
    let k = SqlWorkers::new(launcher(), &data, limits.clone(), 1);
    let sql = "SELECT x.facility, y.facility, x.tested * y.tested AS p FROM a x CROSS JOIN a y ORDER BY p DESC, 1, 2";
    let e = k.query(sql, &limits).expect_err("cannot fit");
    assert_eq!(e.kind, ErrorKind::MemoryLimit, "{e:?}");
    assert!(e.hint.contains("memory"), "{e:?}");
    assert_eq!(one_number(&k, "SELECT count(*) FROM a", &limits), 200_000);
}

#[test]
fn ingest_runs_in_a_worker_and_its_failures_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let bad = tmp.path().join("broken.xlsx");
    std::fs::write(&bad, b"PK\x03\x04 not really a workbook").expect("write");
    let w = IngestWorkers::new(launcher(), &data, Limits::for_ingest(), 1);
    let e = w.load(&bad, &IngestOptions::default(), &Quiet).expect_err("broken");
    assert!(e.to_string().contains("broken.xlsx"), "{e}");
    // A worker too small to read the file fails cleanly, naming the file.
    let big = tmp.path().join("big.csv");
    quarry_testdata::write_big_csv(&big, 50_000).expect("csv");
    let tiny = Limits { address_space_bytes: 64 << 20, ..Limits::for_ingest() };
    let w = IngestWorkers::new(launcher(), &data, tiny, 1);
    let e = w.load(&big, &IngestOptions::default(), &Quiet).expect_err("too small");
    assert!(e.to_string().contains("big.csv"), "{e}");
    // The same file through a normal worker loads.
    let w = IngestWorkers::new(launcher(), &data, Limits::for_ingest(), 1);
    let r = w.load(&big, &IngestOptions::default(), &Quiet).expect("loads");
    assert_eq!(r.tables[0].table.rows, 50_000);
}
