//! Saved analyses through the real binary: an answer saved with a confirmed
//! parameter runs again with no model, with other values bound as data; a
//! new version of its table (next month's workbook) re-runs it with a
//! comparison stating both numbers; a renamed column is a named error. The
//! same for an answer in Python: its steps kept, the parameter a variable.

use std::path::Path;

use crate::common::{ok, quarry};

use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_testdata::{write_clinic_workbook_with, ClinicOptions};
use serde_json::{json, Value};

fn grouped(n: i64) -> String {
    let s = n.to_string();
    s.chars().enumerate().fold(String::new(), |mut out, (k, c)| {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
        out
    })
}

fn state(truth: &quarry_testdata::Truth, name: &str) -> i64 {
    truth.positive_ge5_by_state.iter().find(|(s, _)| s == name).unwrap().1
}

fn last_run(dir: &Path, name: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(&quarry(dir, &["analysis", "show", name, "--json"]))).unwrap();
    v["runs"].as_array().unwrap().last().unwrap().clone()
}

#[test]
fn a_saved_analysis_reruns_on_new_data_with_parameters_bound_as_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wb = dir.join("clinics.xlsx");
    let june = write_clinic_workbook_with(&wb, &ClinicOptions::default()).unwrap();
    let sql =
        "SELECT sum(tested_positive_rdt_ge5yrs) AS positives FROM clinics_monthly_data WHERE location_state = 'Kano'";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool("final_answer", json!({"answer": "{positives} people aged 5 and over tested positive."})),
    ]));
    let url = fake.openai_url();
    let q = "Positives aged 5+ in Kano?";
    let llm = ["--llm-base-url", url.as_str(), "--llm-model", "m", "--no-python"];
    let saved = quarry(
        dir,
        &[&["ask", "clinics.xlsx", q, "--save-as", "kano_positives", "--param", "location_state=state"][..], &llm]
            .concat(),
    );
    ok(&saved);
    assert!(String::from_utf8_lossy(&saved.stderr)
        .contains("parameter $state (compared with location_state), default \"Kano\""));
    // Or saved from `ask --json`'s answer (here the stored answer: no model asked).
    let answer = quarry(dir, &[&["ask", "clinics.xlsx", q, "--json"][..], &llm].concat());
    std::fs::write(dir.join("answer.json"), ok(&answer)).unwrap();
    let out = quarry(dir, &["analysis", "save", "kano_copy", "--answer", "answer.json"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("could also be parameters (save again with --param COLUMN): location_state = \"Kano\""));
    ok(&quarry(dir, &["analysis", "remove", "kano_copy"]));
    let show: Value =
        serde_json::from_str(&ok(&quarry(dir, &["analysis", "show", "kano_positives", "--json"]))).unwrap();
    assert_eq!(show["analysis"]["code"], sql.replace("'Kano'", "$state"), "the literal is a placeholder");

    // Another value, bound as data, with no model.
    let asked = fake.requests().len();
    let lagos: Value = serde_json::from_str(&ok(&quarry(
        dir,
        &["analysis", "run", "kano_positives", "--param", "state=Lagos", "--json"],
    )))
    .unwrap();
    assert_eq!(lagos["table"]["rows"][0][0], json!(state(&june, "Lagos")));
    assert_eq!(
        lagos["narrative"],
        format!("{} people aged 5 and over tested positive.", grouped(state(&june, "Lagos")))
    );
    let hostile =
        quarry(dir, &["analysis", "run", "kano_positives", "--param", "state=Kano'); DROP TABLE x; --", "--json"]);
    let hostile: Value = serde_json::from_str(&ok(&hostile)).unwrap();
    assert_eq!(hostile["table"]["rows"][0][0], Value::Null, "no state is spelled like that: the value is data");
    assert!(ok(&quarry(dir, &["tables"])).contains("clinics_monthly_data"));
    ok(&quarry(dir, &["analysis", "run", "kano_positives"]));
    assert_eq!(fake.requests().len(), asked, "analyses run with no model");

    // Next month's workbook: a new version, the analysis runs again by itself.
    let july = write_clinic_workbook_with(&wb, &ClinicOptions { months: 7, ..ClinicOptions::default() }).unwrap();
    let load = ok(&quarry(dir, &["load", "clinics.xlsx"]));
    let (before, after) = (state(&june, "Kano"), state(&july, "Kano"));
    let line = format!("positives: {} → {}", grouped(before), grouped(after));
    assert!(load.contains(&line), "{load}");
    let run = last_run(dir, "kano_positives");
    assert_eq!(run["table"]["rows"][0][0], json!(after));
    assert_eq!(run["trigger"], "new data: clinics_monthly_data v2");
    assert_eq!(run["params"], json!([{"name": "state", "value": "Kano"}]));

    // A renamed column, arriving through `quarry watch`: a clear error naming both.
    let renamed = ClinicOptions { months: 7, positives_header: "Persons confirmed positive by RDT" };
    write_clinic_workbook_with(&wb, &renamed).unwrap();
    let watched = quarry(dir, &["watch", ".", "--once"]);
    ok(&watched);
    let run = last_run(dir, "kano_positives");
    assert_eq!(run["ok"], false);
    let err = run["error"].as_str().unwrap();
    assert!(err.contains("column 'tested_positive_rdt_ge5yrs' of table clinics_monthly_data"), "{err}");
    assert!(err.contains("'confirmed_positive_rdt_ge5yrs'"), "the closest new name: {err}");
    assert!(String::from_utf8_lossy(&watched.stderr).contains("failed on the new data"));
}

/// Next month's export under its own file name (`…_07` after `…_06`) is the
/// same report: the analysis follows it and states both numbers; another
/// report of the same shape is left alone.
#[test]
fn an_analysis_follows_the_next_file_of_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let june = write_clinic_workbook_with(&dir.join("clinics_2024_06.xlsx"), &ClinicOptions::default()).unwrap();
    let table = "clinics_2024_06_monthly_data";
    let sql = format!("SELECT sum(tested_positive_rdt_ge5yrs) AS positives FROM {table} WHERE location_state = 'Kano'");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool("final_answer", json!({"answer": "{positives} positives."})),
    ]));
    let url = fake.openai_url();
    let args =
        ["ask", "clinics_2024_06.xlsx", "Kano positives?", "--save-as", "kano", "--param", "location_state=state"];
    ok(&quarry(dir, &[&args[..], &["--llm-base-url", url.as_str(), "--llm-model", "m", "--no-python"]].concat()));

    // Another report with the same columns: not this analysis's file.
    write_clinic_workbook_with(&dir.join("district_returns.xlsx"), &ClinicOptions::default()).unwrap();
    ok(&quarry(dir, &["load", "district_returns.xlsx"]));
    assert_eq!(last_run(dir, "kano")["number"], 1);

    let july = write_clinic_workbook_with(
        &dir.join("clinics_2024_07.xlsx"),
        &ClinicOptions { months: 7, ..ClinicOptions::default() },
    )
    .unwrap();
    let load = ok(&quarry(dir, &["load", "clinics_2024_07.xlsx"]));
    let line = format!("positives: {} → {}", grouped(state(&june, "Kano")), grouped(state(&july, "Kano")));
    assert!(load.contains(&line), "{load}");
    let show: Value = serde_json::from_str(&ok(&quarry(dir, &["analysis", "show", "kano", "--json"]))).unwrap();
    assert_eq!(show["analysis"]["tables"], json!(["clinics_2024_07_monthly_data"]));
    let run = last_run(dir, "kano");
    assert_eq!(run["trigger"], "new file: clinics_2024_07_monthly_data (the next clinics_2024_06_monthly_data)");
    assert_eq!(run["table"]["rows"][0][0], json!(state(&july, "Kano")));
}

/// A Python answer of two steps saved with a parameter: the literal becomes
/// a variable the kernel sets (never code), both steps run again in a fresh
/// kernel with no model, and next month's version re-runs it.
#[test]
fn a_saved_python_analysis_binds_its_parameter_as_a_variable() {
    crate::common::ensure_python_runtime();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wb = dir.join("clinics.xlsx");
    let june = write_clinic_workbook_with(&wb, &ClinicOptions::default()).unwrap();
    let step1 = "rows = df[df['location_state'] == 'Kano']";
    let step2 = "pd.DataFrame({'positives': [int(rows['tested_positive_rdt_ge5yrs'].sum())]})";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_python", json!({"code": step1})),
        Reply::tool("run_python", json!({"code": step2})),
        Reply::tool("final_answer", json!({"answer": "{positives} people aged 5 and over tested positive."})),
    ]));
    let url = fake.openai_url();
    let llm = ["--llm-base-url", url.as_str(), "--llm-model", "m"];
    let q = "Positives aged 5+ in Kano, in pandas";
    let saved = quarry(
        dir,
        &[&["ask", "clinics.xlsx", q, "--save-as", "kano_py", "--param", "location_state=state"][..], &llm].concat(),
    );
    ok(&saved);
    let show: Value = serde_json::from_str(&ok(&quarry(dir, &["analysis", "show", "kano_py", "--json"]))).unwrap();
    assert_eq!(show["analysis"]["language"], "python");
    assert_eq!(show["analysis"]["before"], json!(["rows = df[df['location_state'] == state]"]));
    assert_eq!(show["analysis"]["code"], step2);
    assert_eq!(last_run(dir, "kano_py")["table"]["rows"][0][0], json!(state(&june, "Kano")));

    let asked = fake.requests().len();
    // Code in the value stays a string the filter compares with.
    let hostile = "Kano'] ; import os; os.system('touch pwned'); x = df['a";
    let run = quarry(dir, &["analysis", "run", "kano_py", "--param", &format!("state={hostile}"), "--json"]);
    let run: Value = serde_json::from_str(&ok(&run)).unwrap();
    assert_eq!(run["table"]["rows"][0][0], json!(0), "no state is spelled like that: {run}");
    assert!(!dir.join("pwned").exists());
    let lagos: Value =
        serde_json::from_str(&ok(&quarry(dir, &["analysis", "run", "kano_py", "--param", "state=Lagos", "--json"])))
            .unwrap();
    assert_eq!(lagos["table"]["rows"][0][0], json!(state(&june, "Lagos")));
    assert_eq!(
        lagos["narrative"],
        format!("{} people aged 5 and over tested positive.", grouped(state(&june, "Lagos")))
    );
    assert_eq!(fake.requests().len(), asked, "analyses run with no model");

    let july = write_clinic_workbook_with(&wb, &ClinicOptions { months: 7, ..ClinicOptions::default() }).unwrap();
    let load = ok(&quarry(dir, &["load", "clinics.xlsx"]));
    let line = format!("positives: {} → {}", grouped(state(&june, "Lagos")), grouped(state(&july, "Lagos")));
    assert!(load.contains(&line), "re-run with its last parameters (Lagos): {load}");
}
