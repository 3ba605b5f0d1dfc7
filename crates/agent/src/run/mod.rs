//! One question's run as a small state machine: [`Run`] owns the state of a
//! question (the messages so far, the step and attempt, the steps tried,
//! the step the answer would be built from), and each kind of reply has its
//! own method — [`Run::on_problem`], [`Run::on_sql`], [`Run::on_python`],
//! [`Run::finish`] — with one shared bookkeeping tail ([`Run::record`]) and
//! one [`Answer`] builder ([`Run::answer`]). What the model reads of data
//! goes through the run's [`Policy`].

use std::collections::HashMap;
use std::time::Instant;

use quarry_ingest::catalog::{Catalog, TableEntry};
use quarry_llm::{CancellationToken, ChatRequest, ChatResponse, Delta, LlmErrorKind, Message, Tool, ToolCall, Usage};
use quarry_sandbox::python::{PyFailure, PyRun, PythonError};
use quarry_types::{ErrorKind, QueryResult};

use crate::answer::{self, Answer, DataVersion, Step, Table};
use crate::cache::hash;
use crate::chart::{self, ChartProposal};
use crate::options::agent_err;
use crate::policy::{self, Policy};
use crate::reply::{interpret, Action};
use crate::slots::Filled;
mod build;
mod clarify;
mod probe;
mod talk;
mod values;

use build::{attempts_of_last_step, schema_for};

use crate::{context, prompt, python, AgentError, Analyst, AskOptions, Conversation, Event, Protocol, Turn};

/// The sink every step is streamed to.
pub type Sink<'a> = &'a mut (dyn FnMut(Event) + Send);

/// What one piece of code came to, for the shared bookkeeping.
enum Ran {
    /// It ran: the step the answer would now be built from, and what the model is told.
    Ok(LastStep, String),
    /// It failed: what the user sees (`full`) and what the model is told
    /// (`reply`, redacted as the policy requires).
    Failed { language: &'static str, code: String, full: String, reply: String },
}

/// Whether the run goes on after a step.
#[derive(PartialEq)]
enum Flow {
    Next,
    Stop,
}

/// The last step that ran well: what the answer is built from.
struct LastStep {
    /// The step's number, as the model was told it.
    step: usize,
    code: String,
    language: &'static str,
    table: Option<Table>,
    /// What Python printed (empty for SQL).
    output: String,
    /// Python's figures, PNG in base64.
    figures: Vec<String>,
}

/// The state of one question.
pub(crate) struct Run<'a> {
    analyst: &'a Analyst,
    opts: &'a AskOptions,
    policy: Policy,
    question: &'a str,
    sink: Sink<'a>,
    cancel: &'a CancellationToken,
    started: Instant,
    entries: Vec<TableEntry>,
    session: String,
    messages: Vec<Message>,
    tools: Vec<Tool>,
    prompt_hash: String,
    data_versions: Vec<DataVersion>,
    key: String,
    usage: Usage,
    llm_ms: u64,
    exec_ms: u64,
    step: usize,
    attempt: usize,
    steps: Vec<Step>,
    last: Option<LastStep>,
    /// The steps that ran well before `last`: the answer may be about one of them.
    earlier: Vec<LastStep>,
    notes: Vec<String>,
    /// The workspace's definitions that matter for this question.
    relevant: crate::definitions::Relevant,
    /// What the analyst asked back and the user's reply, when this run resumes one.
    resumed: Option<(String, String)>,
    last_code: String,
    last_error: String,
}

impl<'a> Run<'a> {
    /// Read the catalog, build the context and the first messages.
    pub(crate) async fn prepare(
        analyst: &'a Analyst,
        conversation: &mut Conversation,
        question: &'a str,
        resumed: Option<(String, String)>,
        opts: &'a AskOptions,
        sink: Sink<'a>,
        cancel: &'a CancellationToken,
    ) -> Result<Run<'a>, AgentError> {
        let started = Instant::now();
        let mut entries = Catalog::open(&analyst.data)
            .and_then(|c| c.tables())
            .map_err(|e| agent_err("catalog", format!("the tables could not be read: {e}")))?;
        entries.extend(crate::live::entries(&analyst.data));
        if !opts.tables.is_empty() {
            entries.retain(|t| opts.tables.contains(&t.name));
        }
        if entries.is_empty() && !opts.tables.is_empty() {
            let named = opts.tables.join(", ");
            return Err(agent_err("catalog", format!("none of the tables asked about exists: {named}")));
        }
        if entries.is_empty() {
            return Err(agent_err("catalog", "there are no tables yet: load a file or connect a database first"));
        }
        let defs = crate::definitions::load(&analyst.data).map_err(|e| agent_err("definitions", e))?;
        let names: Vec<String> = entries.iter().map(|t| t.name.clone()).collect();
        let relevant = crate::definitions::Relevant::for_question(&defs, question, &names);
        let policy = Policy::new(opts.privacy);
        let python_on = analyst.python.is_some();
        let data_versions = entries
            .iter()
            .map(|t| DataVersion { table: t.name.clone(), version: t.version, content_hash: t.content_hash.clone() })
            .collect();
        let mut run = Run {
            analyst,
            opts,
            policy,
            question,
            sink,
            cancel,
            started,
            entries,
            session: conversation.ensure_id().to_string(),
            messages: Vec::new(),
            tools: if opts.protocol == Protocol::Tools { prompt::tools_with(python_on) } else { Vec::new() },
            prompt_hash: String::new(),
            data_versions,
            key: String::new(),
            usage: Usage::default(),
            llm_ms: 0,
            exec_ms: 0,
            step: 1,
            attempt: 0,
            steps: Vec::new(),
            last: None,
            earlier: Vec::new(),
            notes: Vec::new(),
            relevant,
            resumed,
            last_code: String::new(),
            last_error: String::new(),
        };
        run.first_messages(conversation).await;
        Ok(run)
    }

    fn emit(&mut self, e: Event) {
        (self.sink)(e)
    }

    /// The system prompt with the data's context, the earlier turns and the question.
    async fn first_messages(&mut self, conversation: &Conversation) {
        let samples = if self.policy.shows(policy::View::SampleRows) { self.samples().await } else { HashMap::new() };
        let ctx = context::build(&self.entries, &samples, self.question, self.opts.privacy, self.opts.context_tokens);
        self.emit(Event::ContextBuilt {
            tables: ctx.tables.clone(),
            columns: ctx.columns,
            omitted_columns: ctx.omitted_columns,
            approx_tokens: ctx.approx_tokens,
        });
        let python_on = self.analyst.python.is_some();
        let defs = self.relevant.prompt_text();
        let system = prompt::system_full(self.opts.privacy, &ctx.text, python_on, &defs);
        let mut messages = vec![Message::system(system)];
        for t in &conversation.turns {
            messages.push(Message::user(t.question.clone()));
            let mut said = t.model_text.clone();
            if let Some(sql) = &t.sql {
                said.push_str(&format!("\n\n(Query used:\n```sql\n{sql}\n```)"));
            }
            messages.push(Message::assistant(said.trim(), Vec::new()));
        }
        let previous = self.previous_result(conversation).await;
        messages.push(Message::user(match &previous {
            Some((sql, table)) => {
                let preview = self.policy.result(table);
                prompt::follow_up(self.question, sql, &table.shape(), preview.as_deref())
            }
            None => match &self.resumed {
                Some((asked, reply)) => prompt::resumed(self.question, asked, reply),
                None => prompt::question(self.question, conversation.turns.last().and_then(|t| t.sql.as_deref())),
            },
        }));
        if let Some((code, table)) = previous {
            // A follow-up that only shows it differently needs no new query.
            let (output, figures) = (String::new(), Vec::new());
            self.last = Some(LastStep { step: 0, code, language: "sql", table: Some(table), output, figures });
        }
        if self.opts.emit_prompt {
            let system = messages[0].content.clone();
            let question = messages.last().map(|m| m.content.clone()).unwrap_or_default();
            self.emit(Event::Prompt { system, question });
        }
        self.prompt_hash = hash(&messages);
        self.key = hash(&(
            prompt::PROMPT_VERSION,
            self.analyst.llm.model(),
            self.opts.privacy,
            &messages,
            &self.data_versions,
            self.opts.max_attempts,
            self.opts.max_steps,
        ));
        self.messages = messages;
    }

    /// The stored answer for this very question, data and model, if any.
    pub(crate) fn cached(&mut self, conversation: &mut Conversation) -> Option<Answer> {
        if !self.opts.use_cache {
            return None;
        }
        let mut a = self.analyst.cache.as_ref().and_then(|c| c.get(&self.key))?;
        a.cached = true;
        self.emit(Event::Cached { key: self.key.clone() });
        conversation.turns.push(Turn {
            question: self.question.into(),
            model_text: a.answer.clone(),
            sql: Some(a.code.clone()).filter(|c| !c.is_empty()),
        });
        self.emit(Event::Answer { answer: Box::new(a.clone()) });
        Some(a)
    }

    /// Ask the model, act on each reply, until an answer or the budget is spent.
    pub(crate) async fn drive(mut self, conversation: &mut Conversation) -> Result<Answer, AgentError> {
        let budget = self.opts.max_steps * self.opts.max_attempts + self.opts.max_steps + 2;
        for _ in 0..budget {
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let resp = self.ask_model().await?;
            let action = interpret(&resp, self.opts.protocol, self.analyst.python.is_some());
            if !matches!(action, Action::Final { .. }) {
                self.emit_plan(&resp);
            }
            let (call, ran) = match action {
                Action::Problem { feedback, call } => {
                    if self.on_problem(&resp, &call, feedback) == Flow::Stop {
                        break;
                    }
                    continue;
                }
                Action::Check { table, column, values, call } => {
                    let reply = self.on_check(&table, &column, &values).await;
                    self.converse(&resp, &call, reply);
                    continue;
                }
                Action::Sql { sql, call } => (call, self.on_sql(sql).await?),
                Action::Python { code, call } => (call, self.on_python(code).await?),
                Action::Clarify { question, options, call } => {
                    if self.resumed.is_none() {
                        return Ok(self.clarify(conversation, question, options));
                    }
                    if self.on_problem(&resp, &call, prompt::ASKED_ALREADY.into()) == Flow::Stop {
                        break;
                    }
                    continue;
                }
                Action::Final { text, chart, step, call } => {
                    self.choose_step(step);
                    let table = self.last.as_ref().and_then(|l| l.table.as_ref());
                    match crate::slots::check_answer(&text, self.last.is_some(), table) {
                        Ok(filled) => return Ok(self.finish(conversation, &text, &filled, chart.as_ref())),
                        Err(feedback) => {
                            if self.on_problem(&resp, &call, feedback) == Flow::Stop {
                                break;
                            }
                            continue;
                        }
                    }
                }
            };
            if self.record(&resp, &call, ran) == Flow::Stop {
                break;
            }
        }
        Ok(self.give_up(conversation))
    }

    /// One request to the model, its reply streamed; the plan beside its code emitted.
    async fn ask_model(&mut self) -> Result<ChatResponse, AgentError> {
        let python_on = self.analyst.python.is_some();
        let req = ChatRequest {
            messages: self.messages.clone(),
            tools: self.tools.clone(),
            json_schema: (self.opts.protocol == Protocol::Json).then(|| prompt::json_schema_with(python_on)),
            stream: self.opts.stream,
            max_tokens: None,
            temperature: Some(0.0),
        };
        let t0 = Instant::now();
        let resp = {
            let sink = &mut self.sink;
            let mut on_delta = |d: Delta| {
                if let Delta::Text { text } = d {
                    sink(Event::LlmDelta { text });
                }
            };
            self.analyst.llm.chat(&req, &mut on_delta, self.cancel).await
        };
        self.llm_ms += t0.elapsed().as_millis() as u64;
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e.kind == LlmErrorKind::Cancelled => return Err(cancelled()),
            Err(e) => return Err(agent_err("llm", format!("the model could not be reached: {e}"))),
        };
        self.usage += resp.usage;
        Ok(resp)
    }

    /// A reply that could not be acted on: say why, and let the model try again.
    fn on_problem(&mut self, resp: &ChatResponse, call: &Option<ToolCall>, feedback: String) -> Flow {
        self.attempt += 1;
        let (step, attempt) = (self.step, self.attempt);
        self.emit(Event::Failed { step, attempt, message: feedback.clone() });
        self.last_error = feedback.clone();
        if attempt >= self.opts.max_attempts {
            return Flow::Stop;
        }
        self.emit(Event::Retrying { step, attempt, max_attempts: self.opts.max_attempts });
        self.converse(resp, call, feedback);
        Flow::Next
    }

    /// Run a query the model wrote.
    async fn on_sql(&mut self, sql: String) -> Result<Ran, AgentError> {
        self.attempt += 1;
        self.last_code = sql.clone();
        let (step, attempt) = (self.step, self.attempt);
        self.emit(Event::CodeProposed { step, attempt, language: "sql".into(), code: sql.clone() });
        let t1 = Instant::now();
        let result = tokio::select! {
            _ = self.cancel.cancelled() => return Err(cancelled()),
            r = self.analyst.run_sql(&sql, &self.opts.limits) => r,
        };
        self.exec_ms += t1.elapsed().as_millis() as u64;
        Ok(match result {
            Ok(r) => self.sql_ok(sql, &r, t1).await,
            Err(e) => self.sql_failed(sql, &e),
        })
    }

    async fn sql_ok(&mut self, sql: String, r: &QueryResult, t1: Instant) -> Ran {
        let table = Table::from_result(r);
        let (step, attempt) = (self.step, self.attempt);
        self.emit(Event::Executed {
            step,
            attempt,
            rows: r.rows,
            columns: table.columns.iter().map(|c| c.name.clone()).collect(),
            truncated: r.truncated,
            elapsed_ms: t1.elapsed().as_millis() as u64,
        });
        self.steps.push(Step {
            language: "sql".into(),
            code: sql.clone(),
            ok: true,
            outcome: format!("{} rows", r.rows),
        });
        let preview = self.policy.result(&table);
        let mut text = prompt::result_ok(&table.shape(), preview.as_deref(), step, self.opts.max_steps);
        // Checked on every result: an aggregate over a misspelled filter
        // returns one row of zeros, not an empty table.
        self.check_filters(&sql, &mut text).await;
        let (output, figures) = (String::new(), Vec::new());
        let last = LastStep { step, code: sql, language: "sql", table: Some(table), output, figures };
        Ran::Ok(last, text)
    }

    fn sql_failed(&mut self, sql: String, e: &quarry_types::EngineError) -> Ran {
        let (step, attempt) = (self.step, self.attempt);
        match (&e.kind, &e.refusal) {
            (ErrorKind::Refused, Some(r)) => {
                self.emit(Event::Refused { step, attempt, rule: r.rule.as_str().into(), message: e.to_string() })
            }
            _ => self.emit(Event::Failed { step, attempt, message: e.to_string() }),
        }
        let shown = self.policy.sql_error(e);
        let reply = prompt::result_error(&shown, attempt, self.opts.max_attempts, &schema_for(&sql, &self.entries));
        Ran::Failed { language: "sql", reply, code: sql, full: e.to_string() }
    }

    /// Run Python code the model wrote.
    async fn on_python(&mut self, code: String) -> Result<Ran, AgentError> {
        self.attempt += 1;
        self.last_code = code.clone();
        let (step, attempt) = (self.step, self.attempt);
        self.emit(Event::CodeProposed { step, attempt, language: "python".into(), code: code.clone() });
        let t1 = Instant::now();
        let tables: Vec<String> = self.entries.iter().map(|t| t.name.clone()).collect();
        let result = tokio::select! {
            _ = self.cancel.cancelled() => {
                if let Some(py) = &self.analyst.python {
                    py.interrupt(&self.session);
                }
                return Err(cancelled());
            }
            r = self.analyst.run_python(&self.session, &code, tables, &self.opts.limits) => r,
        };
        self.exec_ms += t1.elapsed().as_millis() as u64;
        Ok(match result {
            Ok(run) if run.ok => self.python_ok(code, run, t1),
            Ok(run) => {
                let e = run.error.unwrap_or_else(|| PyFailure {
                    kind: "Error".into(),
                    message: "the code failed".into(),
                    line: None,
                    source: None,
                    hint: None,
                });
                let full = policy::python_failure_text(&e);
                self.emit(Event::Failed { step, attempt, message: full.clone() });
                let shown = self.policy.python_failure(&e);
                self.python_failed(code, full, &shown)
            }
            Err(e) => {
                let full = e.to_string();
                match &e {
                    PythonError::Refused(rs) => {
                        let rule = rs.first().map(|r| r.rule.as_str().to_string()).unwrap_or_default();
                        self.emit(Event::Refused { step, attempt, rule, message: full.clone() });
                    }
                    _ => self.emit(Event::Failed { step, attempt, message: full.clone() }),
                }
                let shown = self.policy.python_error(&e);
                self.python_failed(code, full, &shown)
            }
        })
    }

    fn python_ok(&mut self, code: String, run: PyRun, t1: Instant) -> Ran {
        let table =
            run.tables.first().and_then(python::table_of).or_else(|| run.value.as_ref().and_then(answer::value_table));
        let figures: Vec<String> = run.figures.iter().map(|p| answer::png_base64(p)).collect();
        let (step, attempt) = (self.step, self.attempt);
        if !run.stdout.is_empty() || !figures.is_empty() {
            self.emit(Event::Output { step, attempt, text: run.stdout.clone(), figures: figures.clone() });
        }
        self.emit(Event::Executed {
            step,
            attempt,
            rows: run.tables.first().map_or(table.as_ref().map_or(0, |t| t.rows.len()), |t| t.rows),
            columns: table.as_ref().map(|t| t.columns.iter().map(|c| c.name.clone()).collect()).unwrap_or_default(),
            truncated: run.tables.first().is_some_and(|t| t.truncated),
            elapsed_ms: t1.elapsed().as_millis() as u64,
        });
        let summary = policy::python_summary(&run, table.as_ref());
        self.steps.push(Step { language: "python".into(), code: code.clone(), ok: true, outcome: summary.clone() });
        let details = self.policy.python_output(&run, table.as_ref());
        let text = prompt::python_ok(&summary, details.as_deref(), step, self.opts.max_steps);
        Ran::Ok(LastStep { step, code, language: "python", table, output: run.stdout, figures }, text)
    }

    fn python_failed(&self, code: String, full: String, shown: &str) -> Ran {
        let reply = prompt::python_error(shown, self.attempt, self.opts.max_attempts, &schema_for("", &self.entries));
        Ran::Failed { language: "python", code, full, reply }
    }

    /// What a step came to, the same for SQL and Python: a result moves on
    /// to the next step; a failure is recorded and retried.
    fn record(&mut self, resp: &ChatResponse, call: &Option<ToolCall>, ran: Ran) -> Flow {
        match ran {
            Ran::Ok(step_behind_answer, text) => {
                if let Some(before) = self.last.replace(step_behind_answer) {
                    self.earlier.push(before);
                }
                self.converse(resp, call, text);
                if self.step > self.opts.max_steps {
                    return Flow::Stop;
                }
                self.step += 1;
                self.attempt = 0;
            }
            Ran::Failed { language, code, full, reply } => {
                self.steps.push(Step { language: language.into(), code, ok: false, outcome: full.clone() });
                self.last_error = full;
                if self.attempt >= self.opts.max_attempts {
                    return Flow::Stop;
                }
                let (step, attempt) = (self.step, self.attempt);
                self.emit(Event::Retrying { step, attempt, max_attempts: self.opts.max_attempts });
                self.converse(resp, call, reply);
            }
        }
        Flow::Next
    }

    /// The model answered: the narrative, the chart and the answer from the last step that ran.
    /// (`text` as the model wrote it, kept for follow-ups: slots, never the
    /// values `filled` holds.)
    fn finish(
        mut self,
        conversation: &mut Conversation,
        text: &str,
        filled: &Filled,
        chart: Option<&ChartProposal>,
    ) -> Answer {
        let table = self.last.as_ref().and_then(|l| l.table.as_ref());
        let code = self.last.as_ref().map(|l| l.code.as_str()).unwrap_or_default();
        let vetted = crate::slots::vet_numbers(self.policy, text, &filled.text, table, self.question, code);
        let mut narrative = self.policy.narrative(&vetted, table, filled.slots > 0);
        for n in &self.notes {
            narrative.push_str("\n\n");
            narrative.push_str(n);
        }
        let mut chart = table.and_then(|t| chart::build(chart, t, self.question));
        if let Some(c) = chart.as_mut() {
            chart::with_labels(c, &self.entries);
        }
        let mut answer = self.answer(true, narrative, true);
        answer.attempts = attempts_of_last_step(&self.steps);
        answer.chart = chart;
        if filled.slots > 0 {
            answer.template = text.to_string();
        }
        answer.definitions = self.relevant.used(&answer.code);
        if !answer.definitions.is_empty() {
            answer.answer.push_str(&format!("\n\nDefinitions used: {}.", answer.definitions.join("; ")));
        }
        if let Some(c) = &self.analyst.cache {
            c.put(&self.key, &answer);
        }
        let sql = self.last.as_ref().filter(|l| l.language == "sql").map(|l| l.code.clone());
        conversation.turns.push(Turn { question: self.question.to_string(), model_text: text.to_string(), sql });
        self.emit(Event::Answer { answer: Box::new(answer.clone()) });
        answer
    }

    /// Out of attempts (or of steps with a result to show): what ran, or why not.
    fn give_up(mut self, conversation: &mut Conversation) -> Answer {
        let clean = self.last_error.is_empty() || self.attempt == 0;
        let (ok, text) = match &self.last {
            Some(LastStep { table: Some(t), .. }) if clean => (true, answer::describe(t)),
            Some(LastStep { table: None, .. }) if clean => (true, "The code ran; its output is below.".into()),
            None if self.steps.is_empty() => (false, answer::no_code_ran(self.attempt)),
            _ => (
                false,
                format!(
                    "I could not answer this: after {} attempt{} the query still failed. Last error: {}\nThe code tried is shown below; rephrasing the question or naming the columns may help.",
                    self.attempt,
                    if self.attempt == 1 { "" } else { "s" },
                    self.last_error
                ),
            ),
        };
        let answer = self.answer(ok, text, ok);
        conversation.turns.push(Turn { question: self.question.to_string(), model_text: String::new(), sql: None });
        self.emit(Event::Answer { answer: Box::new(answer.clone()) });
        answer
    }
}

fn cancelled() -> AgentError {
    agent_err("cancelled", "cancelled")
}
