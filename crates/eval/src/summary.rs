//! A run's records and what they add up to. Each question's [`Record`] is
//! appended to `records.jsonl` as soon as it is scored, so a stopped run
//! resumes without asking again ([`read_records`] skips a torn last line);
//! the [`Summary`] is computed from the records, never kept apart from them.
//!
//! ABQ: the share of questions whose sub-answers are all right. PSAQ: the
//! mean share of right sub-answers per question. UASQ: right sub-answers of
//! all sub-answers. (DABench's definitions.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::score::Score;

/// One question as it was asked and scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub question: String,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub concepts: Vec<String>,
    /// The answer's narrative (empty when the question failed to run).
    pub answer: String,
    pub code: String,
    pub language: String,
    /// Whether Quarry answered from executed code.
    pub ok: bool,
    pub attempts: usize,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub ms: u64,
    pub score: Score,
    /// Why there is no answer, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The records kept so far (none when the file does not exist); a last
/// line cut off by a stop is left out, and asked again.
pub fn read_records(path: &Path) -> Result<Vec<Record>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(format!("{} line {}: {e}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// Append one record as a line, flushed to disk.
pub fn append_record(path: &Path, r: &Record) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(err)?;
    let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
    writeln!(f, "{line}").map_err(err)?;
    f.sync_data().map_err(err)
}

/// The three rates over some questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub name: String,
    pub questions: usize,
    pub abq: f64,
    pub psaq: f64,
    pub uasq: f64,
}

impl Rates {
    pub fn of(name: &str, records: &[&Record]) -> Rates {
        let n = records.len();
        let share = |x: usize, of: usize| if of == 0 { 0.0 } else { x as f64 / of as f64 };
        let all = records.iter().filter(|r| r.score.all_right()).count();
        let psaq = if n == 0 {
            0.0
        } else {
            records.iter().map(|r| share(r.score.right, r.score.total)).sum::<f64>() / n as f64
        };
        let right: usize = records.iter().map(|r| r.score.right).sum();
        let total: usize = records.iter().map(|r| r.score.total).sum();
        Rates { name: name.to_string(), questions: n, abq: share(all, n), psaq, uasq: share(right, total) }
    }
}

/// What a run adds up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub suite: String,
    pub model: String,
    pub privacy: String,
    pub overall: Rates,
    pub by_level: Vec<Rates>,
    pub by_concept: Vec<Rates>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Questions Quarry could not answer from executed code.
    pub failed: usize,
}

fn grouped<'a>(records: &'a [Record], keys: impl Fn(&'a Record) -> Vec<&'a str>) -> Vec<Rates> {
    let mut groups: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        for k in keys(r) {
            groups.entry(k).or_default().push(r);
        }
    }
    groups.iter().map(|(k, rs)| Rates::of(k, rs)).collect()
}

impl Summary {
    pub fn of(suite: &str, model: &str, privacy: &str, records: &[Record]) -> Summary {
        let all: Vec<&Record> = records.iter().collect();
        Summary {
            suite: suite.into(),
            model: model.into(),
            privacy: privacy.into(),
            overall: Rates::of("all", &all),
            by_level: grouped(records, |r| if r.level.is_empty() { Vec::new() } else { vec![r.level.as_str()] }),
            by_concept: grouped(records, |r| r.concepts.iter().map(String::as_str).collect()),
            input_tokens: records.iter().map(|r| r.input_tokens).sum(),
            output_tokens: records.iter().map(|r| r.output_tokens).sum(),
            failed: records.iter().filter(|r| !r.ok).count(),
        }
    }

    /// The summary as Markdown: the rates, by level, by concept, and the wrong questions.
    pub fn markdown(&self, records: &[Record]) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let row = |r: &Rates| {
            format!("| {} | {} | {} | {} | {} |\n", r.name, r.questions, pct(r.abq), pct(r.psaq), pct(r.uasq))
        };
        let head = "| | questions | ABQ | PSAQ | UASQ |\n|---|---|---|---|---|\n";
        let mut s = format!(
            "# quarry eval: {}\n\nModel `{}`, privacy `{}`. {} questions, {} not answered from executed code; {} input and {} output tokens.\n\n{head}{}",
            self.suite, self.model, self.privacy, self.overall.questions, self.failed, self.input_tokens, self.output_tokens, row(&self.overall)
        );
        for (title, groups) in [("By level", &self.by_level), ("By concept", &self.by_concept)] {
            if !groups.is_empty() {
                s.push_str(&format!("\n## {title}\n\n{head}"));
                groups.iter().for_each(|g| s.push_str(&row(g)));
            }
        }
        let wrong: Vec<&Record> = records.iter().filter(|r| !r.score.all_right()).collect();
        if !wrong.is_empty() {
            s.push_str("\n## Not all right\n\n| id | right | answer |\n|---|---|---|\n");
            for r in wrong {
                let said = r.error.as_deref().unwrap_or(&r.answer);
                let said: String = said.replace(['\n', '|'], " ").chars().take(160).collect();
                s.push_str(&format!("| {} | {}/{} | {said} |\n", r.id, r.score.right, r.score.total));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, level: &str, concepts: &[&str], right: usize, total: usize) -> Record {
        Record {
            id: id.into(),
            question: "q".into(),
            level: level.into(),
            concepts: concepts.iter().map(|c| c.to_string()).collect(),
            answer: "a".into(),
            code: String::new(),
            language: "sql".into(),
            ok: true,
            attempts: 1,
            input_tokens: 10,
            output_tokens: 2,
            ms: 5,
            score: Score { right, total },
            error: None,
        }
    }

    #[test]
    fn rates_are_dabenchs() {
        // Hand-computed: 4 questions, sub-answers 1/1, 1/2, 0/1, 3/3.
        let rs = vec![
            rec("0", "easy", &["Summary Statistics"], 1, 1),
            rec("1", "medium", &["Summary Statistics", "Correlation Analysis"], 1, 2),
            rec("2", "easy", &["Correlation Analysis"], 0, 1),
            rec("3", "hard", &["Machine Learning"], 3, 3),
        ];
        let s = Summary::of("t", "m", "full", &rs);
        assert_eq!(s.overall.abq, 0.5); // 2 of 4 all right
        assert_eq!(s.overall.psaq, (1.0 + 0.5 + 0.0 + 1.0) / 4.0);
        assert_eq!(s.overall.uasq, 5.0 / 7.0);
        let easy = s.by_level.iter().find(|g| g.name == "easy").unwrap();
        assert_eq!((easy.questions, easy.abq), (2, 0.5));
        let corr = s.by_concept.iter().find(|g| g.name == "Correlation Analysis").unwrap();
        assert_eq!((corr.questions, corr.abq, corr.uasq), (2, 0.0, 1.0 / 3.0));
        assert!(s.markdown(&rs).contains("| all | 4 | 50.0% | 62.5% | 71.4% |"));
    }

    #[test]
    fn records_resume_past_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("records.jsonl");
        append_record(&p, &rec("0", "", &[], 1, 1)).unwrap();
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("{\"id\": \"1\", \"quest");
        std::fs::write(&p, text).unwrap();
        assert_eq!(read_records(&p).unwrap().len(), 1);
    }
}
