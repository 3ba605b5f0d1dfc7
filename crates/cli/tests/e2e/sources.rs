//! Live sources through the real binary: an SQLite file made from the
//! project's generated facility data, connected read-only, joined in one
//! query with an uploaded population CSV — equal to the same computation on
//! the files; writes and the database's escape hatches refused; the file
//! never written; a source gone is a clear error while the files still work.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn quarry(dir: &Path, args: &[&str]) -> Output {
    crate::common::clean_llm_env(&mut Command::new(env!("CARGO_BIN_EXE_quarry")))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("quarry runs")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The facility CSV as an SQLite table, as a field app would export it.
fn sqlite_from_csv(csv: &Path, db: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(csv).unwrap();
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE facility_months (state TEXT, lga TEXT, facility TEXT, month TEXT, tested INTEGER, positive INTEGER)",
    )
    .unwrap();
    for r in &rows {
        conn.execute(
            "INSERT INTO facility_months VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![r[0], r[1], r[2], r[3], r[4].parse::<i64>().unwrap(), r[5].parse::<i64>().unwrap()],
        )
        .unwrap();
    }
    rows
}

#[test]
fn an_sqlite_source_joins_an_uploaded_file_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = dir.join("facility_months.csv");
    quarry_testdata::anomalies::write_facility_months(&csv, false).unwrap();
    let db = dir.join("field.db");
    let rows = sqlite_from_csv(&csv, &db);
    let pop = dir.join("population_2024.csv");
    quarry_testdata::write_population_csv(&pop).unwrap();
    ok(&quarry(dir, &["load", "population_2024.csv"]));
    let before = std::fs::read(&db).unwrap();

    assert!(err(&quarry(dir, &["connect", "field", "sqlite:/nowhere/app.db"]))
        .contains("no SQLite file at /nowhere/app.db"));
    let url = format!("sqlite:{}", db.display());
    let added = quarry(dir, &["connect", "field", &url]);
    assert_eq!(ok(&added).trim(), "field.facility_months");
    assert!(String::from_utf8_lossy(&added.stderr).contains("read-only"));
    assert!(ok(&quarry(dir, &["connect", "--list"])).contains("field  sqlite"));

    // TPR by state from the live table, joined with the uploaded population, in one query.
    let sql = "SELECT f.state, sum(f.positive) AS positive, sum(f.tested) AS tested, max(p.population_2024_projected) AS population \
               FROM field.facility_months f JOIN population_2024 p ON p.state = f.state GROUP BY f.state ORDER BY f.state";
    let out = ok(&quarry(dir, &["sql", "-q", sql, "--format", "json"]));
    let got: Vec<Value> = serde_json::from_str(&out).unwrap();
    let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &rows {
        let e = want.entry(r[0].clone()).or_default();
        e.0 += r[5].parse::<i64>().unwrap();
        e.1 += r[4].parse::<i64>().unwrap();
    }
    let pops: BTreeMap<String, i64> = std::fs::read_to_string(&pop)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (state, rest) = l.split_once(",\"").unwrap();
            (state.to_string(), rest.split('"').next().unwrap().replace(',', "").parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{out}");
    for g in &got {
        let state = g["state"].as_str().unwrap();
        assert_eq!((g["positive"].as_i64().unwrap(), g["tested"].as_i64().unwrap()), want[state], "{state}");
        assert_eq!(g["population"].as_i64().unwrap(), pops[state], "{state}");
    }

    // Writes and SQLite's own escape hatches are refused; the file is never written.
    for (attack, why) in [
        ("DELETE FROM field.facility_months", "refused (not_a_query)"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "refused (not_a_query)"),
        ("SELECT * FROM field.facility_months; DROP TABLE field.facility_months", "refused"),
        ("SELECT load_extension('/tmp/evil.so')", "Invalid function 'load_extension'"),
        ("SELECT sqlite_version()", "Invalid function 'sqlite_version'"),
    ] {
        let e = err(&quarry(dir, &["sql", "-q", attack]));
        assert!(e.contains(why), "{attack}: {e}");
    }
    // Only the needed columns and rows leave the database: the pushed-down SQL.
    let plan = ok(&quarry(
        dir,
        &["sql", "-q", "EXPLAIN SELECT facility FROM field.facility_months WHERE tested > 800 LIMIT 3"],
    ));
    assert!(plan.contains(r#"SqlExec sql=SELECT facility_months.facility FROM "main".facility_months WHERE (facility_months.tested > 800) LIMIT 3"#), "{plan}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the SQLite file is unchanged");
    assert!(!dir.join("field.db-wal").exists(), "no write-ahead log: the file was opened read-only");

    // The source gone: a clear error naming it; the uploaded files still answer.
    std::fs::rename(&db, dir.join("moved.db")).unwrap();
    let gone = err(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM field.facility_months"]));
    assert!(gone.contains("connection field") && gone.contains("no SQLite file"), "{gone}");
    ok(&quarry(dir, &["sql", "-q", "SELECT count(*) FROM population_2024"]));
    ok(&quarry(dir, &["connect", "--remove", "field"]));
    assert!(String::from_utf8_lossy(&quarry(dir, &["connect", "--list"]).stderr).contains("no connections yet"));
}
