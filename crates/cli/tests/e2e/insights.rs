//! The insights pass on the real engine in real workers: every anomaly the
//! generator planted is found where it was planted, and the clean table
//! shows none of those kinds.

use quarry_agent::insights::{analyse, InsightKind, Insights};
use quarry_engine::worker::SqlWorkers;
use quarry_ingest::catalog::Catalog;
use quarry_sandbox::Limits;
use quarry_testdata::anomalies::write_facility_months;
use serde_json::json;

use crate::common::{launcher, load};

fn insights_of(plant: bool) -> (Insights, quarry_testdata::anomalies::Planted) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("facility_months.csv");
    let planted = write_facility_months(&csv, plant).unwrap();
    let data = dir.path().join("data");
    load(&data, &csv);
    let entry = Catalog::open(&data).unwrap().entry("facility_months", None).unwrap();
    let kernel = SqlWorkers::new(launcher(), &data, Limits::default(), 1);
    (analyse(&entry, &kernel, &Limits::default()), planted)
}

/// (facility, month) of each result row.
fn places(f: &quarry_agent::insights::Finding) -> Vec<(String, String)> {
    let t = f.result.as_ref().expect("a result");
    let col = |n: &str| t.columns.iter().position(|c| c.name == n).unwrap_or_else(|| panic!("{n} in {:?}", t.columns));
    let (fi, mi) = (col("facility"), col("month"));
    t.rows.iter().map(|r| (r[fi].as_str().unwrap().to_string(), r[mi].as_str().unwrap().to_string())).collect()
}

#[test]
fn every_planted_anomaly_is_found_where_it_was_planted() {
    let (ins, planted) = insights_of(true);
    assert!(ins.skipped.is_empty(), "{:?}", ins.skipped);

    let impossible = ins.of(InsightKind::ImpossibleValues);
    assert_eq!(impossible.len(), 1, "{impossible:#?}");
    assert_eq!(impossible[0].columns, ["positive", "tested"]);
    let mut found = places(impossible[0]);
    found.sort();
    let mut want = planted.positives_over_tested.clone();
    want.sort();
    assert_eq!(found, want);
    assert!(impossible[0].text.starts_with("2 rows have positive greater than tested"), "{}", impossible[0].text);

    let missing = ins.of(InsightKind::MissingPeriods);
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].columns, ["facility", "month"]);
    let t = missing[0].result.as_ref().unwrap();
    let rows: Vec<(String, String)> =
        t.rows.iter().map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into())).collect();
    assert_eq!(rows, planted.missing);
    assert!(missing[0]
        .text
        .contains(&format!("({} facility values × {} month values expected)", planted.facilities, planted.months)));

    let outliers = ins.of(InsightKind::Outliers);
    let tested = outliers.iter().find(|f| f.columns[0] == "tested").expect("an outlier in tested");
    assert_eq!(places(tested), [(planted.outlier.0.clone(), planted.outlier.1.clone())]);
    let t = tested.result.as_ref().unwrap();
    let xi = t.columns.iter().position(|c| c.name == "tested").unwrap();
    assert_eq!(t.rows[0][xi], json!(planted.outlier.2));

    let dups = ins.of(InsightKind::DuplicateRows);
    assert_eq!(dups.len(), 1);
    assert_eq!(places(dups[0]), std::slice::from_ref(&planted.duplicated));
    assert!(dups[0].text.starts_with("1 row appears more than once (1 extra copy)"), "{}", dups[0].text);

    // Each finding's SQL shows it: run again, it gives the same result.
    assert!(ins.findings.iter().all(|f| !f.sql.is_empty()));
    assert_eq!(ins.findings[0].kind, InsightKind::ImpossibleValues, "the most serious first");
}

#[test]
fn a_clean_table_has_none_of_the_planted_kinds() {
    let (ins, _) = insights_of(false);
    for kind in
        [InsightKind::ImpossibleValues, InsightKind::MissingPeriods, InsightKind::Outliers, InsightKind::DuplicateRows]
    {
        assert!(ins.of(kind).is_empty(), "{kind:?}: {:#?}", ins.of(kind));
    }
    assert!(
        ins.of(InsightKind::SuddenChange).is_empty() && ins.of(InsightKind::SpellingVariants).is_empty(),
        "{:#?}",
        ins.findings
    );
}

/// `quarry insights --explain`: in `full` the model gets the findings and
/// writes the summary, and a number it made up is flagged; in `strict` the
/// findings (which quote values) never reach it.
#[test]
fn the_model_summarises_findings_only_where_privacy_allows_and_its_numbers_are_checked() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("facility_months.csv");
    write_facility_months(&csv, true).unwrap();
    let fake = FakeLlm::start(Script::new(vec![Reply::text(
        "2 rows have more positives than tests; check them first. About 37 facilities look fine.",
    )]));
    let url = fake.openai_url();
    let run = |privacy: &str| {
        crate::common::clean_llm_env(&mut std::process::Command::new(env!("CARGO_BIN_EXE_quarry")))
            .args(["insights", "facility_months.csv", "--explain", "--privacy", privacy])
            .args(["--llm-base-url", url.as_str(), "--llm-model", "m"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let strict = run("strict");
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("privacy mode strict keeps from the model"));
    assert!(fake.requests().is_empty(), "nothing reached the model in strict");

    let full = run("full");
    let out = String::from_utf8_lossy(&full.stdout);
    assert!(full.status.success(), "{out}\n{}", String::from_utf8_lossy(&full.stderr));
    assert!(out.contains("In m's words (the numbers are the findings'):"), "{out}");
    assert!(out.contains("2 rows have more positives than tests"), "{out}");
    assert!(out.contains("(Not from the data: 37 — no finding holds it.)"), "{out}");
    let sent = fake.requests()[0].body.to_string();
    assert!(sent.contains("2 rows have positive greater than tested"), "the findings, as data: {sent}");
}
