//! Answers people can trust: workspace definitions used and named, a
//! question asked back and resumed, the answer presenting the step it is
//! about, and the strict canary over slot repair rounds — the fake LLM over
//! HTTP, the real engine in real workers, real files.

use quarry_agent::definitions::{self, Relevant};
use quarry_agent::{Conversation, Event, Privacy};
use quarry_engine::worker::SqlWorkers;
use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_sandbox::Limits;
use quarry_types::definitions::{Definition, Metric, Synonym, Term, Verified};
use quarry_types::Definitions;
use serde_json::json;

use crate::analyst::{analyst, ask, kinds, opts, workspace};
use crate::common::{launcher, load};

const TABLE: &str = "clinics_monthly_data";
const TPR: &str = "pct(sum(tested_positive_rdt_ge5yrs), sum(tested_malaria_rdt_ge5yrs))";

fn tpr() -> Definition {
    Definition::Metric(Metric {
        name: "tpr".into(),
        expr: TPR.into(),
        table: TABLE.into(),
        description: "test positivity rate, people aged 5 and over".into(),
    })
}

#[test]
fn definitions_are_checked_on_the_data_before_they_are_saved() {
    let ws = workspace();
    let kernel = SqlWorkers::new(launcher(), &ws.data(), Limits::default(), 1);
    let lim = Limits::default();
    assert_eq!(definitions::check(&tpr(), &kernel, &lim), Ok(()));
    let metric = |expr: &str| {
        Definition::Metric(Metric { name: "m".into(), expr: expr.into(), table: TABLE.into(), description: "".into() })
    };
    let smuggled = definitions::check(&metric("sum(tested_malaria_rdt_ge5yrs) FROM t; DROP TABLE t"), &kernel, &lim);
    assert!(smuggled.unwrap_err().contains("one expression only"));
    let typo = definitions::check(&metric("sum(tested_malaria_rdt_ge5)"), &kernel, &lim).unwrap_err();
    assert!(typo.contains("tested_malaria_rdt_ge5yrs"), "the error names the closest column: {typo}");
    let syn = |value: &str| {
        Definition::Synonym(Synonym {
            word: "Bonny LGA".into(),
            value: value.into(),
            table: TABLE.into(),
            column: "location_lga".into(),
        })
    };
    assert_eq!(definitions::check(&syn("Bonny"), &kernel, &lim), Ok(()));
    assert!(definitions::check(&syn("Bony"), &kernel, &lim).unwrap_err().contains("no row"));
    let write = Definition::Verified(Verified { question: "q".into(), sql: format!("DELETE FROM {TABLE}") });
    assert!(definitions::check(&write, &kernel, &lim).is_err(), "a verified query is read-only too");
}

#[test]
fn a_definition_reaches_the_model_and_the_answer_names_it() {
    let ws = workspace();
    let mut defs = Definitions::default();
    defs.put(tpr());
    defs.put(Definition::Term(Term { name: "H1".into(), meaning: "January to June 2024".into() }));
    definitions::save(&ws.data(), &defs).unwrap();
    let sql = format!("SELECT location_state, {TPR} AS tpr FROM {TABLE} GROUP BY 1 ORDER BY 2 DESC");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool("final_answer", json!({"answer": "{row 1 location_state} had the highest rate ({row 1 tpr}%)."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, _) =
        ask(&a, &mut Conversation::default(), "Which state had the highest positivity in H1?", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok);
    let first = &fake.requests()[0].raw;
    assert!(first.contains("<definitions>") && first.contains("metric tpr:"), "the metric is in the prompt");
    assert!(first.contains("term \\\"H1\\\" means: January to June 2024"), "{first}");
    assert_eq!(
        ans.definitions,
        [
            format!("metric tpr = {TPR} on {TABLE} (test positivity rate, people aged 5 and over)"),
            "term \"H1\" = January to June 2024".to_string()
        ]
    );
    assert!(ans.answer.contains("Definitions used: metric tpr"), "{}", ans.answer);
    // A question that mentions none of them is sent none.
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": format!("SELECT count(*) AS n FROM {TABLE}")})),
        Reply::tool("final_answer", json!({"answer": "There are {n} rows."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, _) = ask(&a, &mut Conversation::default(), "How many rows are there?", &opts(Privacy::Strict));
    assert!(r.unwrap().definitions.is_empty());
    assert!(!fake.requests()[0].raw.contains("<definitions>"));
}

#[test]
fn a_verified_answer_is_an_example_for_a_similar_question() {
    let mut defs = Definitions::default();
    let sql = format!("SELECT location_state, {TPR} AS tpr FROM {TABLE} GROUP BY 1");
    defs.put(Definition::Verified(Verified { question: "positivity rate by state".into(), sql: sql.clone() }));
    let tables = vec![TABLE.to_string()];
    let r = Relevant::for_question(&defs, "What is the positivity rate by state?", &tables);
    assert!(r.prompt_text().contains(&sql));
    assert_eq!(r.used(&sql), ["verified answer to \"positivity rate by state\""]);
    assert!(Relevant::for_question(&defs, "How many facilities are there?", &tables).is_empty());
}

#[test]
fn an_ambiguous_question_is_asked_back_and_resumes_with_the_choice() {
    let ws = workspace();
    let by_lga = format!("SELECT location_lga, {TPR} AS tpr FROM {TABLE} GROUP BY 1 ORDER BY 2 LIMIT 1");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("ask_user", json!({"question": "Lowest by state or by LGA?", "options": ["state", "LGA"]})),
        // Resumed: asking again is refused, then it answers.
        Reply::tool("ask_user", json!({"question": "Really?", "options": ["yes", "no"]})),
        Reply::tool("run_sql", json!({"sql": by_lga})),
        Reply::tool("final_answer", json!({"answer": "{row 1 location_lga} had the lowest rate."})),
    ]));
    let a = analyst(&fake, &ws.data());
    let mut conv = Conversation::default();
    let q = "Where is positivity lowest?";
    let (r, events) = ask(&a, &mut conv, q, &opts(Privacy::Strict));
    let asked = r.unwrap();
    assert!(!asked.ok);
    let c = asked.clarify.as_ref().expect("a question back");
    assert_eq!(
        (c.question.as_str(), c.options.as_slice()),
        ("Lowest by state or by LGA?", &["state".to_string(), "LGA".into()][..])
    );
    assert_eq!(kinds(&events), ["started", "context_built", "clarify", "done"]);
    assert_eq!(conv.pending.as_ref().map(|p| p.question.as_str()), Some(q));
    let (r, events) = ask(&a, &mut conv, "LGA", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok, "{}", ans.answer);
    assert_eq!(ans.question, q, "the answer is to the question asked, not to the reply");
    assert!(conv.pending.is_none());
    assert!(matches!(&events[0], Event::Started { question, .. } if question == q));
    let resumed = &fake.requests()[1].raw;
    assert!(resumed.contains("You asked the user: \\\"Lowest by state or by LGA?\\\" They answered: \\\"LGA\\\""));
    assert!(fake.requests()[2].raw.contains("You already asked the user"));
    assert_eq!(ans.code, by_lga);
}

#[test]
fn the_answer_presents_the_step_it_is_about() {
    let ws = workspace();
    let by_state = format!("SELECT location_state, {TPR} AS tpr FROM {TABLE} GROUP BY 1 ORDER BY 1");
    let total = format!("SELECT {TPR} AS tpr FROM {TABLE}");
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": by_state})),
        Reply::tool("run_sql", json!({"sql": total})),
        Reply::tool("final_answer", json!({"answer": "By state: {row 1 location_state} {row 1 tpr}%.", "step": 1})),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, _) = ask(&a, &mut Conversation::default(), "TPR by state, and overall", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert!(ans.ok, "{}", ans.answer);
    assert_eq!(ans.code, by_state, "the answer's code and table are step 1's");
    assert_eq!(ans.table.as_ref().unwrap().rows.len(), ws.truth.states);
    assert!(fake.requests()[1].raw.contains("Query OK (step 1)"));
}

/// The strict guarantee over slot rounds: a bad slot's repair names columns,
/// never values, and the filled answer's values never reach the model.
#[test]
fn privacy_canary_covers_slot_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("canary.csv");
    let (word, number) = ("Zqxcanaryvale", "987654321");
    let mut s = String::from("facility,tested\n");
    for i in 0..20 {
        s.push_str(&format!("Facility {i},{}\n", 100 + i));
    }
    s.push_str(&format!("{word},{number}\n"));
    std::fs::write(&csv, s).unwrap();
    let data = dir.path().join("data");
    load(&data, &csv);
    let sql = "SELECT facility, tested FROM canary ORDER BY tested DESC LIMIT 1";
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool("final_answer", json!({"answer": "{row 1 name} tested {row 1 tests}."})),
        Reply::tool("final_answer", json!({"answer": "{row 9 facility} tested {max tested}."})),
        Reply::tool("final_answer", json!({"answer": "{row 1 facility} tested {max tested}."})),
    ]));
    let a = analyst(&fake, &data);
    let (r, events) = ask(&a, &mut Conversation::default(), "Which facility tested the most?", &opts(Privacy::Strict));
    let ans = r.unwrap();
    assert_eq!(ans.answer, format!("{word} tested 987,654,321."));
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Retrying { .. })).count(), 2, "two slot repairs");
    assert_eq!(fake.requests().len(), 4);
    for req in fake.requests() {
        assert!(!req.raw.contains(word) && !req.raw.contains(number) && !req.raw.contains("987,654"));
    }
}

/// Charts are labelled with the file's own headers, not the SQL names.
#[test]
fn chart_titles_are_the_columns_labels() {
    let ws = workspace();
    let sql = format!(
        "SELECT location_state, sum(tested_positive_rdt_ge5yrs) AS tested_positive_rdt_ge5yrs FROM {TABLE} GROUP BY 1"
    );
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool(
            "final_answer",
            json!({"answer": "By state.", "chart": {"type": "bar", "x": "location_state", "y": "tested_positive_rdt_ge5yrs"}}),
        ),
    ]));
    let a = analyst(&fake, &ws.data());
    let (r, _) = ask(&a, &mut Conversation::default(), "Positives by state as a chart", &opts(Privacy::Strict));
    let chart = r.unwrap().chart.expect("a chart");
    assert_eq!(chart["encoding"]["x"]["title"], "Location / State");
    assert_eq!(chart["encoding"]["y"]["title"], "Persons tested positive by RDT / ≥5yrs");
    assert_eq!(chart["encoding"]["x"]["field"], "location_state", "the data keeps its names");
}
