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

fn strings(r: &quarry_engine::QueryResult, col: usize) -> Vec<Option<String>> {
    use datafusion::arrow::array::Array;
    let mut out = Vec::new();
    for b in &r.batches {
        let c = datafusion::arrow::compute::cast(b.column(col), &datafusion::arrow::datatypes::DataType::Utf8)
            .expect("cast");
        let c = c.as_string::<i32>();
        out.extend((0..c.len()).map(|i| (!c.is_null(i)).then(|| c.value(i).to_string())));
    }
    out
}

#[tokio::test]
async fn quarry_functions_safe_ratios_and_dates() {
    use datafusion::arrow::array::Array;
    let f = fixture();
    let e = Engine::open(&f.catalog, Limits::default()).await.expect("engine");
    let r = e
        .query(
            "SELECT safe_div(6, 3), safe_div(1, 0), safe_div(1, NULL), pct(1, 4), pct(5, 0), \
             excel_date(45292), excel_date(60), year_month(DATE '2024-06-30'), year_quarter(DATE '2024-06-30'), \
             year_quarter(TIMESTAMP '2024-10-01 08:00:00'), year_month('2024-02-29')",
        )
        .await
        .expect("functions");
    let row: Vec<Option<String>> = (0..11).map(|c| strings(&r, c).remove(0)).collect();
    let want = [
        Some("2.0"),
        None,
        None,
        Some("25.0"),
        None,
        Some("2024-01-01"),
        None,
        Some("2024-06"),
        Some("2024-Q2"),
        Some("2024-Q4"),
        Some("2024-02"),
    ];
    assert_eq!(row, want.map(|w| w.map(String::from)).to_vec());
    // On real columns: a positivity rate per quarter, never dividing by zero.
    let r = e
        .query(
            "SELECT year_quarter(period_month) AS q, pct(sum(tested_positive_rdt_ge5yrs), sum(tested_malaria_rdt_ge5yrs)) AS tpr \
             FROM clinics_monthly_data GROUP BY 1 ORDER BY 1",
        )
        .await
        .expect("tpr by quarter");
    let qs = strings(&r, 0);
    assert!(!qs.is_empty() && qs.iter().all(|q| q.as_deref().is_some_and(|q| q.starts_with("2024-Q"))), "{qs:?}");
    let tpr = r.batches[0].column(1).as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    assert!((0..tpr.len()).all(|i| tpr.is_null(i) || (0.0..=100.0).contains(&tpr.value(i))));
    // Wrong argument types are explained.
    let err = e.query("SELECT year_quarter(ARRAY[1])").await.expect_err("bad type");
    assert!(err.to_string().contains("year_quarter"), "{err}");
}
