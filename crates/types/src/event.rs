//! The one event stream every sink consumes (CLI, web app, store). Each
//! variant is serialisable as JSON with a `type` tag.

use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::privacy::Privacy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A question was taken up.
    Started { question: String, privacy: Privacy, model: String },
    /// The model's context is ready: which tables and columns it shows.
    ContextBuilt { tables: Vec<String>, columns: usize, omitted_columns: usize, approx_tokens: usize },
    /// The first request's prompt, only when asked for (`--show-prompt`).
    Prompt { system: String, question: String },
    /// A piece of the model's reply as it streams.
    LlmDelta { text: String },
    /// The model's plan or commentary for this step (text beside its code).
    Plan { text: String },
    /// Code the model wants to run.
    CodeProposed { step: usize, attempt: usize, language: String, code: String },
    /// The kernel's guard refused the code before running it.
    Refused { step: usize, attempt: usize, rule: String, message: String },
    /// The code ran.
    Executed { step: usize, attempt: usize, rows: usize, columns: Vec<String>, truncated: bool, elapsed_ms: u64 },
    /// What Python code printed, and its figures (PNG, base64).
    Output { step: usize, attempt: usize, text: String, figures: Vec<String> },
    /// The code failed; `message` is what the user sees (full detail).
    Failed { step: usize, attempt: usize, message: String },
    /// The error goes back to the model for a fix.
    Retrying { step: usize, attempt: usize, max_attempts: usize },
    /// A filter value in the code matches nothing in its column.
    EmptyFilter { column: String, value: String, closest: Vec<String> },
    /// The analyst asks the user to choose before it answers; the next
    /// message of the conversation resumes the question.
    Clarify { question: String, options: Vec<String> },
    /// The final answer.
    Answer { answer: Box<Answer> },
    /// Served from the cache: same question, data versions, model and privacy.
    Cached { key: String },
    /// The run was cancelled.
    Cancelled,
    /// The run ended (after `Answer`, a give-up, a cancel or an error).
    /// `interrupted`: the process running it stopped mid-question (a sink
    /// closing the question after a restart says so).
    Done {
        ok: bool,
        input_tokens: u64,
        output_tokens: u64,
        elapsed_ms: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::ContextBuilt { .. } => "context_built",
            Event::Prompt { .. } => "prompt",
            Event::LlmDelta { .. } => "llm_delta",
            Event::Plan { .. } => "plan",
            Event::CodeProposed { .. } => "code_proposed",
            Event::Refused { .. } => "refused",
            Event::Executed { .. } => "executed",
            Event::Output { .. } => "output",
            Event::Failed { .. } => "failed",
            Event::Retrying { .. } => "retrying",
            Event::EmptyFilter { .. } => "empty_filter",
            Event::Clarify { .. } => "clarify",
            Event::Answer { .. } => "answer",
            Event::Cached { .. } => "cached",
            Event::Cancelled => "cancelled",
            Event::Done { .. } => "done",
        }
    }
}
