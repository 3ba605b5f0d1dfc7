//! The malaria pack bound to the shared NMEP workbook and the DHIS2 export:
//! the binding is only proposed until confirmed, and once confirmed its TPR
//! (per state, and per age group read from the wide columns' names) and
//! reporting completeness equal what this test computes itself from the
//! table's rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{ok, quarry};

use serde_json::Value;

fn rows(dir: &Path, table: &str) -> Vec<serde_json::Map<String, Value>> {
    let out =
        ok(&quarry(dir, &["sql", "-q", &format!("SELECT * FROM {table}"), "--format", "json", "--max-rows", "100000"]));
    serde_json::from_str::<Vec<Value>>(&out).unwrap().into_iter().map(|v| v.as_object().unwrap().clone()).collect()
}

fn num(r: &serde_json::Map<String, Value>, cols: &[&str]) -> f64 {
    cols.iter().map(|c| r.get(*c).and_then(Value::as_f64).unwrap_or(0.0)).sum()
}

fn text(r: &serde_json::Map<String, Value>, cols: &[&str]) -> String {
    cols.iter().map(|c| r.get(*c).map(|v| v.to_string()).unwrap_or_default()).collect::<Vec<_>>().join(" / ")
}

fn last_table(dir: &Path, analysis: &str) -> Vec<Vec<Value>> {
    let v: Value = serde_json::from_str(&ok(&quarry(dir, &["analysis", "show", analysis, "--json"]))).unwrap();
    let run = v["runs"].as_array().unwrap().last().unwrap();
    assert_eq!(run["ok"], true, "{run}");
    run["table"]["rows"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect()
}

struct Case<'a> {
    file: &'a str,
    table: &'a str,
    tested: &'a [&'a str],
    positive: &'a [&'a str],
    admin_1: &'a str,
    facility: &'a [&'a str],
    period: &'a str,
    /// Age groups read from the column names: label, tested, positive.
    ages: &'a [(&'a str, &'a [&'a str], &'a [&'a str])],
}

fn check(case: &Case) {
    let Some(fixtures) = quarry_testdata::shared_dir("fixtures") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&quarry(dir, &["load", fixtures.join(case.file).to_str().unwrap()]));
    let proposed = ok(&quarry(dir, &["pack", "bind", "malaria-routine", "--table", case.table]));
    assert!(proposed.contains("Nothing saved yet"), "{proposed}");
    assert!(proposed.contains(&format!("tested     {}", case.tested.join(" + "))), "{proposed}");
    assert!(proposed.contains(&format!("facility   {}", case.facility.join(" + "))), "{proposed}");
    assert!(proposed.contains("age_group  from the column names (optional)"), "{proposed}");
    for (label, tested, positive) in case.ages {
        let line = format!("{label} — positive: {}; tested: {}", positive.join(" + "), tested.join(" + "));
        assert!(proposed.contains(&line), "{line}\n{proposed}");
    }
    assert!(!dir.join("quarry-data/analyses").exists(), "nothing is bound before it is confirmed");
    ok(&quarry(dir, &["pack", "bind", "malaria-routine", "--table", case.table, "--yes"]));

    let data = rows(dir, case.table);
    let mut by_state: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for r in &data {
        let e = by_state.entry(text(r, &[case.admin_1])).or_default();
        e.0 += num(r, case.positive);
        e.1 += num(r, case.tested);
    }
    let got = last_table(dir, &format!("tpr_by_admin_1-{}", case.table));
    assert_eq!(got.len(), by_state.len());
    for row in &got {
        let (p, t) = by_state[&row[0].to_string()];
        assert_eq!(row[1].as_f64().unwrap(), p, "{row:?}");
        assert!(
            (row[3].as_f64().unwrap() - 100.0 * p / t).abs() < 1e-9,
            "TPR of {}: {row:?} vs {}",
            row[0],
            100.0 * p / t
        );
    }

    // TPR by age group from the wide columns, each group's columns summed.
    let got = last_table(dir, &format!("tpr_by_age_group-{}", case.table));
    assert_eq!(got.len(), case.ages.len(), "{got:?}");
    for (label, tested, positive) in case.ages {
        let row = got.iter().find(|r| r[0] == *label).unwrap_or_else(|| panic!("no group {label}: {got:?}"));
        let p: f64 = data.iter().map(|r| num(r, positive)).sum();
        let t: f64 = data.iter().map(|r| num(r, tested)).sum();
        assert_eq!((row[1].as_f64().unwrap(), row[2].as_f64().unwrap()), (p, t), "{label}: {row:?}");
        assert!((row[3].as_f64().unwrap() - 100.0 * p / t).abs() < 1e-9, "{label}: {row:?}");
    }

    let all: BTreeSet<String> = data.iter().map(|r| text(r, case.facility)).collect();
    let mut per: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &data {
        per.entry(text(r, &[case.period])).or_default().insert(text(r, case.facility));
    }
    let got = last_table(dir, &format!("reporting_completeness-{}", case.table));
    assert_eq!(got.len(), per.len());
    for row in &got {
        let reporting = per[&row[0].to_string()].len();
        assert_eq!(row[1].as_u64().unwrap() as usize, reporting, "{row:?}");
        assert_eq!(row[2].as_u64().unwrap() as usize, all.len());
        assert!((row[3].as_f64().unwrap() - 100.0 * reporting as f64 / all.len() as f64).abs() < 1e-9);
    }
}

#[test]
fn the_malaria_pack_on_the_nmep_workbook() {
    check(&Case {
        file: "nmep_tpr_2024.xlsx",
        table: "nmep_tpr_2024_facility_data",
        tested: &[
            "presenting_fever_tested_rdt_lt5yrs",
            "presenting_fever_tested_rdt_ge5yrs",
            "presenting_fever_tested_rdt_preg_women",
            "microscopy_tested",
        ],
        positive: &[
            "tested_positive_malaria_rdt_lt5yrs",
            "tested_positive_malaria_rdt_ge5yrs",
            "tested_positive_malaria_rdt_preg_women",
            "microscopy_positive",
        ],
        admin_1: "location_state",
        facility: &["location_ward", "location_health_facility"],
        period: "period_month",
        ages: &[
            ("<5 yrs", &["presenting_fever_tested_rdt_lt5yrs"], &["tested_positive_malaria_rdt_lt5yrs"]),
            ("≥5 yrs", &["presenting_fever_tested_rdt_ge5yrs"], &["tested_positive_malaria_rdt_ge5yrs"]),
            ("preg women", &["presenting_fever_tested_rdt_preg_women"], &["tested_positive_malaria_rdt_preg_women"]),
            ("not split by age", &["microscopy_tested"], &["microscopy_positive"]),
        ],
    });
}

#[test]
fn the_malaria_pack_on_the_dhis2_export() {
    check(&Case {
        file: "dhis2_export_kwara_style.xls",
        table: "dhis2_export_kwara_style",
        tested: &[
            "presenting_fever_tested_rdt_lt5yrs",
            "presenting_fever_tested_rdt_gt5yrs",
            "presenting_fever_tested_rdt_preg_women",
            "presenting_fever_tested_microscopy_lt5yrs",
        ],
        positive: &[
            "tested_positive_malaria_rdt_lt5yrs",
            "tested_positive_malaria_rdt_gt5yrs",
            "tested_positive_malaria_rdt_preg_women",
            "tested_positive_malaria_microscopy_lt5yrs",
        ],
        admin_1: "orgunitlevel2",
        facility: &["orgunitlevel3", "ward", "organisationunit0me"],
        period: "period0me",
        ages: &[
            (
                "<5 yrs",
                &["presenting_fever_tested_rdt_lt5yrs", "presenting_fever_tested_microscopy_lt5yrs"],
                &["tested_positive_malaria_rdt_lt5yrs", "tested_positive_malaria_microscopy_lt5yrs"],
            ),
            (">5 yrs", &["presenting_fever_tested_rdt_gt5yrs"], &["tested_positive_malaria_rdt_gt5yrs"]),
            ("preg women", &["presenting_fever_tested_rdt_preg_women"], &["tested_positive_malaria_rdt_preg_women"]),
        ],
    });
}
