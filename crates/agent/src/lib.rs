//! # quarry-agent: the analyst
//!
//! Owns turning a question into an answer: it builds the model's context
//! from the catalog ([`context`]), prompts the model ([`prompt`]), reads its
//! reply leniently (tool call, JSON or a fenced ```sql block), runs the code
//! on a kernel behind [`quarry_engine::SqlKernel`] (sandboxed worker
//! processes; nothing runs here), feeds errors back for a fix (at most
//! `max_attempts` per step), and composes the [`answer::Answer`] with its
//! table, chart ([`chart`], Vega-Lite built here, never by generated code)
//! and provenance. Every step is an [`events::Event`] on one stream that the
//! CLI, the web app and the store consume.
//!
//! Privacy is enforced here: in [`Privacy::Strict`] no cell value reaches
//! the model — not in the context (schema, counts and nulls only), not in
//! errors (`EngineError::redacted`), not in results (shapes only); the
//! numbers in the answer are written by Quarry from the executed result.
//!
//! No HTTP here beyond the [`quarry_llm::ChatModel`] trait, no processes,
//! no files beyond the catalog and the answer cache.

pub mod answer;
pub mod chart;
pub mod context;
pub mod events;
pub mod prompt;
pub mod python;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use quarry_engine::{quoted, EngineError, ErrorKind, Limits, QueryResult, SqlKernel};
use quarry_ingest::catalog::{Catalog, TableEntry};
use quarry_llm::{CancellationToken, ChatModel, ChatRequest, ChatResponse, Delta, Message, ToolCall, Usage};
use quarry_sandbox::python::{PyRun, PythonError, PythonKernels, RunRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use answer::{Answer, DataVersion, Provenance, Step, Table};
pub use chart::ChartProposal;
pub use events::Event;
pub use quarry_types::Privacy;

/// How the model is asked to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Native tool calling (replies with only a fenced block still work).
    #[default]
    Tools,
    /// JSON-schema constrained replies, for servers without tools.
    Json,
    /// Plain text with fenced ```sql blocks, for the smallest models.
    Text,
}

/// Options for one question; documented here.
#[derive(Debug, Clone)]
pub struct AskOptions {
    pub privacy: Privacy,
    /// Attempts per step before giving up (default 5).
    pub max_attempts: usize,
    /// Successful queries per question before the model must answer (default 4).
    pub max_steps: usize,
    pub protocol: Protocol,
    /// Limits for each query.
    pub limits: Limits,
    /// Token budget for the data context (default 6000).
    pub context_tokens: usize,
    /// Serve a stored answer for the same question, data, model and privacy (default true).
    pub use_cache: bool,
    /// Stream the model's replies (default true).
    pub stream: bool,
    /// Emit the first request's prompt as an [`Event::Prompt`] (default false).
    pub emit_prompt: bool,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            privacy: Privacy::Strict,
            max_attempts: 5,
            max_steps: 4,
            protocol: Protocol::Tools,
            limits: Limits::default(),
            context_tokens: 6000,
            use_cache: true,
            stream: true,
            emit_prompt: false,
        }
    }
}

/// A previous question and what came of it, for follow-ups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Turn {
    pub question: String,
    /// What the model itself said last (never values it was not allowed to see).
    pub model_text: String,
    /// The query behind the answer, if any.
    pub sql: Option<String>,
}

/// A conversation: follow-up questions see the earlier turns, and Python
/// code runs in one kernel per conversation (named by `id`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Conversation {
    /// Set on first use when empty.
    #[serde(default)]
    pub id: String,
    pub turns: Vec<Turn>,
}

impl Conversation {
    fn ensure_id(&mut self) -> &str {
        if self.id.is_empty() {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let seed = format!("{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
            self.id = blake3::hash(seed.as_bytes()).to_hex()[..16].to_string();
        }
        &self.id
    }
}

/// Why a question could not be taken up at all (the model or the catalog
/// could not be reached, or the run was cancelled). Code that fails is not an
/// error: it is an [`Answer`] with `ok: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentError {
    pub kind: String,
    pub message: String,
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {}

fn agent_err(kind: &str, message: impl Into<String>) -> AgentError {
    AgentError { kind: kind.into(), message: message.into() }
}

/// Stored answers, keyed by question, history, data versions, model and privacy.
pub trait AnswerCache: Send + Sync {
    fn get(&self, key: &str) -> Option<Answer>;
    fn put(&self, key: &str, answer: &Answer);
}

/// Answers as JSON files in a directory (`<data>/answers` by default).
pub struct DirCache {
    dir: PathBuf,
}

impl DirCache {
    pub fn new(dir: impl Into<PathBuf>) -> DirCache {
        DirCache { dir: dir.into() }
    }
}

impl AnswerCache for DirCache {
    fn get(&self, key: &str) -> Option<Answer> {
        let text = std::fs::read_to_string(self.dir.join(format!("{key}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }
    fn put(&self, key: &str, answer: &Answer) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let tmp = self.dir.join(format!("{key}.json.tmp"));
        if let Ok(text) = serde_json::to_string(answer) {
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, self.dir.join(format!("{key}.json")));
            }
        }
    }
}

/// The analyst over one workspace's catalog.
pub struct Analyst {
    llm: Arc<dyn ChatModel>,
    kernel: Arc<dyn SqlKernel>,
    python: Option<Arc<PythonKernels>>,
    data: PathBuf,
    cache: Option<Arc<dyn AnswerCache>>,
}

/// What the model asked for in one reply.
enum Action {
    Sql { sql: String, call: Option<ToolCall> },
    Python { code: String, call: Option<ToolCall> },
    Final { text: String, chart: Option<ChartProposal> },
    Problem { feedback: String, call: Option<ToolCall> },
}

fn interpret(resp: &ChatResponse, protocol: Protocol, python: bool) -> Action {
    if let Some(call) = resp.tool_calls.first() {
        let call_out = Some(call.clone());
        let args = match call.parsed() {
            Ok(a) => a,
            Err(msg) => {
                return Action::Problem {
                    feedback: format!("{msg}. Send the call again with valid JSON arguments."),
                    call: call_out,
                }
            }
        };
        return match call.name.as_str() {
            "run_sql" => match args["sql"].as_str().filter(|s| !s.trim().is_empty()) {
                Some(sql) => Action::Sql { sql: sql.to_string(), call: call_out },
                None => Action::Problem {
                    feedback: "run_sql needs a non-empty 'sql' string argument.".into(),
                    call: call_out,
                },
            },
            "run_python" if python => match args["code"].as_str().filter(|s| !s.trim().is_empty()) {
                Some(code) => Action::Python { code: code.to_string(), call: call_out },
                None => Action::Problem {
                    feedback: "run_python needs a non-empty 'code' string argument.".into(),
                    call: call_out,
                },
            },
            "final_answer" => Action::Final {
                text: args["answer"].as_str().unwrap_or_default().to_string(),
                chart: serde_json::from_value(args["chart"].clone()).ok(),
            },
            other => Action::Problem {
                feedback: format!(
                    "There is no tool named '{other}': use {}.",
                    if python { "run_sql, run_python or final_answer" } else { "run_sql or final_answer" }
                ),
                call: call_out,
            },
        };
    }
    let text = resp.text.trim();
    if protocol == Protocol::Json {
        if let Some(v) = quarry_llm::quirks::lenient_json(text).filter(|v| v.get("action").is_some()) {
            return match v["action"].as_str() {
                Some("run_sql") => match v["sql"].as_str() {
                    Some(sql) => Action::Sql { sql: sql.to_string(), call: None },
                    None => Action::Problem { feedback: "action run_sql needs a 'sql' string.".into(), call: None },
                },
                Some("run_python") if python => match v["code"].as_str() {
                    Some(code) => Action::Python { code: code.to_string(), call: None },
                    None => Action::Problem { feedback: "action run_python needs a 'code' string.".into(), call: None },
                },
                _ => Action::Final {
                    text: v["answer"].as_str().unwrap_or_default().to_string(),
                    chart: serde_json::from_value(v["chart"].clone()).ok(),
                },
            };
        }
    }
    let blocks: Vec<_> = quarry_llm::quirks::fenced_blocks(text)
        .into_iter()
        .filter(|b| {
            matches!(b.lang.as_str(), "sql" | "" | "postgresql" | "postgres" | "sqlite")
                || (python && matches!(b.lang.as_str(), "python" | "py"))
        })
        .collect();
    if resp.truncated() {
        return Action::Problem {
            feedback: "Your reply was cut off at the token limit. Reply again, shorter: just the query.".into(),
            call: None,
        };
    }
    if let Some(b) = blocks.last() {
        if matches!(b.lang.as_str(), "python" | "py") {
            return Action::Python { code: b.code.clone(), call: None };
        }
        return Action::Sql { sql: b.code.clone(), call: None };
    }
    Action::Final { text: text.to_string(), chart: None }
}

fn hash(v: &impl Serialize) -> String {
    blake3::hash(serde_json::to_string(v).unwrap_or_default().as_bytes()).to_hex().to_string()
}

/// Columns of the tables a query mentions (all tables when it names none).
fn schema_for(sql: &str, entries: &[TableEntry]) -> String {
    let lower = sql.to_lowercase();
    let named: Vec<&TableEntry> = entries.iter().filter(|t| lower.contains(&t.name.to_lowercase())).collect();
    let list = if named.is_empty() { entries.iter().collect() } else { named };
    let mut s = String::new();
    for t in list.iter().take(6) {
        let cols: Vec<String> =
            t.columns.iter().take(120).map(|c| format!("{} ({})", c.name, c.dtype.as_str())).collect();
        s.push_str(&format!("{}: {}\n", t.name, cols.join(", ")));
    }
    s
}

impl Analyst {
    pub fn new(llm: Arc<dyn ChatModel>, kernel: Arc<dyn SqlKernel>, data: &Path) -> Analyst {
        Analyst { llm, kernel, python: None, data: data.to_path_buf(), cache: None }
    }

    /// Offer the model the `run_python` tool, run in these kernels.
    pub fn with_python(mut self, python: Arc<PythonKernels>) -> Analyst {
        self.python = Some(python);
        self
    }

    async fn run_python(
        &self,
        session: &str,
        code: &str,
        tables: Vec<String>,
        limits: &Limits,
    ) -> Result<PyRun, PythonError> {
        let Some(py) = self.python.clone() else {
            return Err(PythonError::Unavailable("Python is not available here: use run_sql".into()));
        };
        let data = python::EngineData::new(self.kernel.clone(), limits);
        let (session, code) = (session.to_string(), code.to_string());
        tokio::task::spawn_blocking(move || py.run(&session, &RunRequest { code: &code, tables: &tables }, &data))
            .await
            .unwrap_or_else(|e| Err(PythonError::Unavailable(format!("the Python task failed: {e}"))))
    }

    pub fn with_cache(mut self, cache: Arc<dyn AnswerCache>) -> Analyst {
        self.cache = Some(cache);
        self
    }

    async fn run_sql(&self, sql: &str, limits: &Limits) -> Result<QueryResult, EngineError> {
        let (k, sql, limits) = (self.kernel.clone(), sql.to_string(), limits.clone());
        tokio::task::spawn_blocking(move || k.query(&sql, &limits))
            .await
            .unwrap_or_else(|e| Err(EngineError::internal(format!("the query task failed: {e}"))))
    }

    /// A few rows per table, as text, for the `sample` and `full` contexts.
    async fn samples(
        &self,
        entries: &[TableEntry],
        limits: &Limits,
    ) -> HashMap<String, (Vec<String>, Vec<Vec<String>>)> {
        let mut out = HashMap::new();
        for t in entries.iter().take(12) {
            let sql = format!("SELECT * FROM {} LIMIT 3", quoted(&t.name));
            if let Ok(r) = self.run_sql(&sql, limits).await {
                let table = Table::from_result(&r);
                let cols = table.columns.iter().map(|c| c.name.clone()).collect();
                let rows = table.rows.iter().map(|r| r.iter().map(answer::plain).collect()).collect();
                out.insert(t.name.clone(), (cols, rows));
            }
        }
        out
    }

    /// For each `column = 'value'` filter whose value does not occur: the closest existing values.
    async fn empty_filters(
        &self,
        sql: &str,
        entries: &[TableEntry],
        limits: &Limits,
    ) -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        for (column, value) in quarry_engine::guard::filter_literals(sql).into_iter().take(6) {
            let lower = sql.to_lowercase();
            let Some((t, c)) = entries
                .iter()
                .filter(|t| lower.contains(&t.name.to_lowercase()))
                .find_map(|t| t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column)).map(|c| (t, c)))
            else {
                continue;
            };
            let q = format!(
                "SELECT CAST({c} AS VARCHAR) AS v FROM {t} WHERE {c} IS NOT NULL GROUP BY 1 LIMIT 20000",
                c = quoted(&c.name),
                t = quoted(&t.name)
            );
            let Ok(r) = self.run_sql(&q, limits).await else { continue };
            let values: Vec<String> = Table::from_result(&r).rows.into_iter().map(|r| answer::plain(&r[0])).collect();
            if values.iter().any(|v| v == &value) {
                continue;
            }
            let target = value.to_lowercase();
            let mut scored: Vec<(f64, String)> = values
                .into_iter()
                .map(|v| (strsim::jaro_winkler(&target, &v.to_lowercase()), v))
                .filter(|(s, _)| *s > 0.75)
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            out.push((c.name.clone(), value, scored.into_iter().take(3).map(|(_, v)| v).collect()));
        }
        out
    }

    /// Answer `question`, streaming every step to `sink`.
    pub async fn ask(
        &self,
        conversation: &mut Conversation,
        question: &str,
        opts: &AskOptions,
        sink: &mut (dyn FnMut(Event) + Send),
        cancel: &CancellationToken,
    ) -> Result<Answer, AgentError> {
        let started = Instant::now();
        let question = question.trim();
        sink(Event::Started { question: question.to_string(), privacy: opts.privacy, model: self.llm.model() });
        let result = self.run(conversation, question, opts, sink, cancel, started).await;
        match &result {
            Ok(a) => sink(Event::Done {
                ok: a.ok,
                input_tokens: a.provenance.input_tokens,
                output_tokens: a.provenance.output_tokens,
                elapsed_ms: started.elapsed().as_millis() as u64,
                interrupted: false,
            }),
            Err(e) => {
                if e.kind == "cancelled" {
                    sink(Event::Cancelled);
                } else {
                    sink(Event::Failed { step: 0, attempt: 0, message: e.message.clone() });
                }
                sink(Event::Done {
                    ok: false,
                    input_tokens: 0,
                    output_tokens: 0,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    interrupted: false,
                });
            }
        }
        result
    }

    async fn run(
        &self,
        conversation: &mut Conversation,
        question: &str,
        opts: &AskOptions,
        sink: &mut (dyn FnMut(Event) + Send),
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<Answer, AgentError> {
        let entries = Catalog::open(&self.data)
            .and_then(|c| c.tables())
            .map_err(|e| agent_err("catalog", format!("the tables could not be read: {e}")))?;
        if entries.is_empty() {
            return Err(agent_err("catalog", "there are no tables yet: load a file first"));
        }
        let samples =
            if opts.privacy.allows_values() { self.samples(&entries, &opts.limits).await } else { HashMap::new() };
        let ctx = context::build(&entries, &samples, question, opts.privacy, opts.context_tokens);
        sink(Event::ContextBuilt {
            tables: ctx.tables.clone(),
            columns: ctx.columns,
            omitted_columns: ctx.omitted_columns,
            approx_tokens: ctx.approx_tokens,
        });
        let python_on = self.python.is_some();
        let session = conversation.ensure_id().to_string();
        let mut messages = vec![Message::system(prompt::system_with(opts.privacy, &ctx.text, python_on))];
        for t in &conversation.turns {
            messages.push(Message::user(t.question.clone()));
            let mut said = t.model_text.clone();
            if let Some(sql) = &t.sql {
                said.push_str(&format!("\n\n(Query used:\n```sql\n{sql}\n```)"));
            }
            messages.push(Message::assistant(said.trim(), Vec::new()));
        }
        let previous_sql = conversation.turns.last().and_then(|t| t.sql.as_deref());
        messages.push(Message::user(prompt::question(question, previous_sql)));
        if opts.emit_prompt {
            sink(Event::Prompt {
                system: messages[0].content.clone(),
                question: messages.last().map(|m| m.content.clone()).unwrap_or_default(),
            });
        }
        let data_versions: Vec<DataVersion> = entries
            .iter()
            .map(|t| DataVersion { table: t.name.clone(), version: t.version, content_hash: t.content_hash.clone() })
            .collect();
        let prompt_hash = hash(&messages);
        let key = hash(&(
            prompt::PROMPT_VERSION,
            self.llm.model(),
            opts.privacy,
            &messages,
            &data_versions,
            opts.max_attempts,
            opts.max_steps,
        ));
        if opts.use_cache {
            if let Some(mut a) = self.cache.as_ref().and_then(|c| c.get(&key)) {
                a.cached = true;
                sink(Event::Cached { key: key.clone() });
                conversation.turns.push(Turn {
                    question: question.into(),
                    model_text: a.answer.clone(),
                    sql: Some(a.code.clone()).filter(|c| !c.is_empty()),
                });
                sink(Event::Answer { answer: Box::new(a.clone()) });
                return Ok(a);
            }
        }
        let provenance = |llm_ms: u64, exec_ms: u64, usage: Usage| Provenance {
            model: self.llm.model(),
            privacy: opts.privacy,
            prompt_hash: prompt_hash.clone(),
            data_versions: data_versions.clone(),
            llm_ms,
            exec_ms,
            total_ms: started.elapsed().as_millis() as u64,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
        };
        let tools = if opts.protocol == Protocol::Tools { prompt::tools_with(python_on) } else { Vec::new() };
        let (mut usage, mut llm_ms, mut exec_ms) = (Usage::default(), 0u64, 0u64);
        let (mut step, mut attempt) = (1usize, 0usize);
        let mut steps: Vec<Step> = Vec::new();
        let mut last: Option<LastStep> = None;
        let mut notes: Vec<String> = Vec::new();
        let mut last_code = String::new();
        let mut last_error = String::new();
        let budget = opts.max_steps * opts.max_attempts + opts.max_steps + 2;
        for _ in 0..budget {
            if cancel.is_cancelled() {
                return Err(agent_err("cancelled", "cancelled"));
            }
            let req = ChatRequest {
                messages: messages.clone(),
                tools: tools.clone(),
                json_schema: (opts.protocol == Protocol::Json).then(|| prompt::json_schema_with(python_on)),
                stream: opts.stream,
                max_tokens: None,
                temperature: Some(0.0),
            };
            let t0 = Instant::now();
            let resp = {
                let mut on_delta = |d: Delta| {
                    if let Delta::Text { text } = d {
                        sink(Event::LlmDelta { text });
                    }
                };
                self.llm.chat(&req, &mut on_delta, cancel).await
            };
            llm_ms += t0.elapsed().as_millis() as u64;
            let resp = match resp {
                Ok(r) => r,
                Err(e) if e.kind == quarry_llm::LlmErrorKind::Cancelled => {
                    return Err(agent_err("cancelled", "cancelled"))
                }
                Err(e) => return Err(agent_err("llm", format!("the model could not be reached: {e}"))),
            };
            usage += resp.usage;
            let action = interpret(&resp, opts.protocol, python_on);
            let plan = resp.text.trim();
            if !plan.is_empty() && !matches!(action, Action::Final { .. }) {
                let outside: String = strip_fences(plan);
                if !outside.trim().is_empty() {
                    sink(Event::Plan { text: outside.trim().to_string() });
                }
            }
            // The assistant's turn as the model will see it next time.
            let assistant = |call: &Option<ToolCall>| match call {
                Some(c) => Message::assistant(resp.text.clone(), vec![c.clone()]),
                None => Message::assistant(resp.text.clone(), Vec::new()),
            };
            let reply = |call: &Option<ToolCall>, text: String| match call {
                Some(c) => Message::tool_result(c.id.clone(), text),
                None => Message::user(text),
            };
            let (call, ran) = match action {
                Action::Problem { feedback, call } => {
                    attempt += 1;
                    sink(Event::Failed { step, attempt, message: feedback.clone() });
                    last_error = feedback.clone();
                    if attempt >= opts.max_attempts {
                        break;
                    }
                    sink(Event::Retrying { step, attempt, max_attempts: opts.max_attempts });
                    messages.push(assistant(&call));
                    messages.push(reply(&call, feedback));
                    continue;
                }
                Action::Sql { sql, call } => {
                    attempt += 1;
                    last_code = sql.clone();
                    sink(Event::CodeProposed { step, attempt, language: "sql".into(), code: sql.clone() });
                    let t1 = Instant::now();
                    let result = tokio::select! {
                        _ = cancel.cancelled() => return Err(agent_err("cancelled", "cancelled")),
                        r = self.run_sql(&sql, &opts.limits) => r,
                    };
                    exec_ms += t1.elapsed().as_millis() as u64;
                    let ran = match result {
                        Ok(r) => {
                            let table = Table::from_result(&r);
                            sink(Event::Executed {
                                step,
                                attempt,
                                rows: r.rows,
                                columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                                truncated: r.truncated,
                                elapsed_ms: t1.elapsed().as_millis() as u64,
                            });
                            steps.push(Step {
                                language: "sql".into(),
                                code: sql.clone(),
                                ok: true,
                                outcome: format!("{} rows", r.rows),
                            });
                            let mut text = prompt::result_ok(
                                &table.shape(),
                                (opts.privacy == Privacy::Full).then(|| answer::preview(&table, 30)).as_deref(),
                                step,
                                opts.max_steps,
                            );
                            // Checked on every result: an aggregate over a misspelled filter
                            // returns one row of zeros, not an empty table.
                            {
                                for (column, value, closest) in self.empty_filters(&sql, &entries, &opts.limits).await {
                                    sink(Event::EmptyFilter {
                                        column: column.clone(),
                                        value: value.clone(),
                                        closest: closest.clone(),
                                    });
                                    let shown = opts.privacy.allows_values().then_some(closest.as_slice());
                                    text.push('\n');
                                    text.push_str(&prompt::empty_filter(&column, &value, shown));
                                    notes.push(if closest.is_empty() {
                                        format!("No row has {column} = '{value}'.")
                                    } else {
                                        format!(
                                            "No row has {column} = '{value}'; the closest existing values are {}.",
                                            closest.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ")
                                        )
                                    });
                                }
                            }
                            let last = LastStep {
                                code: sql,
                                language: "sql",
                                table: Some(table),
                                output: String::new(),
                                figures: Vec::new(),
                            };
                            Ran::Ok(last, text)
                        }
                        Err(e) => {
                            let refused = e.kind == ErrorKind::Refused;
                            if let (true, Some(r)) = (refused, &e.refusal) {
                                sink(Event::Refused {
                                    step,
                                    attempt,
                                    rule: format!("{:?}", r.rule),
                                    message: e.to_string(),
                                });
                            } else {
                                sink(Event::Failed { step, attempt, message: e.to_string() });
                            }
                            let shown = if opts.privacy == Privacy::Strict { e.redacted() } else { e.to_string() };
                            Ran::Failed {
                                language: "sql",
                                reply: prompt::result_error(
                                    &shown,
                                    attempt,
                                    opts.max_attempts,
                                    &schema_for(&sql, &entries),
                                ),
                                code: sql,
                                full: e.to_string(),
                            }
                        }
                    };
                    (call, ran)
                }
                Action::Python { code, call } => {
                    attempt += 1;
                    last_code = code.clone();
                    sink(Event::CodeProposed { step, attempt, language: "python".into(), code: code.clone() });
                    let t1 = Instant::now();
                    let tables: Vec<String> = entries.iter().map(|t| t.name.clone()).collect();
                    let result = tokio::select! {
                        _ = cancel.cancelled() => {
                            if let Some(py) = &self.python {
                                py.interrupt(&session);
                            }
                            return Err(agent_err("cancelled", "cancelled"));
                        }
                        r = self.run_python(&session, &code, tables, &opts.limits) => r,
                    };
                    exec_ms += t1.elapsed().as_millis() as u64;
                    let failed = |full: String, shown: &str| Ran::Failed {
                        language: "python",
                        code: code.clone(),
                        full,
                        reply: prompt::python_error(shown, attempt, opts.max_attempts, &schema_for("", &entries)),
                    };
                    let ran = match result {
                        Ok(run) if run.ok => {
                            let table = run
                                .tables
                                .first()
                                .and_then(python::table_of)
                                .or_else(|| run.value.as_ref().and_then(answer::value_table));
                            let figures: Vec<String> = run.figures.iter().map(|p| answer::png_base64(p)).collect();
                            if !run.stdout.is_empty() || !figures.is_empty() {
                                sink(Event::Output {
                                    step,
                                    attempt,
                                    text: run.stdout.clone(),
                                    figures: figures.clone(),
                                });
                            }
                            sink(Event::Executed {
                                step,
                                attempt,
                                rows: run.tables.first().map_or(table.as_ref().map_or(0, |t| t.rows.len()), |t| t.rows),
                                columns: table
                                    .as_ref()
                                    .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
                                    .unwrap_or_default(),
                                truncated: run.tables.first().is_some_and(|t| t.truncated),
                                elapsed_ms: t1.elapsed().as_millis() as u64,
                            });
                            let summary = python_summary(&run, table.as_ref());
                            steps.push(Step {
                                language: "python".into(),
                                code: code.clone(),
                                ok: true,
                                outcome: summary.clone(),
                            });
                            let details = (opts.privacy == Privacy::Full).then(|| python_details(&run, table.as_ref()));
                            let text = prompt::python_ok(&summary, details.as_deref(), step, opts.max_steps);
                            let last = LastStep {
                                code: code.clone(),
                                language: "python",
                                table,
                                output: run.stdout.clone(),
                                figures,
                            };
                            Ran::Ok(last, text)
                        }
                        Ok(run) => {
                            let e = run.error.unwrap_or_else(|| quarry_sandbox::python::PyFailure {
                                kind: "Error".into(),
                                message: "the code failed".into(),
                                line: None,
                                source: None,
                                hint: None,
                            });
                            let at = e.line.map(|l| format!(" at line {l}")).unwrap_or_default();
                            let src = e.source.as_ref().map(|s| format!(" (`{s}`)")).unwrap_or_default();
                            let hint = e.hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default();
                            let full = format!("{}{at}{src}{hint}", e.message);
                            // Exception messages can quote cell values: strict mode sends only the type and place.
                            let shown = if opts.privacy == Privacy::Strict {
                                format!("{}{at}{src}{hint} (message withheld in strict privacy mode)", e.kind)
                            } else {
                                full.clone()
                            };
                            sink(Event::Failed { step, attempt, message: full.clone() });
                            failed(full, &shown)
                        }
                        Err(PythonError::Refused(rs)) => {
                            let message = PythonError::Refused(rs.clone()).to_string();
                            sink(Event::Refused {
                                step,
                                attempt,
                                rule: rs.first().map(|r| format!("{:?}", r.rule)).unwrap_or_default(),
                                message: message.clone(),
                            });
                            failed(message.clone(), &message)
                        }
                        Err(e) => {
                            let message = e.to_string();
                            sink(Event::Failed { step, attempt, message: message.clone() });
                            failed(message.clone(), &message)
                        }
                    };
                    (call, ran)
                }
                Action::Final { text, chart, .. } => {
                    let table = last.as_ref().and_then(|l| l.table.as_ref());
                    let mut narrative = answer::narrative(&text, table, opts.privacy);
                    for n in &notes {
                        narrative.push_str("\n\n");
                        narrative.push_str(n);
                    }
                    let chart = table.and_then(|t| chart::build(chart.as_ref(), t, question));
                    let answer = Answer {
                        question: question.to_string(),
                        ok: true,
                        answer: narrative,
                        code: last.as_ref().map(|l| l.code.clone()).unwrap_or_default(),
                        language: last.as_ref().map_or("sql", |l| l.language).into(),
                        attempts: attempts_of_last_step(&steps),
                        steps: steps.clone(),
                        table: table.cloned(),
                        chart,
                        output: last.as_ref().map(|l| l.output.clone()).unwrap_or_default(),
                        figures: last.as_ref().map(|l| l.figures.clone()).unwrap_or_default(),
                        provenance: provenance(llm_ms, exec_ms, usage),
                        cached: false,
                    };
                    if let Some(c) = &self.cache {
                        c.put(&key, &answer);
                    }
                    conversation.turns.push(Turn {
                        question: question.to_string(),
                        model_text: text.clone(),
                        sql: last.as_ref().filter(|l| l.language == "sql").map(|l| l.code.clone()),
                    });
                    sink(Event::Answer { answer: Box::new(answer.clone()) });
                    return Ok(answer);
                }
            };
            // What a step came to, the same for SQL and Python: a result moves
            // on to the next step; a failure is recorded and retried.
            match ran {
                Ran::Ok(step_behind_answer, text) => {
                    last = Some(step_behind_answer);
                    messages.push(assistant(&call));
                    messages.push(reply(&call, text));
                    if step > opts.max_steps {
                        break;
                    }
                    step += 1;
                    attempt = 0;
                }
                Ran::Failed { language, code, full, reply: text } => {
                    steps.push(Step { language: language.into(), code, ok: false, outcome: full.clone() });
                    last_error = full;
                    if attempt >= opts.max_attempts {
                        break;
                    }
                    sink(Event::Retrying { step, attempt, max_attempts: opts.max_attempts });
                    messages.push(assistant(&call));
                    messages.push(reply(&call, text));
                }
            }
        }
        // Out of attempts (or of steps with a result to show).
        let (ok, text) = match &last {
            Some(LastStep { table: Some(t), .. }) if last_error.is_empty() || attempt == 0 => (true, answer::describe(t)),
            Some(LastStep { table: None, .. }) if last_error.is_empty() || attempt == 0 => {
                (true, "The code ran; its output is below.".into())
            }
            _ => (
                false,
                format!(
                    "I could not answer this: after {} attempt{} the query still failed. Last error: {last_error}\nThe code tried is shown below; rephrasing the question or naming the columns may help.",
                    attempt,
                    if attempt == 1 { "" } else { "s" }
                ),
            ),
        };
        let answer = Answer {
            question: question.to_string(),
            ok,
            answer: text,
            code: if ok { last.as_ref().map(|l| l.code.clone()).unwrap_or_default() } else { last_code },
            language: match (&last, ok) {
                (Some(l), true) => l.language.into(),
                _ => steps.last().map_or("sql".into(), |s| s.language.clone()),
            },
            attempts: attempt.max(1),
            steps,
            table: if ok { last.as_ref().and_then(|l| l.table.clone()) } else { None },
            chart: None,
            output: if ok { last.as_ref().map(|l| l.output.clone()).unwrap_or_default() } else { String::new() },
            figures: if ok { last.as_ref().map(|l| l.figures.clone()).unwrap_or_default() } else { Vec::new() },
            provenance: provenance(llm_ms, exec_ms, usage),
            cached: false,
        };
        conversation.turns.push(Turn { question: question.to_string(), model_text: String::new(), sql: None });
        sink(Event::Answer { answer: Box::new(answer.clone()) });
        Ok(answer)
    }
}

/// What one piece of code came to, for the loop's shared bookkeeping.
enum Ran {
    /// It ran: the step the answer would now be built from, and what the model is told.
    Ok(LastStep, String),
    /// It failed: what the user sees (`full`) and what the model is told
    /// (`reply`, redacted as the privacy mode requires).
    Failed { language: &'static str, code: String, full: String, reply: String },
}

/// The last step that ran well: what the answer is built from.
struct LastStep {
    code: String,
    language: &'static str,
    table: Option<Table>,
    /// What Python printed (empty for SQL).
    output: String,
    /// Python's figures, PNG in base64.
    figures: Vec<String>,
}

/// What the model may always know about a Python run: its shape.
fn python_summary(run: &PyRun, table: Option<&Table>) -> String {
    let mut parts = Vec::new();
    let lines = run.stdout.lines().count();
    if lines > 0 {
        parts.push(format!("printed {lines} line{}", if lines == 1 { "" } else { "s" }));
    }
    if let Some(t) = run.tables.first() {
        let shape = table.map(|t| t.shape()).unwrap_or_default();
        parts.push(format!("result table '{}' with {} rows: {shape}", t.name, t.rows));
    } else if let Some(v) = &run.value {
        let kind = match v {
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "a list",
            Value::Object(o) if o.contains_key("repr") => "an object",
            Value::Object(_) => "a dict",
            Value::Null => "None",
        };
        parts.push(format!("value: {kind}"));
    }
    if !run.figures.is_empty() {
        parts.push(format!("{} figure{}", run.figures.len(), if run.figures.len() == 1 { "" } else { "s" }));
    }
    if parts.is_empty() {
        "ran, with no output and no result".into()
    } else {
        parts.join("; ")
    }
}

/// What the model reads of a Python run in full privacy mode.
fn python_details(run: &PyRun, table: Option<&Table>) -> String {
    let mut s = String::new();
    if !run.stdout.is_empty() {
        let out: String = run.stdout.chars().take(4000).collect();
        s.push_str(&format!("printed:\n{out}\n"));
    }
    if let Some(t) = table.filter(|_| !run.tables.is_empty()) {
        s.push_str(&format!("table:\n{}\n", answer::preview(t, 30)));
    } else if let Some(v) = &run.value {
        let text: String = v.to_string().chars().take(4000).collect();
        s.push_str(&format!("value: {text}\n"));
    }
    s.trim_end().to_string()
}

/// How many tries the last step took: failures since the previous success, plus the success.
fn attempts_of_last_step(steps: &[Step]) -> usize {
    let Some(last_ok) = steps.iter().rposition(|s| s.ok) else { return steps.len().max(1) };
    let before = steps[..last_ok].iter().rev().take_while(|s| !s.ok).count();
    before + 1
}

fn strip_fences(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            inside = !inside;
            continue;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Parse a value the model sent as JSON into a chart proposal (for sinks).
pub fn chart_from_json(v: &Value) -> Option<ChartProposal> {
    serde_json::from_value(v.clone()).ok()
}
