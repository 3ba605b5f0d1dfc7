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

/// BLAKE3 of a value's JSON: cache keys and prompt hashes.
pub(crate) fn hash(v: &impl Serialize) -> String {
    blake3::hash(serde_json::to_string(v).unwrap_or_default().as_bytes()).to_hex().to_string()
}
