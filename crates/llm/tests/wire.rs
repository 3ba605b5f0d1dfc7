//! The real clients against the fake LLM server, over HTTP.

use std::time::{Duration, Instant};

use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_llm::*;
use serde_json::json;

const KEY: &str = "sk-test-7f3a9c2e1b";

fn cfg(provider: Provider, fake: &FakeLlm) -> LlmConfig {
    LlmConfig {
        provider,
        base_url: match provider {
            Provider::OpenAi => fake.openai_url(),
            Provider::Anthropic => fake.anthropic_url(),
        },
        model: "test-model".into(),
        api_key: Some(Secret::new(KEY)),
        timeout: Duration::from_secs(5),
        max_retries: 3,
        retry_base: Duration::from_millis(20),
        max_tokens: 512,
    }
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system("You are an analyst."), Message::user("How many rows?")],
        tools: vec![Tool {
            name: "run_sql".into(),
            description: "Run one SQL query".into(),
            parameters: json!({"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]}),
        }],
        stream,
        ..ChatRequest::default()
    }
}

async fn call(c: &Client, req: &ChatRequest) -> (Result<ChatResponse, LlmError>, Vec<Delta>) {
    let mut deltas = Vec::new();
    let r = c.chat(req, &mut |d| deltas.push(d), &CancellationToken::new()).await;
    (r, deltas)
}

#[tokio::test]
async fn streaming_text_and_tool_calls_are_reassembled_in_both_protocols() {
    let long = "The answer is forty-two rows, counted over every sheet of the workbook.";
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let fake = FakeLlm::start(Script::new(vec![
            Reply { usage: Some((321, 45)), ..Reply::text(long) },
            Reply {
                text: Some("Let me count.".into()),
                ..Reply::tool("run_sql", json!({"sql": "SELECT count(*) FROM \"nmep tpr\" WHERE state = 'Kano'"}))
            },
        ]));
        let c = Client::new(cfg(provider, &fake)).unwrap();
        let (r, deltas) = call(&c, &request(true)).await;
        let r = r.unwrap();
        assert_eq!(r.text, long, "{provider:?}");
        assert_eq!(r.finish, Finish::Stop);
        assert_eq!(r.usage, Usage { input_tokens: 321, output_tokens: 45 }, "{provider:?}");
        let texts: Vec<_> = deltas
            .iter()
            .filter_map(|d| if let Delta::Text { text } = d { Some(text.as_str()) } else { None })
            .collect();
        assert!(texts.len() > 3, "streamed in pieces: {texts:?}");
        assert_eq!(texts.concat(), long);

        let (r, deltas) = call(&c, &request(true)).await;
        let r = r.unwrap();
        assert_eq!(r.text, "Let me count.");
        assert_eq!(r.finish, Finish::ToolCalls, "{provider:?}");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "run_sql");
        assert_eq!(r.tool_calls[0].parsed().unwrap()["sql"], "SELECT count(*) FROM \"nmep tpr\" WHERE state = 'Kano'");
        assert!(
            deltas.iter().filter(|d| matches!(d, Delta::ToolCall { .. })).count() > 2,
            "arguments streamed in pieces"
        );
    }
}

#[tokio::test]
async fn non_streaming_replies_and_request_shapes() {
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT 1"})),
        Reply::text("done"),
        Reply::tool("run_sql", json!({"sql": "SELECT 2"})),
        Reply::text("done"),
    ]));
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let c = Client::new(cfg(provider, &fake)).unwrap();
        let mut req = request(false);
        req.json_schema = Some(json!({"type": "object"}));
        let (r, _) = call(&c, &req).await;
        let r = r.unwrap();
        assert_eq!(r.tool_calls[0].name, "run_sql");
        // The conversation continues with the tool's result.
        req.messages.push(Message::assistant("", r.tool_calls.clone()));
        req.messages.push(Message::tool_result(r.tool_calls[0].id.clone(), "1 row: 1"));
        let (r, _) = call(&c, &req).await;
        assert_eq!(r.unwrap().text, "done");
    }
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4);
    // OpenAI: tools as functions, JSON schema as response_format, tool results as role "tool".
    let o = &reqs[1].body;
    assert_eq!(reqs[1].path, "/v1/chat/completions");
    assert_eq!(o["model"], "test-model");
    assert_eq!(o["tools"][0]["function"]["name"], "run_sql");
    assert_eq!(o["response_format"]["type"], "json_schema");
    assert_eq!(o["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"sql\":\"SELECT 1\"}");
    assert_eq!(o["messages"][3]["role"], "tool");
    assert_eq!(o["messages"][3]["tool_call_id"], o["messages"][2]["tool_calls"][0]["id"]);
    // Anthropic: system apart, tool_use and tool_result blocks.
    let a = &reqs[3].body;
    assert_eq!(reqs[3].path, "/v1/messages");
    assert_eq!(a["system"], "You are an analyst.");
    assert_eq!(a["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(a["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(a["messages"][1]["content"][0]["input"]["sql"], "SELECT 2");
    assert_eq!(a["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(reqs[3].header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_then_succeed() {
    let fake = FakeLlm::start(Script::new(vec![
        Reply { retry_after: Some(0.05), ..Reply::error(429) },
        Reply::error(503),
        Reply::text("ok after retries"),
    ]));
    let c = Client::new(cfg(Provider::OpenAi, &fake)).unwrap();
    let (r, _) = call(&c, &request(true)).await;
    assert_eq!(r.unwrap().text, "ok after retries");
    assert_eq!(fake.requests().len(), 3);

    let fake = FakeLlm::start(Script { replies: vec![Reply::error(429)], repeat: true });
    let c = Client::new(cfg(Provider::OpenAi, &fake)).unwrap();
    let (r, _) = call(&c, &request(false)).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, LlmErrorKind::RateLimited);
    assert!(e.message.contains("429"), "{e}");
    assert_eq!(fake.requests().len(), 4, "one try and three retries");

    // A client error is not retried.
    let fake = FakeLlm::start(Script::new(vec![Reply::error(400), Reply::text("never")]));
    let c = Client::new(cfg(Provider::Anthropic, &fake)).unwrap();
    let (r, _) = call(&c, &request(false)).await;
    assert_eq!(r.unwrap_err().status, Some(400));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let fake = FakeLlm::start(Script::new(vec![Reply { delay_ms: 3000, ..Reply::text("late") }]));
    let mut config = cfg(Provider::OpenAi, &fake);
    config.timeout = Duration::from_millis(300);
    config.max_retries = 0;
    let c = Client::new(config).unwrap();
    let t = Instant::now();
    let (r, _) = call(&c, &request(true)).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, LlmErrorKind::Timeout);
    assert!(e.message.contains("did not answer"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cancellation_stops_a_stream_mid_reply() {
    let fake = FakeLlm::start(Script::new(vec![Reply { chunk_delay_ms: 100, ..Reply::text("a".repeat(300)) }]));
    let c = Client::new(cfg(Provider::OpenAi, &fake)).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let t = Instant::now();
    let mut n = 0;
    let r = c.chat(&request(true), &mut |_| n += 1, &cancel).await;
    assert_eq!(r.unwrap_err().kind, LlmErrorKind::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(n > 0 && n < 40, "some deltas arrived before the cancel: {n}");
}

#[tokio::test]
async fn broken_replies_give_clear_errors_and_are_not_retried() {
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let fake = FakeLlm::start(Script::new(vec![
            Reply { malformed: true, ..Reply::text("some text that streams") },
            Reply { drop: true, ..Reply::text("a reply that is cut off by a dropped connection") },
            Reply::text("unused"),
        ]));
        let c = Client::new(cfg(provider, &fake)).unwrap();
        let (r, _) = call(&c, &request(true)).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, LlmErrorKind::BadResponse, "{provider:?}");
        assert!(e.message.contains("malformed") && e.message.contains("not json"), "{e}");
        let (r, _) = call(&c, &request(true)).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, LlmErrorKind::BadResponse, "{provider:?}");
        assert!(e.message.contains("ended early"), "{e}");
        assert_eq!(fake.requests().len(), 2);
    }
}

#[tokio::test]
async fn model_quirks_are_visible_to_the_caller() {
    let fake = FakeLlm::start(Script::new(vec![
        Reply { finish: Some("length".into()), ..Reply::text("SELECT state, sum(") },
        Reply::tool("run_sql", json!("{\"sql\": \"SELECT 1\"")),
        Reply { text: Some("Here you go:".into()), ..Reply::code("sql", "SELECT count(*) FROM t") },
    ]));
    let c = Client::new(cfg(Provider::OpenAi, &fake)).unwrap();
    let (r, _) = call(&c, &request(true)).await;
    assert!(r.unwrap().truncated(), "a reply cut off by the token limit says so");
    let (r, _) = call(&c, &request(true)).await;
    let bad = r.unwrap().tool_calls[0].parsed().unwrap_err();
    assert!(bad.contains("not valid JSON") && bad.contains("run_sql"), "{bad}");
    let (r, _) = call(&c, &request(true)).await;
    let blocks = quirks::fenced_blocks(&r.unwrap().text);
    assert_eq!((blocks[0].lang.as_str(), blocks[0].code.as_str()), ("sql", "SELECT count(*) FROM t"));
}

#[tokio::test]
async fn the_api_key_is_sent_in_the_header_and_nowhere_else() {
    let fake = FakeLlm::start(Script::new(vec![Reply::text("hi"), Reply::text("hi"), Reply::error(401)]));
    let c = Client::new(cfg(Provider::OpenAi, &fake)).unwrap();
    call(&c, &request(true)).await.0.unwrap();
    let c = Client::new(cfg(Provider::Anthropic, &fake)).unwrap();
    call(&c, &request(false)).await.0.unwrap();
    let (r, _) = call(&c, &request(false)).await;
    let e = r.unwrap_err();
    assert!(e.message.contains("API key was refused"), "{e}");
    let reqs = fake.requests();
    assert_eq!(reqs[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(reqs[1].header("x-api-key"), Some(KEY));
    assert_eq!(reqs[1].header("authorization"), None);
    for r in &reqs {
        assert!(!r.raw.contains(KEY), "the key is not in the body");
    }
    let shown = format!("{e} {e:?} {:?} {}", c.config(), c.describe());
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_connect_error() {
    let fake = FakeLlm::start(Script::default());
    let mut config = cfg(Provider::OpenAi, &fake);
    drop(fake);
    config.max_retries = 1;
    let c = Client::new(config).unwrap();
    let (r, _) = call(&c, &request(false)).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, LlmErrorKind::Connect);
    assert!(e.message.contains("could not be reached") && e.message.contains("QUARRY_LLM_BASE_URL"), "{e}");
}

#[test]
fn scripts_are_plain_yaml_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("s.yaml");
    std::fs::write(
        &y,
        "replies:\n  - Hello there\n  - tool_calls: [{name: run_sql, arguments: {sql: SELECT 1}}]\n  - {status: 429, retry_after: 1}\n  - code: {lang: sql, code: SELECT 2}\n    finish: length\n",
    )
    .unwrap();
    let s = Script::from_file(&y).unwrap();
    assert_eq!(s.replies.len(), 4);
    assert_eq!(s.replies[0].text.as_deref(), Some("Hello there"));
    assert_eq!(s.replies[1].tool_calls[0].arguments["sql"], "SELECT 1");
    assert_eq!(s.replies[2].status, Some(429));
    let j = dir.path().join("s.json");
    std::fs::write(&j, r#"{"replies": ["hi", {"text": "x", "delay_ms": 5}], "repeat": true}"#).unwrap();
    assert!(Script::from_file(&j).unwrap().repeat);
    std::fs::write(&j, r#"{"replies": [{"txet": "typo"}]}"#).unwrap();
    assert!(Script::from_file(&j).is_err());
}
