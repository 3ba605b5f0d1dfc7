//! The engine over a real catalog built from the project's generated files.

use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use quarry_engine::{Engine, ErrorKind, Limits, Rule};
use quarry_ingest::catalog::Catalog;
use quarry_ingest::{IngestOptions, Quiet};

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    truth: quarry_testdata::Truth,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let wb = dir.path().join("clinics.xlsx");
    let truth = quarry_testdata::write_clinic_workbook(&wb).expect("workbook");
    let pop = dir.path().join("population.csv");
    let mut s = String::from("state,population\n");
    for (i, (state, _)) in quarry_testdata::STATES.iter().enumerate() {
        s.push_str(&format!("{},{}\n", state.to_uppercase(), 1000 * (i + 1)));
    }
    std::fs::write(&pop, s).expect("csv");
    let mut catalog = Catalog::open(&dir.path().join("data")).expect("catalog");
    catalog.load(&wb, &IngestOptions::default(), &Quiet).expect("load wb");
    catalog.load(&pop, &IngestOptions::default(), &Quiet).expect("load csv");
    Fixture { _dir: dir, catalog, truth }
}

fn one_i64(r: &quarry_engine::QueryResult) -> i64 {
    r.batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test]
async fn known_answers_and_joins() {
    let f = fixture();
    let e = Engine::open(&f.catalog, Limits::default()).await.expect("engine");
    let r = e.query("SELECT sum(tested_positive_rdt_ge5yrs) FROM clinics_monthly_data").await.expect("sum");
    assert_eq!(one_i64(&r), f.truth.positive_ge5_sum);
    let r = e
        .query(
            "SELECT c.location_state, p.population, count(*) AS n FROM clinics_monthly_data c \
             JOIN population p ON lower(p.state) = lower(c.location_state) GROUP BY 1, 2 ORDER BY 1",
        )
        .await
        .expect("join");
    assert_eq!(r.rows, f.truth.states);
    let r = e.query("SELECT count(*) FROM versions.clinics_monthly_data_v1").await.expect("versions");
    assert_eq!(one_i64(&r) as usize, f.truth.data_rows);
    // Analysis functions analysts reach for.
    e.query(
        "SELECT median(tested_malaria_rdt_lt5yrs), stddev(tested_malaria_rdt_lt5yrs), \
         corr(tested_malaria_rdt_lt5yrs, tested_positive_rdt_lt5yrs), regr_slope(tested_positive_rdt_lt5yrs, tested_malaria_rdt_lt5yrs), \
         approx_percentile_cont(tested_malaria_rdt_lt5yrs, 0.9), date_trunc('month', period_month), \
         regexp_replace(max(location_state), 'a', 'A'), nullif(0, 0) FROM clinics_monthly_data GROUP BY period_month",
    )
    .await
    .expect("analysis functions");
}

#[tokio::test]
async fn the_guard_refuses_with_typed_rules() {
    let f = fixture();
    let e = Engine::open(&f.catalog, Limits::default()).await.expect("engine");
    let cases = [
        ("SELECT 1; DROP TABLE clinics_monthly_data", Rule::StackedStatements),
        ("CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'", Rule::NotAQuery),
        ("COPY (SELECT 1) TO '/tmp/pwned_engine_test.csv'", Rule::NotAQuery),
        ("SET datafusion.execution.batch_size = 1", Rule::NotAQuery),
    ];
    for (q, rule) in cases {
        let err = e.query(q).await.expect_err(q);
        assert_eq!(err.kind, ErrorKind::Refused, "{q}: {err}");
        assert_eq!(err.refusal.as_ref().map(|r| r.rule), Some(rule), "{q}");
    }
    assert!(!std::path::Path::new("/tmp/pwned_engine_test.csv").exists());
    // Nothing outside the catalog is reachable by name.
    let err = e.query("SELECT * FROM '/etc/passwd'").await.expect_err("file path as table");
    assert_ne!(err.kind, ErrorKind::Internal, "{err}");
}

#[tokio::test]
async fn errors_the_model_can_fix() {
    let f = fixture();
    let e = Engine::open(&f.catalog, Limits::default()).await.expect("engine");
    let err = e.query("SELECT location_stat FROM clinics_monthly_data").await.expect_err("unknown column");
    assert_eq!(err.kind, ErrorKind::UnknownName, "{err}");
    assert!(err.hint.contains("location_state"), "{err}");
    let err = e.query("SELECT * FROM clinic_monthly_data").await.expect_err("unknown table");
    assert_eq!(err.kind, ErrorKind::UnknownName, "{err}");
    assert!(err.hint.contains("did you mean clinics_monthly_data"), "{err}");
    let err = e
        .query("SELECT location_state FROM clinics_monthly_data a, clinics_monthly_data b LIMIT 1")
        .await
        .expect_err("ambiguous");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(err.hint.contains("qualify") && err.hint.contains("clinics_monthly_data.location_state"), "{err}");
    let err = e.query("SELECT location_state + 1 FROM clinics_monthly_data").await.expect_err("type mismatch");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(err.hint.contains("CAST") || err.hint.contains("try_cast"), "{err}");
    // Redaction is a property of the error: no cell value survives it.
    let err = e.query("SELECT CAST(location_state AS INT) FROM clinics_monthly_data").await.expect_err("cast");
    let red = err.redacted();
    for state in ["Kano", "Lagos", "Kaduna", "Rivers"] {
        assert!(!red.contains(state), "{red}");
    }
}

#[tokio::test]
async fn limits_hold() {
    let f = fixture();
    let small = Limits { memory_bytes: 32 << 20, time: Duration::from_secs(2), max_rows: 1000, ..Limits::default() };
    let e = Engine::open(&f.catalog, small).await.expect("engine");
    let r = e.query("SELECT * FROM range(100000)").await.expect("capped");
    assert_eq!((r.rows, r.truncated), (1000, true));
    let started = std::time::Instant::now();
    let err = e
        .query("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r")
        .await
        .expect_err("never ends");
    assert!(matches!(err.kind, ErrorKind::Timeout | ErrorKind::MemoryLimit), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = e
        .query("SELECT value % 5000000 AS k, count(*) FROM range(20000000) GROUP BY k ORDER BY k")
        .await
        .expect_err("needs more than 32 MiB");
    assert!(matches!(err.kind, ErrorKind::MemoryLimit | ErrorKind::Timeout), "{err}");
}
