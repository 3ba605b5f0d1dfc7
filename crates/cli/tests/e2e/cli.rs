//! The real `quarry` binary on real files.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::clean_llm_env;

fn quarry(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).current_dir(cwd).output().expect("quarry runs")
}

use quarry_testdata::shared_dir as shared;

#[test]
fn bad_files_exit_nonzero_with_one_clear_line() {
    let Some(bad) = shared("fixtures/bad") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&bad).expect("bad/") {
        let path = entry.expect("entry").path();
        for cmd in ["load", "profile"] {
            let started = std::time::Instant::now();
            let out = quarry(&[cmd, path.to_str().expect("utf8 path")], tmp.path());
            assert!(started.elapsed().as_secs() < 10);
            assert_eq!(out.status.code(), Some(1), "{} {}", cmd, path.display());
            let err = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(lines.len(), 1, "one message expected: {err}");
            assert!(lines[0].starts_with("error: ") && lines[0].contains(" — "), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn profile_json_has_the_documented_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = quarry_testdata::write_demo(tmp.path()).expect("demo");
    let args: Vec<&str> =
        ["profile", "--json"].into_iter().chain(files.iter().map(|f| f.to_str().expect("utf8"))).collect();
    let out = quarry(&args, tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let tables = v["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 5);
    for t in tables {
        for key in ["name", "source", "sheet", "rows", "columns", "notes"] {
            assert!(t.get(key).is_some(), "missing {key} in {t}");
        }
        for c in t["columns"].as_array().expect("columns") {
            for key in ["name", "label", "type", "nulls", "distinct"] {
                assert!(c.get(key).is_some(), "missing {key} in {c}");
            }
        }
    }
    let clinic = &tables[0];
    assert_eq!(clinic["sheet"], "Monthly Data");
    let month =
        clinic["columns"].as_array().expect("cols").iter().find(|c| c["name"] == "period_month").expect("month");
    assert_eq!(month["type"], "date");
    assert_eq!(month["min"], "2024-01-01");
}

#[test]
fn load_then_reload_is_a_no_op_and_tables_lists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("sales.csv");
    std::fs::write(&f, "region;amount\nNord;1,5\nSud;2,25\n").expect("write");
    let out = quarry(&["load", "sales.csv"], tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sales  2 rows × 2 columns  (new)"));
    let out = quarry(&["load", "sales.csv"], tmp.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(unchanged)"));
    assert!(tmp.path().join("quarry-data/tables/sales/v1.parquet").exists());
    let out = quarry(&["tables", "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tables"][0]["name"], "sales");
    assert_eq!(v["tables"][0]["columns"][1]["type"], "float");
    assert_eq!(v["tables"][0]["columns"][1]["sum"], 3.75);
}

#[test]
fn a_layout_chosen_on_load_is_kept_for_the_next_version() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("counts.csv");
    let rows = |n: usize| (0..n).map(|i| format!("R{i},{},{}\n", i + 1, i + 2)).collect::<String>();
    std::fs::write(&f, format!("Respondent,1,2\n{}", rows(2))).expect("write");
    let out = quarry(&["load", "counts.csv"], tmp.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("counts  3 rows × 3 columns  (new)"), "guessed: no header");
    let out = quarry(&["load", "counts.csv", "--header", "1"], tmp.path());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("counts  2 rows × 3 columns  (changed → version 2)"), "{s}");
    std::fs::write(&f, format!("Respondent,1,2\n{}", rows(3))).expect("write");
    let out = quarry(&["load", "counts.csv"], tmp.path());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("counts  3 rows × 3 columns  (changed → version 3)"), "the stored choice applies: {s}");
    let out = quarry(&["tables", "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tables"][0]["columns"][0]["name"], "respondent");
    let out = quarry(&["load", "counts.csv", "--header", "bogus"], tmp.path());
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("the header's row number"));
}

#[test]
fn excluded_rows_are_recoverable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("t.csv"), "a,b,c\nx,1,2\ny,3,4\nTotal,4,6\n").expect("write");
    assert!(quarry(&["load", "t.csv"], tmp.path()).status.success());
    let out = quarry(&["excluded", "t"], tmp.path());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("a total row") && s.contains("Total | 4 | 6"), "{s}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = quarry(&["profile", "nope.csv"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.csv") && err.contains("check the path"), "{err}");
}

#[test]
fn fake_llm_serves_a_script_and_records_requests() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tmp.path().join("s.yaml");
    std::fs::write(&script, "replies:\n  - Hello from the script\n").expect("script");
    let record = tmp.path().join("rec.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["fake-llm", "--script", script.to_str().unwrap(), "--record", record.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("url line");
    let url = line.split_whitespace().find(|w| w.ends_with("/v1")).expect("url").to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reply = rt.block_on(async {
        let cfg = quarry_llm::LlmConfig::resolve(
            &quarry_llm::LlmOverrides { base_url: Some(url), model: Some("m".into()), ..Default::default() },
            &|_| None,
            None,
        )
        .unwrap();
        let c = quarry_llm::Client::new(cfg).unwrap();
        let req = quarry_llm::ChatRequest {
            messages: vec![quarry_llm::Message::user("hi")],
            stream: true,
            ..Default::default()
        };
        c.chat(&req, &mut |_| {}, &quarry_llm::CancellationToken::new()).await
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply.expect("reply").text, "Hello from the script");
    let rec = std::fs::read_to_string(&record).expect("recorded");
    assert!(rec.contains("\"hi\""), "{rec}");
}

#[test]
fn ask_without_an_llm_names_what_to_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = quarry_testdata::write_demo(tmp.path()).expect("demo");
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["ask", files[0].to_str().unwrap(), "How many rows?"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("QUARRY_LLM_MODEL") && err.contains("http://localhost:11434/v1"), "{err}");
}

/// `quarry ask FILE QUESTION --json` in `dir` against the fake model: the answer object.
fn ask_json(dir: &Path, fake: &quarry_fake_llm::FakeLlm, file: &str, question: &str) -> serde_json::Value {
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(dir))
        .args(["ask", file, question, "--json", "--llm-base-url", &fake.openai_url(), "--llm-model", "m"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json answer")
}

#[test]
fn ask_json_and_chat_follow_ups_through_the_binary() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    use serde_json::json;
    let tmp = tempfile::tempdir().expect("tempdir");
    let wb = tmp.path().join("clinics.xlsx");
    let truth = quarry_testdata::write_clinic_workbook(&wb).expect("workbook");
    let sum = "SELECT sum(tested_positive_rdt_ge5yrs) AS positives FROM clinics_monthly_data";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sum})),
        Reply::tool("final_answer", json!({"answer": "Positives aged 5+."})),
    ]));
    let v = ask_json(tmp.path(), &fake, "clinics.xlsx", "How many positives aged 5+?");
    assert_eq!(v["ok"], true);
    assert_eq!(v["code"], sum);
    assert_eq!(v["language"], "sql");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["table"]["rows"][0][0], json!(truth.positive_ge5_sum));
    assert_eq!(v["table"]["columns"][0]["name"], "positives");

    // chat: a question and a follow-up on stdin.
    fake.set_script(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sum})),
        Reply::tool("final_answer", json!({"answer": "All states."})),
        Reply::tool("run_sql", json!({"sql": format!("{sum} WHERE location_state = 'Kano'")})),
        Reply::tool("final_answer", json!({"answer": "Kano only."})),
    ]));
    let mut child = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args([
            "chat",
            "--llm-base-url",
            &fake.openai_url(),
            "--llm-model",
            "m",
            "--no-cache",
            "--export",
            "chat.ipynb",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chat starts");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"positives aged 5+\nnow only for Kano\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("All states.") && stdout.contains("Kano only."), "{stdout}");
    let reqs = fake.requests();
    let follow_up = reqs.last().unwrap().raw.clone();
    assert!(follow_up.contains("positives aged 5+") && follow_up.contains("now only for Kano"), "{follow_up}");
    // --export: the whole chat as a notebook reading the catalog's Parquet file.
    let nb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("chat.ipynb")).expect("notebook written")).expect("json");
    let text = nb.to_string();
    assert!(text.contains("2. now only for Kano") && text.contains("location_state = 'Kano'"), "{text}");
    let parquet = tmp.path().join("quarry-data/tables/clinics_monthly_data");
    assert!(text.contains(parquet.to_str().unwrap()), "{text}");

    // An export format Quarry cannot write is refused before the model is asked.
    let asked = fake.requests().len();
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["ask", "How many?", "--export", "answer.docx", "--llm-base-url", &fake.openai_url(), "--llm-model", "m"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answer.docx") && err.contains("html, pdf or ipynb"), "{err}");
    assert_eq!(fake.requests().len(), asked);
}

/// A limit named in an error can be changed from the command line, and the
/// error says how.
#[test]
fn ingest_limits_are_set_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let header: Vec<String> = (1..=40).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    std::fs::write(tmp.path().join("wide.csv"), format!("{}\n{}\n", header.join(","), row.join(","))).unwrap();
    let out = quarry(&["--ingest-limit", "max_columns=20", "load", "wide.csv"], tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("wide.csv") && err.contains("--ingest-limit max_columns=N"), "{err}");
    let out = quarry(&["load", "wide.csv", "--ingest-limit", "max_columns=40"], tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = quarry(&["load", "wide.csv", "--ingest-limit", "max_colums=40"], tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("max_columns"), "a wrong name lists the right ones: {err}");
}

/// `quarry ask FILE "question"` is about FILE's table, not whatever else the
/// data directory holds.
#[test]
fn a_question_about_a_file_sees_only_that_files_tables() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    use serde_json::json;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("stock.csv"), "item,qty\nnets,10\n").unwrap();
    std::fs::write(tmp.path().join("tests.csv"), "state,tested\nKano,5\nLagos,7\n").unwrap();
    assert!(quarry(&["load", "stock.csv"], tmp.path()).status.success());
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT sum(tested) AS t FROM tests"})),
        Reply::tool("final_answer", json!({"answer": "Tests in all."})),
    ]));
    let v = ask_json(tmp.path(), &fake, "tests.csv", "How many tests?");
    assert_eq!(v["table"]["rows"][0][0], json!(12));
    let versions: Vec<&str> =
        v["provenance"]["data_versions"].as_array().unwrap().iter().filter_map(|d| d["table"].as_str()).collect();
    assert_eq!(versions, ["tests"], "the answer depends on the table asked about only");
    let first = &fake.requests()[0].raw;
    assert!(first.contains("<table name=\\\"tests\\\""), "{first}");
    assert!(!first.contains("stock"), "the other table stays out of the context: {first}");
    // --all-tables: the whole catalog.
    fake.set_script(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT sum(tested) AS t FROM tests"})),
        Reply::tool("final_answer", json!({"answer": "Tests in all."})),
    ]));
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["ask", "tests.csv", "How many tests?", "--all-tables", "--no-cache", "--json"])
        .args(["--llm-base-url", &fake.openai_url(), "--llm-model", "m"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reqs = fake.requests();
    assert!(reqs[reqs.len() - 2].raw.contains("<table name=\\\"stock\\\""), "every table with --all-tables");
}

/// `quarry eval` through the binary: scripted right and wrong answers score
/// right and wrong, the summary's rates follow, and a second run resumes
/// without asking again.
#[test]
fn eval_scores_a_suite_and_resumes() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    use serde_json::json;
    let tmp = tempfile::tempdir().expect("tempdir");
    let suite = quarry_testdata::write_eval_suite(&tmp.path().join("suite")).expect("suite");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool(
            "run_sql",
            json!({"sql": "SELECT sum(tested_positive_rdt_ge5yrs) AS positives FROM clinics_monthly_data"}),
        ),
        Reply::tool("final_answer", json!({"answer": "{positives} people aged 5 and over tested positive."})),
        Reply::tool("run_sql", json!({"sql": "SELECT count(DISTINCT location_lga) AS n FROM clinics_monthly_data"})),
        Reply::tool("final_answer", json!({"answer": "The report covers {n} states."})),
    ]));
    let out_dir = tmp.path().join("out");
    let eval = |ids: &str| {
        clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
            .args(["eval", "suite", suite.to_str().unwrap(), "--ids", ids, "--out", out_dir.to_str().unwrap()])
            .args(["--llm-base-url", &fake.openai_url(), "--llm-model", "m", "--no-python"])
            .output()
            .expect("runs")
    };
    let out = eval("positives_ge5,states");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = std::fs::read_to_string(out_dir.join("records.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = records.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    let by_id = |id: &str| records.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(by_id("positives_ge5")["score"], json!({"right": 1, "total": 1}));
    assert_eq!(by_id("states")["score"], json!({"right": 0, "total": 1}), "12 LGAs are not 4 states");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["overall"]["abq"], 0.5);
    assert_eq!(summary["overall"]["uasq"], 0.5);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| all | 2 | 50.0% | 50.0% | 50.0% |"));
    let asked = fake.requests().len();
    let again = eval("positives_ge5,states");
    assert!(again.status.success());
    assert_eq!(fake.requests().len(), asked, "a resumed run does not ask again");
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming: 2 of 2"));
    // A file that cannot be loaded is a wrong answer for its questions, not the end of the run.
    std::fs::write(tmp.path().join("suite/broken.xlsx"), b"PK\x03\x04 not really a workbook").unwrap();
    let bad = tmp.path().join("suite/bad.yaml");
    std::fs::write(&bad, "name: bad\ncases:\n  - id: broken\n    files: [broken.xlsx]\n    question: How many?\n    expected: {kind: number, value: 1}\n").unwrap();
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["eval", "suite", bad.to_str().unwrap(), "--out", tmp.path().join("out-bad").to_str().unwrap()])
        .args(["--llm-base-url", &fake.openai_url(), "--llm-model", "m", "--no-python"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(tmp.path().join("out-bad/records.jsonl")).unwrap().trim())
            .unwrap();
    assert!(r["error"].as_str().unwrap().contains("broken.xlsx: the file could not be loaded"), "{r}");
    assert_eq!(r["score"], json!({"right": 0, "total": 1}));
}

/// DABench's own format: `@name[value]` filled exactly from the result.
#[test]
fn eval_dabench_reads_the_benchmark_and_scores_its_format() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    use serde_json::json;
    let Some(dir) = quarry_testdata::shared_dir("dabench") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT round(avg(fare), 2) AS mean_fare FROM test_ave"})),
        Reply::tool("final_answer", json!({"answer": "@mean_fare[{exact mean_fare}]"})),
    ]));
    let out_dir = tmp.path().join("out");
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["eval", "dabench", "--suite-dir", dir.to_str().unwrap(), "--ids", "0"])
        .args(["--out", out_dir.to_str().unwrap(), "--llm-base-url", &fake.openai_url(), "--llm-model", "m"])
        .args(["--no-python", "--privacy", "strict"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out_dir.join("records.jsonl")).unwrap().trim()).unwrap();
    assert_eq!(record["answer"], "@mean_fare[34.65]");
    assert_eq!(record["score"], json!({"right": 1, "total": 1}));
    assert_eq!(record["level"], "easy");
    let first = &fake.requests()[0].raw;
    assert!(
        first.contains("Rounding off the answer to two decimal places")
            && first.contains("@mean_fare[mean_fare_value]")
    );
}

/// A question back: `ask --json` says so as a status (and does not wait for
/// a reply); `chat` shows the options and takes a number as the choice.
#[test]
fn a_question_back_is_a_status_in_ask_and_a_choice_in_chat() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    use serde_json::json;
    let tmp = tempfile::tempdir().expect("tempdir");
    quarry_testdata::write_clinic_workbook(&tmp.path().join("clinics.xlsx")).expect("workbook");
    let ask_back = Reply::tool(
        "ask_user",
        json!({"question": "Tested by RDT or by microscopy?", "options": ["RDT", "microscopy"]}),
    );
    let fake = FakeLlm::start(Script::new(vec![ask_back.clone()]));
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["ask", "clinics.xlsx", "How many were tested?", "--json", "--llm-base-url", &fake.openai_url()])
        .args(["--llm-model", "m", "--no-python"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "not answered");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "needs_clarification");
    assert_eq!(v["clarify"], json!({"question": "Tested by RDT or by microscopy?", "options": ["RDT", "microscopy"]}));

    let sum = "SELECT sum(tested_malaria_rdt_ge5yrs) AS tested FROM clinics_monthly_data";
    fake.set_script(Script::new(vec![
        ask_back,
        Reply::tool("run_sql", json!({"sql": sum})),
        Reply::tool("final_answer", json!({"answer": "{tested} were tested by RDT."})),
    ]));
    let mut child = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .args(["chat", "--llm-base-url", &fake.openai_url(), "--llm-model", "m", "--no-cache", "--no-python"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chat starts");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"How many were tested?\n1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("The analyst asks: Tested by RDT or by microscopy?") && stdout.contains("  2. microscopy"));
    assert!(stdout.contains("were tested by RDT."), "{stdout}");
    let resumed = fake.requests().last().unwrap().raw.clone();
    assert!(resumed.contains("They answered: \\\"RDT\\\""), "the number became the option: {resumed}");
}

/// With no model configured, a model server already running here is found
/// and used (here the fake, listed as the one local server to look at).
#[test]
fn a_local_model_server_is_found_with_no_configuration() {
    use quarry_fake_llm::{FakeLlm, Reply, Script};
    use serde_json::json;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("tests.csv"), "state,tested\nKano,5\nLagos,7\n").unwrap();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT sum(tested) AS t FROM tests"})),
        Reply::tool("final_answer", json!({"answer": "{t} tests."})),
    ]));
    let out = clean_llm_env(Command::new(env!("CARGO_BIN_EXE_quarry")).current_dir(tmp.path()))
        .env("QUARRY_LLM_DISCOVER", format!("http://127.0.0.1:1/v1,{}", fake.openai_url()))
        .args(["ask", "tests.csv", "How many tests?", "--no-python"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("using fake-model at") && err.contains("found running here"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("12 tests."));
}
