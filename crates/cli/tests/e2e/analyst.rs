//! The analyst end to end: the fake LLM over HTTP, the real engine in real
//! sandboxed workers, real files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_agent::{Analyst, AskOptions, Conversation, DirCache, Event, Privacy};
use quarry_engine::worker::SqlWorkers;
use quarry_engine::Rule;
use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_llm::{CancellationToken, Client};
use quarry_sandbox::Limits;

use crate::common::{fake_llm, launcher, load};
use serde_json::json;

pub(crate) struct Ws {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) truth: quarry_testdata::Truth,
}

impl Ws {
    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

pub(crate) fn workspace() -> Ws {
    let dir = tempfile::tempdir().expect("tempdir");
    let wb = dir.path().join("clinics.xlsx");
    let truth = quarry_testdata::write_clinic_workbook(&wb).expect("workbook");
    load(&dir.path().join("data"), &wb);
    Ws { dir, truth }
}

pub(crate) fn analyst(fake: &FakeLlm, data: &Path) -> Analyst {
    let cfg = fake_llm(fake, Duration::from_secs(10));
    let kernel = SqlWorkers::new(launcher(), data, Limits::default(), 2);
    Analyst::new(Arc::new(Client::new(cfg).unwrap()), Arc::new(kernel), data)
}

pub(crate) fn opts(privacy: Privacy) -> AskOptions {
    AskOptions { privacy, use_cache: false, ..AskOptions::default() }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub(crate) fn ask(
    a: &Analyst,
    conv: &mut Conversation,
    q: &str,
    o: &AskOptions,
) -> (Result<quarry_agent::Answer, quarry_agent::AgentError>, Vec<Event>) {
    let mut events = Vec::new();
    let r = rt().block_on(a.ask(conv, q, o, &mut |e| events.push(e), &CancellationToken::new()));
    (r, events)
}

pub(crate) fn kinds(events: &[Event]) -> Vec<&'static str> {
    let mut k: Vec<&str> = events.iter().map(|e| e.kind()).filter(|k| *k != "llm_delta" && *k != "plan").collect();
    k.dedup();
    k
}

const SUM: &str = "SELECT sum(tested_positive_rdt_ge5yrs) AS positives FROM clinics_monthly_data";

#[test]
fn answered_on_the_first_try() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "Total positives among people aged 5 and over."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "How many positives aged 5+?", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok);
    assert_eq!(ans.attempts, 1);
    assert_eq!(ans.code, SUM);
    let t = ans.table.as_ref().unwrap();
    assert_eq!(t.rows[0][0], json!(ws.truth.positive_ge5_sum));
    assert!(ans.answer.contains(&ws.truth.positive_ge5_sum.to_string()), "Quarry states the number: {}", ans.answer);
    assert_eq!(kinds(&events), ["started", "context_built", "code_proposed", "executed", "answer", "done"]);
    assert_eq!(ans.provenance.model, "fake-model");
    assert_eq!(ans.provenance.data_versions[0].table, "clinics_monthly_data");
    assert!(!ans.provenance.prompt_hash.is_empty());
}

#[test]
fn a_wrong_column_is_fed_back_and_fixed_on_attempt_two() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT sum(tested_positve_rdt_ge5yrs) FROM clinics_monthly_data"})),
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "Fixed."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "positives 5+", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok);
    assert_eq!(ans.attempts, 2);
    assert_eq!(kinds(&events)[2..7], ["code_proposed", "failed", "retrying", "code_proposed", "executed"]);
    let fix = &fake.requests()[1].raw;
    assert!(fix.contains("failed (attempt 1 of 5)"), "{fix}");
    assert!(fix.contains("tested_positive_rdt_ge5yrs"), "the fix request names the closest column");
}

#[test]
fn five_failures_end_in_a_plain_give_up() {
    let ws = workspace();
    let fake = FakeLlm::start(Script {
        replies: vec![Reply::tool("run_sql", json!({"sql": "SELECT nope FROM clinics_monthly_data"}))],
        repeat: true,
    });
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "anything", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(!ans.ok);
    assert!(ans.answer.starts_with("I could not answer this: after 5 attempts"), "{}", ans.answer);
    assert!(ans.answer.contains("nope"), "the last error is shown: {}", ans.answer);
    assert_eq!(ans.code, "SELECT nope FROM clinics_monthly_data");
    assert_eq!(fake.requests().len(), 5);
    assert_eq!(events.iter().filter(|e| e.kind() == "retrying").count(), 4);
    assert!(matches!(events.last(), Some(Event::Done { ok: false, .. })));
}

#[test]
fn refused_ddl_is_explained_to_the_model_and_repaired() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "DROP TABLE clinics_monthly_data"})),
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "ok"})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "drop it", &opts(Privacy::Strict));
    assert!(r.unwrap().ok);
    assert!(
        events.iter().any(|e| matches!(e, Event::Refused { rule, .. } if rule == Rule::NotAQuery.as_str())),
        "{events:?}"
    );
    let fix = &fake.requests()[1].raw;
    assert!(fix.contains(Rule::NotAQuery.as_str()) && fix.contains("read-only query"), "{fix}");
}

#[test]
fn a_follow_up_sees_the_previous_turn() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "Total positives."})),
        Reply::tool("run_sql", json!({"sql": format!("{SUM} WHERE location_state = 'Kano'")})),
        Reply::tool("final_answer", json!({"answer": "Kano only."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let mut conv = Conversation::default();
    ask(&a, &mut conv, "How many positives aged 5+?", &opts(Privacy::Strict)).0.unwrap();
    let (r, _) = ask(&a, &mut conv, "now only for Kano", &opts(Privacy::Strict));
    assert!(r.unwrap().ok);
    let second = &fake.requests()[2].body;
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["content"], "How many positives aged 5+?");
    assert!(msgs[2]["content"].as_str().unwrap().contains("Total positives."));
    let last = msgs.last().unwrap()["content"].as_str().unwrap();
    assert!(last.starts_with("now only for Kano") && last.contains(SUM), "{last}");
}

#[test]
fn a_follow_up_that_only_shows_the_result_differently_needs_no_new_query() {
    let ws = workspace();
    let by_state = "SELECT location_state AS state, sum(tested_positive_rdt_ge5yrs) AS positives FROM clinics_monthly_data GROUP BY 1 ORDER BY 1";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": by_state})),
        Reply::tool("final_answer", json!({"answer": "Positives by state."})),
        Reply::tool(
            "final_answer",
            json!({"answer": "As a bar chart.", "chart": {"type": "bar", "x": "state", "y": "positives"}}),
        ),
    ]));
    let a = analyst(&fake, &ws.data());
    let mut conv = Conversation::default();
    let first = ask(&a, &mut conv, "positives 5+ by state", &opts(Privacy::Strict)).0.unwrap();
    let (r, events) = ask(&a, &mut conv, "show that as a bar chart", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok && ans.chart.is_some(), "{}", ans.answer);
    assert_eq!((ans.code.as_str(), &ans.table), (by_state, &first.table), "the previous result, run again");
    assert!(!events.iter().any(|e| e.kind() == "code_proposed"), "no new query");
    assert_eq!(fake.requests().len(), 3);
    let last = fake.requests()[2].body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("Its result is still at hand") && last.contains("values are not shown"), "{last}");
}

#[test]
fn check_values_answers_only_for_the_values_named() {
    let ws = workspace();
    let kano = format!("{SUM} WHERE location_state = 'Kano'");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool(
            "check_values",
            json!({"table": "clinics_monthly_data", "column": "location_state", "values": ["Kano", "Lagoz", "kano "]}),
        ),
        Reply::tool("run_sql", json!({"sql": kano})),
        Reply::tool("final_answer", json!({"answer": "Positives in Kano."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "positives 5+ in Kano", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok && ans.code == kano, "the check is no step of the answer: {}", ans.answer);
    assert!(events.iter().any(|e| matches!(e, Event::Plan { text } if text.starts_with("Checking whether"))));
    let reply = fake.requests()[1].body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    let kano_rows = reply.lines().find(|l| l.starts_with("- 'Kano': ")).expect(&reply);
    assert!(
        kano_rows.ends_with(" rows")
            && kano_rows["- 'Kano': ".len()..].trim_end_matches(" rows").parse::<u64>().is_ok(),
        "{reply}"
    );
    assert!(reply.contains("- 'Lagoz': no row, not even ignoring case and spaces"), "{reply}");
    assert!(reply.contains("- 'kano ': no row with exactly this value;"), "{reply}");
    for other in ["Lagos", "Rivers", "Kaduna", "KANO"] {
        assert!(!fake.requests().iter().any(|r| r.raw.contains(other)), "strict: {other} never reaches the model");
    }
}

#[test]
fn a_slot_narrative_is_filled_with_numbers_the_model_never_saw() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "People aged 5 and over who tested positive: {positive}."})),
        Reply::tool("final_answer", json!({"answer": "People aged 5 and over who tested positive: {positives}."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "positives 5+", &opts(Privacy::Strict));
    let ans = r.unwrap();
    let sum = ws.truth.positive_ge5_sum.to_string();
    let mut grouped = String::new();
    for (k, c) in sum.chars().enumerate() {
        if k > 0 && (sum.len() - k).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    assert_eq!(
        ans.answer,
        format!("People aged 5 and over who tested positive: {grouped}."),
        "no mechanical line after it"
    );
    assert!(events.iter().any(|e| matches!(e, Event::Failed { message, .. }
        if message.contains("{positive}: the result has no column 'positive'; its columns are positives."))));
    for req in fake.requests() {
        assert!(!req.raw.contains(&sum) && !req.raw.contains(&grouped), "strict: the number never reaches the model");
    }
}

#[test]
fn numbers_the_model_writes_that_no_result_holds_are_flagged_or_taken_out() {
    let ws = workspace();
    for (privacy, want) in [
        (
            Privacy::Full,
            "Of these, 17 were children.\n\n(Not from the data: 17 — no result Quarry ran holds this number.)",
        ),
        (Privacy::Strict, "Of these, [a number not from the data] were children."),
    ] {
        let fake = FakeLlm::start(Script::new(vec![
            Reply::tool("run_sql", json!({"sql": SUM})),
            Reply::tool(
                "final_answer",
                json!({"answer": "Positives aged 5+: {positives}. Of these, 17 were children."}),
            ),
        ]));
        let a = analyst(&fake, &ws.data());
        let (r, _) = ask(&a, &mut Conversation::default(), "positives aged 5 and over", &opts(privacy));
        let ans = r.unwrap();
        assert!(
            ans.answer.starts_with("Positives aged 5+: ") && ans.answer.ends_with(want),
            "{privacy:?}: {}",
            ans.answer
        );
    }
}

#[test]
fn a_reply_with_only_a_sql_block_works() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::code("sql", SUM),
        Reply::text("That is the total of positives aged five and over."),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, _) = ask(&a, &mut Conversation::default(), "positives 5+", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok);
    assert_eq!(ans.code, SUM);
    assert!(ans.answer.starts_with("That is the total"), "{}", ans.answer);
}

#[test]
fn every_reply_shape_small_models_use_runs_the_query_it_means() {
    let ws = workspace();
    let shapes = [
        SUM.to_string(),
        format!(r#"{{"tool": "run_sql", "sql": "{SUM}"}}"#),
        format!(r#"<tool_call>{{"name": "run_sql", "arguments": {{"sql": "{SUM}"}}}}</tool_call>"#),
        format!(r#"<|python_tag|>{{"name": "run_sql", "parameters": {{"sql": "{SUM}"}}}}<|eom_id|>"#),
        format!("Thought: add them up.\nAction: run_sql\nAction Input: {SUM}"),
    ];
    for shape in shapes {
        let fake =
            FakeLlm::start(Script::new(vec![Reply::text(shape.clone()), Reply::text("Positives aged five and over.")]));
        let a = analyst(&fake, &ws.data());
        let (r, _) = ask(&a, &mut Conversation::default(), "positives 5+", &opts(Privacy::Strict));
        let ans = r.unwrap();
        assert!(ans.ok, "{shape}: {}", ans.answer);
        assert_eq!(ans.code, SUM, "{shape}");
        let t = ans.table.as_ref().expect("the query's result is the answer's table");
        assert_eq!(t.rows[0][0], json!(ws.truth.positive_ge5_sum), "{shape}");
        assert!(ans.answer.starts_with("Positives aged five"), "{shape}: {}", ans.answer);
    }
}

#[test]
fn an_answer_without_a_query_or_an_empty_one_is_never_believed() {
    let ws = workspace();
    for privacy in [Privacy::Full, Privacy::Sample, Privacy::Strict] {
        for reply in
            [Reply::text("There are 42 LGAs."), Reply::text(""), Reply::tool("final_answer", json!({"answer": ""}))]
        {
            // Insisting: the same reply every time.
            let fake = FakeLlm::start(Script { replies: vec![reply], repeat: true });
            let a = analyst(&fake, &ws.data());
            let (r, events) = ask(&a, &mut Conversation::default(), "How many LGAs are there?", &opts(privacy));
            let ans = r.unwrap();
            assert!(!ans.ok, "{privacy:?}: {}", ans.answer);
            assert!(!ans.answer.contains("42"), "{}", ans.answer);
            let failed: Vec<&str> = events
                .iter()
                .filter_map(|e| if let Event::Failed { message, .. } = e { Some(message.as_str()) } else { None })
                .collect();
            assert!(
                failed.iter().any(|m| m.contains("must come from code Quarry ran") || m.contains("reply was empty")),
                "{failed:?}"
            );
            assert_eq!(fake.requests().len(), 5, "a repair round per attempt");
        }
    }
    // After a repair, the model that runs the query is answered from its result.
    let fake = FakeLlm::start(Script::new(vec![
        Reply::text("There are 42 LGAs."),
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "Counted from the data."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, _) = ask(&a, &mut Conversation::default(), "positives 5+", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok && ans.code == SUM && ans.answer.starts_with("Counted from the data"), "{}", ans.answer);
    let second = &fake.requests()[1];
    assert!(second.raw.contains("No query has run for this question yet"));
}

#[test]
fn cancellation_mid_run_stops_promptly() {
    let ws = workspace();
    let fake =
        FakeLlm::start(Script::new(vec![Reply { delay_ms: 5000, ..Reply::tool("run_sql", json!({"sql": SUM})) }]));
    let a = analyst(&fake, &ws.data());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        c2.cancel();
    });
    let mut events = Vec::new();
    let t = Instant::now();
    let r = rt().block_on(a.ask(
        &mut Conversation::default(),
        "q",
        &opts(Privacy::Strict),
        &mut |e| events.push(e),
        &cancel,
    ));
    assert_eq!(r.unwrap_err().kind, "cancelled");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(events.iter().any(|e| e.kind() == "cancelled"));
}

#[test]
fn a_filter_value_that_matches_nothing_is_reported_with_the_closest_values() {
    let ws = workspace();
    let sql = "SELECT count(*) AS n FROM clinics_monthly_data WHERE location_state = 'Kanoo'";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool("final_answer", json!({"answer": "Count for the state."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, events) = ask(&a, &mut Conversation::default(), "reports from Kanoo", &opts(Privacy::Sample));
    let ans = r.unwrap();
    let closest = events.iter().find_map(|e| match e {
        Event::EmptyFilter { column, value, closest } if column == "location_state" && value == "Kanoo" => {
            Some(closest.clone())
        }
        _ => None,
    });
    assert_eq!(closest.as_deref().and_then(|c| c.first()).map(String::as_str), Some("Kano"));
    assert!(
        ans.answer.contains("No row has location_state = 'Kanoo'") && ans.answer.contains("'Kano'"),
        "{}",
        ans.answer
    );
    // In sample mode the model is told the closest values too.
    assert!(fake.requests()[1].raw.contains("Closest existing values: 'Kano'"));
}

#[test]
fn the_same_question_on_the_same_data_is_served_from_the_cache() {
    let ws = workspace();
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": SUM})),
        Reply::tool("final_answer", json!({"answer": "Total."})),
    ]));
    let a = analyst(&fake, &ws.data()).with_cache(Arc::new(DirCache::new(ws.data().join("answers"))));
    let o = AskOptions { use_cache: true, ..opts(Privacy::Strict) };
    let first = ask(&a, &mut Conversation::default(), "positives 5+", &o).0.unwrap();
    let (second, events) = ask(&a, &mut Conversation::default(), "positives 5+", &o);
    let second = second.unwrap();
    assert!(second.cached && !first.cached);
    assert_eq!(second.table, first.table);
    assert!(events.iter().any(|e| e.kind() == "cached"));
    assert_eq!(fake.requests().len(), 2, "no new model call");
    // Opting out asks the model again (and the script has nothing left: a clear failure, not the cache).
    let (r, _) = ask(&a, &mut Conversation::default(), "positives 5+", &opts(Privacy::Strict));
    assert!(r.is_err());
}

#[test]
fn a_chart_proposal_becomes_a_vega_lite_spec() {
    let ws = workspace();
    let sql = "SELECT location_state AS state, sum(tested_positive_rdt_ge5yrs) AS positives FROM clinics_monthly_data GROUP BY 1";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool(
            "final_answer",
            json!({"answer": "By state.", "chart": {"type": "bar", "x": "state", "y": "positives"}}),
        ),
    ]));
    let a = analyst(&fake, &ws.data());
    let ans = ask(&a, &mut Conversation::default(), "positives by state as a chart", &opts(Privacy::Strict)).0.unwrap();
    let chart = ans.chart.expect("chart");
    assert_eq!(chart["mark"]["type"], "bar");
    assert_eq!(chart["encoding"]["y"]["field"], "positives");
    assert_eq!(chart["data"]["values"].as_array().unwrap().len(), ws.truth.states);
}

/// The privacy guarantee: in `strict` mode no cell value reaches the model,
/// through context, errors, results or near-miss filter hints.
#[test]
fn privacy_canary_strict_sends_no_cell_value() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("canary.csv");
    let (word, number) = ("Zqxcanaryvale", "987654321");
    let mut s = String::from("facility,state,tested,note\n");
    for i in 0..50 {
        s.push_str(&format!("Facility {i},Kano,{},routine\n", 100 + i));
    }
    s.push_str(&format!("{word},Kano,{number},{word} reported\n"));
    std::fs::write(&csv, s).unwrap();
    let data = dir.path().join("data");
    load(&data, &csv);
    let script = |sql_ok: &str| {
        Script::new(vec![
            // A failing query whose error would quote the value if not redacted.
            Reply::tool("run_sql", json!({"sql": "SELECT CAST(facility AS INT) FROM canary"})),
            Reply::tool(
                "run_sql",
                json!({"sql": "SELECT facility, max(tested) AS t FROM canary WHERE facility = 'Zqxcanaryval' GROUP BY 1"}),
            ),
            Reply::tool("run_sql", json!({"sql": sql_ok})),
            Reply::tool("final_answer", json!({"answer": "The largest facility by tests."})),
        ])
    };
    let sql = "SELECT facility, tested FROM canary ORDER BY tested DESC LIMIT 1";
    for (privacy, may_leak) in [(Privacy::Strict, false), (Privacy::Sample, true), (Privacy::Full, true)] {
        let fake = FakeLlm::start(script(sql));
        let a = analyst(&fake, &data);
        let (r, _) = ask(&a, &mut Conversation::default(), "Which facility tested the most?", &opts(privacy));
        let ans = r.unwrap();
        assert!(ans.ok);
        if privacy != Privacy::Full {
            // The user still sees the real answer, composed locally.
            assert!(ans.answer.contains(word) && ans.answer.contains(number), "{privacy:?}: {}", ans.answer);
        }
        let sent: String = fake.requests().iter().map(|r| r.raw.clone()).collect();
        assert_eq!(fake.requests().len(), 4);
        let leaked = sent.contains(word) || sent.contains(number);
        assert_eq!(leaked, may_leak, "{privacy:?}");
    }
}
