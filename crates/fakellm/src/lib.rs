//! # quarry-fake-llm: the one stand-in allowed in Quarry's tests
//!
//! A real HTTP server that speaks OpenAI Chat Completions
//! (`/v1/chat/completions`, streaming and not) and Anthropic Messages
//! (`/v1/messages`), replays a [`Script`] a person can write in JSON or YAML,
//! and records every request it receives so tests can assert what was sent.
//! Used in-process ([`FakeLlm::start`]) and as `quarry fake-llm`.
//!
//! A script is a list of replies, each one of: plain text, a fenced code
//! block, tool calls (with arguments as JSON or as a raw, possibly invalid,
//! string), or an HTTP error; with optional delays, a cut-off (`finish:
//! length`), a malformed chunk or a dropped connection. Replies are used in
//! order; with `repeat: true` they are chosen by `turn` and `when` instead
//! of consumed, so concurrent conversations can share one script.
//!
//! ```yaml
//! replies:
//!   - tool_calls: [{name: run_sql, arguments: {sql: "SELECT count(*) FROM t"}}]
//!   - text: "There are 12 rows."
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A script of replies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub replies: Vec<Reply>,
    /// Keep replies instead of consuming them; each request gets the first
    /// reply whose `turn` and `when` match.
    #[serde(default)]
    pub repeat: bool,
}

/// One reply. A bare string in the script is `text`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, from = "ReplyForm")]
pub struct Reply {
    pub text: Option<String>,
    /// A fenced block appended to the text: ```lang\ncode\n```.
    pub code: Option<Code>,
    pub tool_calls: Vec<ScriptedCall>,
    /// Answer with this HTTP error status instead.
    pub status: Option<u16>,
    /// Seconds, sent as `Retry-After` with an error status.
    pub retry_after: Option<f64>,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// Wait this long between streamed chunks.
    pub chunk_delay_ms: u64,
    /// `stop` (default), `length` (cut off by the token limit), `tool_calls`.
    pub finish: Option<String>,
    /// Send a chunk that is not JSON in the middle of the stream.
    pub malformed: bool,
    /// Close the connection in the middle of the stream.
    pub drop: bool,
    /// Match only requests with this many assistant messages already in them.
    pub turn: Option<usize>,
    /// Match only requests whose body contains this text.
    pub when: Option<String>,
    /// Tokens reported as used.
    pub usage: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
    pub lang: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    /// An object (sent as its JSON text) or a string (sent as is, valid or not).
    pub arguments: Value,
}

impl ScriptedCall {
    fn raw_arguments(&self) -> String {
        match &self.arguments {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ReplyForm {
    Text(String),
    Full(ReplyFields),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplyFields {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    code: Option<Code>,
    #[serde(default)]
    tool_calls: Vec<ScriptedCall>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    chunk_delay_ms: u64,
    #[serde(default)]
    finish: Option<String>,
    #[serde(default)]
    malformed: bool,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    turn: Option<usize>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    usage: Option<(u64, u64)>,
}

impl From<ReplyForm> for Reply {
    fn from(f: ReplyForm) -> Reply {
        match f {
            ReplyForm::Text(t) => Reply { text: Some(t), ..Reply::default() },
            ReplyForm::Full(r) => Reply {
                text: r.text,
                code: r.code,
                tool_calls: r.tool_calls,
                status: r.status,
                retry_after: r.retry_after,
                delay_ms: r.delay_ms,
                chunk_delay_ms: r.chunk_delay_ms,
                finish: r.finish,
                malformed: r.malformed,
                drop: r.drop,
                turn: r.turn,
                when: r.when,
                usage: r.usage,
            },
        }
    }
}

impl Reply {
    pub fn text(t: impl Into<String>) -> Reply {
        Reply { text: Some(t.into()), ..Reply::default() }
    }

    pub fn code(lang: &str, code: &str) -> Reply {
        Reply { code: Some(Code { lang: lang.into(), code: code.into() }), ..Reply::default() }
    }

    pub fn tool(name: &str, arguments: Value) -> Reply {
        Reply { tool_calls: vec![ScriptedCall { name: name.into(), arguments }], ..Reply::default() }
    }

    pub fn error(status: u16) -> Reply {
        Reply { status: Some(status), ..Reply::default() }
    }

    fn full_text(&self) -> String {
        let mut t = self.text.clone().unwrap_or_default();
        if let Some(c) = &self.code {
            if !t.is_empty() {
                t.push_str("\n\n");
            }
            t.push_str(&format!("```{}\n{}\n```", c.lang, c.code));
        }
        t
    }

    fn finish_reason(&self) -> &str {
        match self.finish.as_deref() {
            Some(f) => f,
            None if !self.tool_calls.is_empty() => "tool_calls",
            None => "stop",
        }
    }

    fn matches(&self, body: &Value, raw: &str) -> bool {
        let turn_ok = self.turn.is_none_or(|t| assistant_turns(body) == t);
        let when_ok = self.when.as_deref().is_none_or(|w| raw.contains(w));
        turn_ok && when_ok
    }
}

fn assistant_turns(body: &Value) -> usize {
    body["messages"].as_array().map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
}

impl Script {
    pub fn new(replies: Vec<Reply>) -> Script {
        Script { replies, repeat: false }
    }

    /// Read a script from a `.json`, `.yaml` or `.yml` file.
    pub fn from_file(path: &Path) -> Result<Script, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if yaml {
            serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub path: String,
    /// Every header, as sent (so tests can check where the key went).
    pub headers: Vec<(String, String)>,
    /// The body as received, parsed.
    pub body: Value,
    /// The body's exact text.
    pub raw: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    script: Mutex<Script>,
    used: Mutex<Vec<bool>>,
    recorded: Mutex<Vec<Recorded>>,
    record_file: Option<PathBuf>,
}

/// A running fake server. Stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeLlm {
    /// Start on a free loopback port, on a thread of its own (usable from
    /// sync and async tests alike).
    pub fn start(script: Script) -> FakeLlm {
        Self::start_on("127.0.0.1:0".parse().expect("valid address"), script, None).expect("the fake LLM starts")
    }

    pub fn start_on(addr: SocketAddr, script: Script, record_file: Option<PathBuf>) -> std::io::Result<FakeLlm> {
        let used = vec![false; script.replies.len()];
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            used: Mutex::new(used),
            recorded: Mutex::new(Vec::new()),
            record_file,
        });
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new()
                    .route("/v1/chat/completions", post(chat))
                    .route("/chat/completions", post(chat))
                    .route("/v1/messages", post(chat))
                    // The model list local servers answer, so discovery finds the fake too.
                    .route("/v1/models", axum::routing::get(|| async { axum::Json(serde_json::json!({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})) }))
                    .fallback(|uri: Uri| async move {
                        (
                            StatusCode::NOT_FOUND,
                            format!("the fake LLM serves /v1/chat/completions and /v1/messages, not {uri}"),
                        )
                    })
                    .with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(FakeLlm { addr, shared, stop: Some(stop), thread: Some(thread) })
    }

    /// Base URL for OpenAI-compatible clients (`…/v1`).
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL for Anthropic clients.
    pub fn anthropic_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Replace the script (and forget which replies were used).
    pub fn set_script(&self, script: Script) {
        if let (Ok(mut s), Ok(mut u)) = (self.shared.script.lock(), self.shared.used.lock()) {
            *u = vec![false; script.replies.len()];
            *s = script;
        }
    }

    /// Block until the server stops (for `quarry fake-llm`).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pick(shared: &Shared, body: &Value, raw: &str) -> Option<Reply> {
    let script = shared.script.lock().ok()?;
    let mut used = shared.used.lock().ok()?;
    for (i, r) in script.replies.iter().enumerate() {
        if (script.repeat || !used[i]) && r.matches(body, raw) {
            if !script.repeat {
                used[i] = true;
            }
            return Some(r.clone());
        }
    }
    None
}

async fn chat(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let rec = Recorded {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: body.clone(),
        raw: raw.clone(),
    };
    if let Some(f) = &shared.record_file {
        if let Ok(line) = serde_json::to_string(&rec) {
            use std::io::Write;
            if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(f) {
                let _ = writeln!(file, "{line}");
            }
        }
    }
    if let Ok(mut r) = shared.recorded.lock() {
        r.push(rec);
    }
    let anthropic = uri.path().ends_with("/messages");
    if body.is_null() {
        return (StatusCode::BAD_REQUEST, "the request body is not JSON").into_response();
    }
    let Some(reply) = pick(&shared, &body, &raw) else {
        return error_response(anthropic, 500, "the fake LLM's script has no reply left for this request", None);
    };
    if reply.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    if let Some(status) = reply.status {
        return error_response(anthropic, status, "scripted error", reply.retry_after);
    }
    let model = body["model"].as_str().unwrap_or("fake").to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    match (anthropic, stream) {
        (false, false) => axum::Json(openai_full(&reply, &model)).into_response(),
        (true, false) => axum::Json(anthropic_full(&reply, &model)).into_response(),
        (false, true) => sse(openai_chunks(&reply, &model), &reply),
        (true, true) => sse(anthropic_events(&reply, &model), &reply),
    }
}

fn error_response(anthropic: bool, status: u16, message: &str, retry_after: Option<f64>) -> Response {
    let body = if anthropic {
        json!({"type": "error", "error": {"type": if status == 429 { "rate_limit_error" } else { "api_error" }, "message": message}})
    } else {
        json!({"error": {"message": message, "type": "fake_error", "code": status}})
    };
    let mut r =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response();
    if let Some(s) = retry_after {
        if let Ok(v) = format!("{s}").parse() {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}

fn usage(reply: &Reply) -> (u64, u64) {
    reply.usage.unwrap_or((100, 20))
}

fn openai_full(reply: &Reply, model: &str) -> Value {
    let text = reply.full_text();
    let calls: Vec<Value> = reply
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments()}}))
        .collect();
    let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        msg["tool_calls"] = json!(calls);
    }
    let (i, o) = usage(reply);
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": reply.finish_reason()}],
        "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
    })
}

fn anthropic_stop(reply: &Reply) -> &'static str {
    match reply.finish_reason() {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    }
}

fn anthropic_full(reply: &Reply, model: &str) -> Value {
    let mut content = Vec::new();
    let text = reply.full_text();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for (i, c) in reply.tool_calls.iter().enumerate() {
        let input = serde_json::from_str::<Value>(&c.raw_arguments()).unwrap_or(Value::String(c.raw_arguments()));
        content.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": c.name, "input": input}));
    }
    let (i, o) = usage(reply);
    json!({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": anthropic_stop(reply), "usage": {"input_tokens": i, "output_tokens": o},
    })
}

/// Text in small pieces, so clients must reassemble it.
fn pieces(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(7).map(|c| c.iter().collect()).collect()
}

/// SSE events as (event name, data).
type Events = Vec<(Option<&'static str>, String)>;

fn openai_chunks(reply: &Reply, model: &str) -> Events {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut ev: Events = vec![(None, chunk(json!({"role": "assistant", "content": ""}), Value::Null))];
    for p in pieces(&reply.full_text()) {
        ev.push((None, chunk(json!({"content": p}), Value::Null)));
    }
    for (i, c) in reply.tool_calls.iter().enumerate() {
        ev.push((
            None,
            chunk(
                json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": c.name, "arguments": ""}}]}),
                Value::Null,
            ),
        ));
        for p in pieces(&c.raw_arguments()) {
            ev.push((None, chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}), Value::Null)));
        }
    }
    ev.push((None, chunk(json!({}), json!(reply.finish_reason()))));
    let (i, o) = usage(reply);
    ev.push((
        None,
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
               "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}})
        .to_string(),
    ));
    ev.push((None, "[DONE]".to_string()));
    ev
}

fn anthropic_events(reply: &Reply, model: &str) -> Events {
    let (i, o) = usage(reply);
    let mut ev: Events = vec![(
        Some("message_start"),
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
               "content": [], "stop_reason": null, "usage": {"input_tokens": i, "output_tokens": 0}}})
        .to_string(),
    )];
    let mut index = 0;
    let text = reply.full_text();
    if !text.is_empty() {
        ev.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
                .to_string(),
        ));
        for p in pieces(&text) {
            ev.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}})
                    .to_string(),
            ));
        }
        ev.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": index}).to_string()));
        index += 1;
    }
    for (n, c) in reply.tool_calls.iter().enumerate() {
        ev.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": index,
                   "content_block": {"type": "tool_use", "id": format!("toolu_{n}"), "name": c.name, "input": {}}})
            .to_string(),
        ));
        for p in pieces(&c.raw_arguments()) {
            ev.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}})
                    .to_string(),
            ));
        }
        ev.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": index}).to_string()));
        index += 1;
    }
    ev.push((
        Some("message_delta"),
        json!({"type": "message_delta", "delta": {"stop_reason": anthropic_stop(reply)}, "usage": {"output_tokens": o}})
            .to_string(),
    ));
    ev.push((Some("message_stop"), json!({"type": "message_stop"}).to_string()));
    ev
}

fn sse(mut events: Events, reply: &Reply) -> Response {
    if reply.malformed {
        let at = events.len() / 2;
        events.insert(at, (None, "{\"choices\": [this is not json".to_string()));
    }
    if reply.drop {
        events.truncate(events.len() / 2);
    }
    let delay = Duration::from_millis(reply.chunk_delay_ms);
    let stream = futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
        let (name, data) = it.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut s = String::new();
        if let Some(n) = name {
            s.push_str(&format!("event: {n}\n"));
        }
        s.push_str(&format!("data: {data}\n\n"));
        Some((Ok::<_, std::io::Error>(Bytes::from(s)), it))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
