//! One error type for every way a model call can fail. Messages never carry
//! the API key: [`LlmError::scrub`] removes it from anything a server echoes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmErrorKind {
    /// Nothing says which model to use, or a hosted API has no key.
    NotConfigured,
    /// The server could not be reached or dropped the connection.
    Connect,
    /// No answer within the request timeout.
    Timeout,
    /// Still rate-limited (429) after every retry.
    RateLimited,
    /// The server answered with an error status.
    Http,
    /// The server's reply could not be read (malformed JSON or stream).
    BadResponse,
    /// The caller cancelled the request.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmError {
    pub kind: LlmErrorKind,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LlmError {}

impl LlmError {
    pub fn new(kind: LlmErrorKind, message: impl Into<String>) -> LlmError {
        LlmError { kind, status: None, message: message.into() }
    }

    pub fn http(status: u16, message: impl Into<String>) -> LlmError {
        let kind = if status == 429 { LlmErrorKind::RateLimited } else { LlmErrorKind::Http };
        LlmError { kind, status: Some(status), message: message.into() }
    }

    /// The server sent something unreadable; `v` is quoted (first 200 characters).
    pub fn bad_response(what: &str, v: &str) -> LlmError {
        let shown: String = v.chars().take(200).collect();
        LlmError::new(LlmErrorKind::BadResponse, format!("the model server sent {what}: {shown}"))
    }

    /// Worth retrying: rate limits, overload, server errors, dropped connections.
    pub fn retryable(&self) -> bool {
        match self.kind {
            LlmErrorKind::Connect | LlmErrorKind::RateLimited => true,
            LlmErrorKind::Http => matches!(self.status, Some(500 | 502 | 503 | 504 | 529)),
            _ => false,
        }
    }

    /// The same error with every occurrence of `secret` replaced.
    pub fn scrub(mut self, secret: Option<&str>) -> LlmError {
        if let Some(s) = secret.filter(|s| s.len() >= 4) {
            self.message = self.message.replace(s, "[redacted]");
        }
        self
    }
}
