//! Answers kept for the same question, history, data versions, model and
//! privacy: the [`AnswerCache`] seam and its directory implementation.

use std::path::PathBuf;

use serde::Serialize;

use crate::answer::Answer;

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
        // A cache: an answer that could not be kept is asked again next time.
        if let Ok(text) = serde_json::to_vec(answer) {
            let _ = crate::files::write_atomic(&self.dir.join(format!("{key}.json")), &text);
        }
    }
}

/// BLAKE3 of a value's JSON: cache keys and prompt hashes.
pub(crate) fn hash(v: &impl Serialize) -> String {
    blake3::hash(serde_json::to_string(v).unwrap_or_default().as_bytes()).to_hex().to_string()
}
