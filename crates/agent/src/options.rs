//! The documented options of one question ([`AskOptions`]), how the model
//! is asked to act ([`Protocol`]), and why a question could not be taken up
//! ([`AgentError`]).

use quarry_types::Limits;
use serde::{Deserialize, Serialize};

use crate::Privacy;

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

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tools, Protocol::Json, Protocol::Text];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tools => "tools",
            Protocol::Json => "json",
            Protocol::Text => "text",
        }
    }

    /// What the protocol asks of the model's server, for help text.
    pub fn describe(self) -> &'static str {
        match self {
            Protocol::Tools => "native tool calling",
            Protocol::Json => "constrained JSON, for servers without tools",
            Protocol::Text => "fenced ```sql blocks, for the smallest models",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        let s = s.trim().to_ascii_lowercase();
        Protocol::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown protocol '{s}': use {}", names.join(", "))
        })
    }
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
    /// The tables the question is about, by name: only these are described
    /// to the model and preloaded for Python (`quarry ask FILE` names the
    /// tables FILE became). Empty (the default): every table of the catalog.
    pub tables: Vec<String>,
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
            tables: Vec::new(),
        }
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

pub(crate) fn agent_err(kind: &str, message: impl Into<String>) -> AgentError {
    AgentError { kind: kind.into(), message: message.into() }
}
