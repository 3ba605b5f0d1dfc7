//! The analyst's `run_python` tool end to end: the fake LLM over HTTP, the
//! real SQL workers and the real sandboxed Python kernel.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quarry_agent::{Analyst, AskOptions, Conversation, Event, Privacy};
use quarry_engine::worker::SqlWorkers;
use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_llm::{CancellationToken, Client};
use quarry_sandbox::python::{PythonConfig, PythonKernels};
use quarry_sandbox::Limits;
use serde_json::json;

use crate::common::{ensure_python_runtime, fake_llm, launcher, load, python_runtime};

fn kernels() -> Arc<PythonKernels> {
    ensure_python_runtime();
    Arc::new(PythonKernels::start(launcher(), PythonConfig::new(python_runtime())).expect("kernels"))
}

fn analyst(fake: &FakeLlm, data: &Path) -> Analyst {
    let cfg = fake_llm(fake, Duration::from_secs(30));
    let kernel = SqlWorkers::new(launcher(), data, Limits::default(), 2);
    Analyst::new(Arc::new(Client::new(cfg).expect("client")), Arc::new(kernel), data).with_python(kernels())
}

fn ask(a: &Analyst, conv: &mut Conversation, q: &str, privacy: Privacy) -> (quarry_agent::Answer, Vec<Event>) {
    let o = AskOptions { privacy, use_cache: false, ..AskOptions::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let mut events = Vec::new();
    let r = rt.block_on(a.ask(conv, q, &o, &mut |e| events.push(e), &CancellationToken::new()));
    (r.expect("answer"), events)
}

fn clinics() -> (tempfile::TempDir, quarry_testdata::Truth) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wb = dir.path().join("clinics.xlsx");
    let truth = quarry_testdata::write_clinic_workbook(&wb).expect("workbook");
    load(&dir.path().join("data"), &wb);
    (dir, truth)
}

#[test]
fn a_python_step_answers_with_its_table_and_figure() {
    let (dir, truth) = clinics();
    let code =
        "total = df['tested_positive_rdt_ge5yrs'].sum()\nplt.plot([1, 2, 3])\npd.DataFrame({'positives': [total]})";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_python", json!({"code": code})),
        Reply::tool("final_answer", json!({"answer": "Total positives aged 5 and over."})),
    ]));
    let a = analyst(&fake, &dir.path().join("data"));
    let (ans, events) = ask(&a, &mut Conversation::default(), "positives 5+, with a plot", Privacy::Strict);
    assert!(ans.ok, "{}", ans.answer);
    assert_eq!(ans.language, "python");
    assert_eq!(ans.code, code);
    assert_eq!(ans.table.as_ref().expect("table").rows[0][0], json!(truth.positive_ge5_sum));
    assert!(ans.answer.contains(&truth.positive_ge5_sum.to_string()), "{}", ans.answer);
    assert_eq!(ans.figures.len(), 1);
    assert!(events.iter().any(|e| matches!(e, Event::Output { figures, .. } if figures.len() == 1)));
    // The model was offered run_python.
    let first = &fake.requests()[0].body;
    assert!(first["tools"].as_array().expect("tools").iter().any(|t| t["function"]["name"] == "run_python"));
}

#[test]
fn a_python_error_is_fed_back_with_the_closest_column_and_fixed() {
    let (dir, truth) = clinics();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_python", json!({"code": "df['tested_positve_rdt_ge5yrs'].sum()"})),
        Reply::tool("run_python", json!({"code": "df['tested_positive_rdt_ge5yrs'].sum()"})),
        Reply::tool("final_answer", json!({"answer": "Fixed."})),
    ]));
    let a = analyst(&fake, &dir.path().join("data"));
    let (ans, events) = ask(&a, &mut Conversation::default(), "positives 5+", Privacy::Strict);
    assert!(ans.ok);
    assert_eq!(ans.attempts, 2);
    assert_eq!(ans.table.as_ref().expect("value table").rows[0][0], json!(truth.positive_ge5_sum));
    assert!(events.iter().any(|e| matches!(e, Event::Retrying { attempt: 1, .. })));
    let fix_request = fake.requests()[1].raw.clone();
    assert!(fix_request.contains("KeyError"), "{fix_request}");
    assert!(fix_request.contains("closest columns: tested_positive_rdt_ge5yrs"), "{fix_request}");
}

#[test]
fn refused_python_is_explained_to_the_model() {
    let (dir, _) = clinics();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_python", json!({"code": "import os\nos.listdir('/')"})),
        Reply::tool("run_python", json!({"code": "len(df)"})),
        Reply::tool("final_answer", json!({"answer": "Counted."})),
    ]));
    let a = analyst(&fake, &dir.path().join("data"));
    let (ans, events) = ask(&a, &mut Conversation::default(), "how many rows?", Privacy::Strict);
    assert!(ans.ok);
    assert!(events.iter().any(
        |e| matches!(e, Event::Refused { rule, .. } if rule == quarry_sandbox::python::check::Rule::Import.as_str())
    ));
    assert!(fake.requests()[1].raw.contains("is not allowed"));
}

#[test]
fn python_variables_live_for_the_conversation() {
    let (dir, _) = clinics();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_python", json!({"code": "rows = len(df)\nrows"})),
        Reply::tool("final_answer", json!({"answer": "Counted."})),
        Reply::tool("run_python", json!({"code": "rows * 2"})),
        Reply::tool("final_answer", json!({"answer": "Doubled."})),
    ]));
    let a = analyst(&fake, &dir.path().join("data"));
    let mut conv = Conversation::default();
    let (first, _) = ask(&a, &mut conv, "how many rows?", Privacy::Full);
    let (second, _) = ask(&a, &mut conv, "and twice that?", Privacy::Full);
    let n = first.table.expect("t").rows[0][0].as_i64().expect("n");
    assert_eq!(second.table.expect("t").rows[0][0], json!(n * 2));
}

#[test]
fn python_privacy_canary_strict_sends_no_cell_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("canary.csv");
    let (word, number) = ("Zqxcanaryvale", "987654321");
    let mut s = String::from("facility,tested\n");
    for i in 0..30 {
        s.push_str(&format!("Facility {i},{}\n", 100 + i));
    }
    s.push_str(&format!("{word},{number}\n"));
    std::fs::write(&csv, s).expect("csv");
    let data = dir.path().join("data");
    load(&data, &csv);
    let script = || {
        Script::new(vec![
            // The exception message quotes the value.
            Reply::tool("run_python", json!({"code": "int(df.sort_values('tested').facility.iloc[-1])"})),
            Reply::tool(
                "run_python",
                json!({"code": "top = df.sort_values('tested').tail(1)\nprint(top.to_string())\ntop"}),
            ),
            Reply::tool("final_answer", json!({"answer": "The facility with the most tests."})),
        ])
    };
    for (privacy, may_leak) in [(Privacy::Strict, false), (Privacy::Sample, true), (Privacy::Full, true)] {
        let fake = FakeLlm::start(script());
        let a = analyst(&fake, &data);
        let (ans, _) = ask(&a, &mut Conversation::default(), "Which facility tested most?", privacy);
        assert!(ans.ok, "{privacy:?}: {}", ans.answer);
        assert!(ans.output.contains(word), "the user sees the printed output");
        let sent: String = fake.requests().iter().map(|r| r.raw.clone()).collect();
        assert_eq!(fake.requests().len(), 3);
        let leaked = sent.contains(word) || sent.contains(number);
        assert_eq!(leaked, may_leak, "{privacy:?}");
    }
}

#[test]
fn stop_during_a_python_step_kills_the_running_code() {
    let (dir, _) = clinics();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_python", json!({"code": "while True:\n    pass"})),
        Reply::tool("run_python", json!({"code": "len(df)"})),
        Reply::tool("final_answer", json!({"answer": "Counted."})),
    ]));
    let a = analyst(&fake, &dir.path().join("data"));
    let mut conv = Conversation::default();
    let o = AskOptions { privacy: Privacy::Strict, use_cache: false, ..AskOptions::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        c.cancel();
    });
    let t0 = std::time::Instant::now();
    let r = rt.block_on(a.ask(&mut conv, "spin", &o, &mut |_| {}, &cancel));
    assert_eq!(r.err().map(|e| e.kind), Some("cancelled".to_string()));
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    // The kernel was stopped, not left spinning: the next question runs Python at once.
    let t1 = std::time::Instant::now();
    let (ans, _) = ask(&a, &mut conv, "how many rows?", Privacy::Strict);
    assert!(ans.ok, "{}", ans.answer);
    assert_eq!(ans.language, "python", "the Python step ran (a busy kernel would have refused it)");
    assert!(ans.table.as_ref().is_some_and(|t| t.rows[0][0].is_number()), "{:?}", ans.table);
    assert!(t1.elapsed() < Duration::from_secs(10), "{:?}", t1.elapsed());
}
