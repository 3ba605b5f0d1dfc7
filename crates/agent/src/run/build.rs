//! The one [`Answer`] builder of a run, and what it reads from the steps.

use quarry_ingest::catalog::TableEntry;

use super::Run;
use crate::answer::{Answer, Provenance, Step};

impl Run<'_> {
    /// The one answer builder: from the last step that ran when `from_last`
    /// (no code at all when nothing ran), else from the last code tried.
    pub(super) fn answer(&self, ok: bool, narrative: String, from_last: bool) -> Answer {
        let last = self.last.as_ref().filter(|_| from_last);
        let (code, language) = match last {
            Some(l) => (l.code.clone(), l.language.to_string()),
            None if from_last => (String::new(), "sql".to_string()),
            None => (self.last_code.clone(), self.steps.last().map_or("sql".into(), |s| s.language.clone())),
        };
        Answer {
            question: self.question.to_string(),
            ok,
            answer: narrative,
            code,
            language,
            attempts: self.attempt.max(1),
            steps: self.steps.clone(),
            table: last.and_then(|l| l.table.clone()),
            chart: None,
            output: last.map(|l| l.output.clone()).unwrap_or_default(),
            figures: last.map(|l| l.figures.clone()).unwrap_or_default(),
            provenance: self.provenance(),
            cached: false,
            template: String::new(),
            definitions: Vec::new(),
            clarify: None,
        }
    }

    pub(super) fn provenance(&self) -> Provenance {
        Provenance {
            model: self.analyst.llm.model(),
            privacy: self.opts.privacy,
            prompt_hash: self.prompt_hash.clone(),
            data_versions: self.data_versions.clone(),
            llm_ms: self.llm_ms,
            exec_ms: self.exec_ms,
            total_ms: self.started.elapsed().as_millis() as u64,
            input_tokens: self.usage.input_tokens,
            output_tokens: self.usage.output_tokens,
            engine: self.analyst.kernel.engine(),
        }
    }
}

/// Columns of the tables a query mentions (all tables when it names none).
pub(super) fn schema_for(sql: &str, entries: &[TableEntry]) -> String {
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

/// How many tries the last step took: failures since the previous success, plus the success.
pub(super) fn attempts_of_last_step(steps: &[Step]) -> usize {
    let Some(last_ok) = steps.iter().rposition(|s| s.ok) else { return steps.len().max(1) };
    let before = steps[..last_ok].iter().rev().take_while(|s| !s.ok).count();
    before + 1
}
