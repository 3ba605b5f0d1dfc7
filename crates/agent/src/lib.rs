//! # quarry-agent: the analyst
//!
//! Owns turning a question into an answer: it builds the model's context
//! from the catalog ([`context`]), prompts the model ([`prompt`]), reads its
//! reply leniently (tool call, JSON or a fenced ```sql block), runs the code
//! on a kernel behind [`quarry_types::SqlKernel`] (sandboxed worker
//! processes; nothing runs here), feeds errors back for a fix (at most
//! `max_attempts` per step), and composes the [`answer::Answer`] with its
//! table, chart ([`chart`], Vega-Lite built here, never by generated code)
//! and provenance. Every step is an [`events::Event`] on one stream that the
//! CLI, the web app and the store consume.
//!
//! A question is a [`run::Run`]: a small state machine with one method per
//! kind of step; the tools the model may call are listed once in [`tools`].
//!
//! Privacy is enforced here, by one [`policy::Policy`]: in
//! [`Privacy::Strict`] no cell value reaches the model — not in the context
//! (schema, counts and nulls only), not in errors (`EngineError::redacted`,
//! `PythonError::redacted`), not in results (shapes only); the numbers in
//! the answer are written by Quarry from the executed result.
//!
//! [`insights`] is the pass that needs no model: ranked findings about a
//! table (impossible values, outliers, missing reports, duplicates, …), each
//! with the query that shows it, run on the same kernel.
//!
//! No HTTP here beyond the [`quarry_llm::ChatModel`] trait, no processes,
//! no files beyond the catalog and the answer cache.

pub mod analyses;
pub mod answer;
pub mod cache;
pub mod chart;
pub mod context;
pub mod conversation;
pub mod definitions;
pub mod events;
pub mod files;
pub mod insights;
pub mod live;
pub mod options;
pub mod packs;
pub mod policy;
pub mod prompt;
pub mod python;
mod quote;
mod reply;
mod run;
mod shapes;
mod slots;
pub mod tools;
mod words;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use quarry_llm::{CancellationToken, ChatModel};
use quarry_sandbox::python::{PyRun, PythonError, PythonKernels, RunRequest};
use quarry_types::{EngineError, Limits, QueryResult, SqlKernel};
use serde_json::Value;

pub use answer::{Answer, DataVersion, Provenance, Step, Table};
pub use cache::{AnswerCache, DirCache};
pub use chart::ChartProposal;
pub use conversation::{Conversation, Pending, Turn};
pub use events::Event;
pub use options::{AgentError, AskOptions, Protocol};
pub use quarry_types::Privacy;

/// The analyst over one workspace's catalog.
pub struct Analyst {
    llm: Arc<dyn ChatModel>,
    kernel: Arc<dyn SqlKernel>,
    python: Option<Arc<PythonKernels>>,
    data: PathBuf,
    cache: Option<Arc<dyn AnswerCache>>,
}

impl Analyst {
    pub fn new(llm: Arc<dyn ChatModel>, kernel: Arc<dyn SqlKernel>, data: &Path) -> Analyst {
        Analyst { llm, kernel, python: None, data: data.to_path_buf(), cache: None }
    }

    /// The analyst as every sink (CLI, server) assembles it: over the
    /// catalog in `data`, answers cached in `answers`, and the `run_python`
    /// tool offered when Python kernels run.
    pub fn assemble(
        llm: Arc<dyn ChatModel>,
        kernel: Arc<dyn SqlKernel>,
        data: &Path,
        answers: &Path,
        python: Option<Arc<PythonKernels>>,
    ) -> Analyst {
        let analyst = Analyst::new(llm, kernel, data).with_cache(Arc::new(DirCache::new(answers)));
        match python {
            Some(py) => analyst.with_python(py),
            None => analyst,
        }
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
        tokio::task::spawn_blocking(move || {
            py.run(&session, &RunRequest { code: &code, tables: &tables, params: &[] }, &data)
        })
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
        // A reply to the analyst's question back resumes the question it was about.
        let (question, resumed) = match conversation.pending.take() {
            Some(p) => (p.question, Some((p.asked, question.trim().to_string()))),
            None => (question.trim().to_string(), None),
        };
        let question = question.as_str();
        sink(Event::Started { question: question.to_string(), privacy: opts.privacy, model: self.llm.model() });
        let result = match run::Run::prepare(self, conversation, question, resumed, opts, sink, cancel).await {
            Ok(mut r) => match r.cached(conversation) {
                Some(a) => Ok(a),
                None => r.drive(conversation).await,
            },
            Err(e) => Err(e),
        };
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
}

/// Parse a value the model sent as JSON into a chart proposal (for sinks).
pub fn chart_from_json(v: &Value) -> Option<ChartProposal> {
    serde_json::from_value(v.clone()).ok()
}
