//! Conversations: follow-up questions see the earlier turns, and Python code
//! runs in one kernel per conversation.

use serde::{Deserialize, Serialize};

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
    /// A question the analyst asked back: the next message answers it and
    /// resumes the question it was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// The analyst's question back to the user, waiting for the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The user's question it is about.
    pub question: String,
    /// What the analyst asked, and the options it offered.
    pub asked: String,
    pub options: Vec<String>,
}

impl Conversation {
    pub(crate) fn ensure_id(&mut self) -> &str {
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
