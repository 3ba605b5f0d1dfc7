//! The cases of a suite: a question, the files it is about, and what a right
//! answer holds. Two sources: DABench's dev set (`da-dev-questions.jsonl`,
//! `da-dev-labels.jsonl`, `da-dev-tables/`) and Quarry's own suite files.
//!
//! A suite file (YAML or JSON), its `files` relative to the file itself:
//!
//! ```yaml
//! name: clinics
//! cases:
//!   - id: positives
//!     files: [clinics.xlsx]
//!     question: How many people aged 5 and over tested positive?
//!     level: easy
//!     concepts: [sum]
//!     expected: {kind: number, value: 17923, tolerance: 0.5}
//!   - id: top_state
//!     files: [clinics.xlsx]
//!     question: Which state had the most positives?
//!     expected: {kind: text, value: Kano}
//! ```
//!
//! Kinds: `number` (`value`, `tolerance`, default 1e-6), `text` (`value`,
//! found as whole words, ignoring case), `list` (`values`, every one found;
//! `ordered: true` in that order), `map` (`values: {name: value}`, each
//! written `@name[value]`, as DABench does) and `one_of` (`values`, any one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a right answer holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expected {
    Number {
        value: f64,
        #[serde(default = "default_tolerance")]
        tolerance: f64,
    },
    Text {
        value: String,
    },
    List {
        values: Vec<String>,
        #[serde(default)]
        ordered: bool,
    },
    /// Named sub-answers, each written `@name[value]`: right when the text
    /// equals the label or both are numbers within `tolerance`.
    Map {
        values: BTreeMap<String, Value>,
        #[serde(default = "default_tolerance")]
        tolerance: f64,
    },
    OneOf {
        values: Vec<String>,
    },
}

fn default_tolerance() -> f64 {
    1e-6
}

/// One question of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub question: String,
    pub files: Vec<PathBuf>,
    pub expected: Expected,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub concepts: Vec<String>,
}

/// A suite: its name and cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Suite {
    /// A suite file (`.yaml`/`.yml` or `.json`); its files resolved beside it.
    pub fn from_file(path: &Path) -> Result<Suite, String> {
        let text = read(path)?;
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let mut suite: Suite = if yaml {
            serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for c in &mut suite.cases {
            c.files = c.files.iter().map(|f| base.join(f)).collect();
        }
        suite.check()?;
        Ok(suite)
    }

    /// DABench's dev set in `dir`: each question with its constraints and
    /// required format, as the benchmark poses it.
    pub fn dabench(dir: &Path) -> Result<Suite, String> {
        #[derive(Deserialize)]
        struct Q {
            id: u64,
            question: String,
            #[serde(default)]
            concepts: Vec<String>,
            #[serde(default)]
            constraints: String,
            #[serde(default)]
            format: String,
            file_name: String,
            #[serde(default)]
            level: String,
        }
        #[derive(Deserialize)]
        struct L {
            id: u64,
            common_answers: Vec<(String, String)>,
        }
        let lines = |name: &str| -> Result<Vec<(usize, String)>, String> {
            let text = read(&dir.join(name))?;
            Ok(text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| (i + 1, l.to_string()))
                .collect())
        };
        let mut labels = BTreeMap::new();
        for (n, line) in lines("da-dev-labels.jsonl")? {
            let l: L = serde_json::from_str(&line).map_err(|e| format!("da-dev-labels.jsonl line {n}: {e}"))?;
            labels.insert(l.id, l.common_answers);
        }
        let mut cases = Vec::new();
        for (n, line) in lines("da-dev-questions.jsonl")? {
            let q: Q = serde_json::from_str(&line).map_err(|e| format!("da-dev-questions.jsonl line {n}: {e}"))?;
            let Some(answers) = labels.remove(&q.id) else {
                return Err(format!("da-dev-questions.jsonl line {n}: question {} has no label", q.id));
            };
            let values = answers.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let question = format!("{}\nConstraints: {}\nAnswer format: {}", q.question, q.constraints, q.format);
            cases.push(Case {
                id: q.id.to_string(),
                question,
                files: vec![dir.join("da-dev-tables").join(&q.file_name)],
                expected: Expected::Map { values, tolerance: default_tolerance() },
                level: q.level,
                concepts: q.concepts,
            });
        }
        let suite = Suite { name: "dabench-dev".into(), cases };
        suite.check()?;
        Ok(suite)
    }

    /// Ids unique, every case with a question and files.
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.cases {
            if !seen.insert(&c.id) {
                return Err(format!("suite {}: case id '{}' appears twice", self.name, c.id));
            }
            if c.question.trim().is_empty() || c.files.is_empty() {
                return Err(format!("suite {}: case '{}' needs a question and files", self.name, c.id));
            }
        }
        Ok(())
    }

    /// The cases chosen by `--ids` (when given) and cut to `--limit`.
    pub fn select(mut self, ids: &[String], limit: Option<usize>) -> Result<Suite, String> {
        if !ids.is_empty() {
            if let Some(missing) = ids.iter().find(|id| !self.cases.iter().any(|c| &c.id == *id)) {
                return Err(format!("suite {}: no case '{missing}'", self.name));
            }
            self.cases.retain(|c| ids.contains(&c.id));
        }
        if let Some(n) = limit {
            self.cases.truncate(n);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_suite_reads_with_its_files_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.yaml");
        std::fs::write(
            &p,
            "name: s\ncases:\n  - id: a\n    files: [x.csv]\n    question: How many?\n    expected: {kind: number, value: 3}\n  - id: b\n    files: [x.csv]\n    question: Which?\n    expected: {kind: map, values: {n: '2', m: 1.5}}\n",
        )
        .unwrap();
        let s = Suite::from_file(&p).unwrap();
        assert_eq!(s.cases[0].files, [dir.path().join("x.csv")]);
        assert_eq!(s.cases[0].expected, Expected::Number { value: 3.0, tolerance: 1e-6 });
        assert!(matches!(&s.cases[1].expected, Expected::Map { values, .. } if values.len() == 2));
        assert_eq!(s.clone().select(&["b".into()], None).unwrap().cases.len(), 1);
        assert!(s.select(&["z".into()], None).unwrap_err().contains("no case 'z'"));
        std::fs::write(&p, "name: s\ncases:\n  - id: a\n    files: [x.csv]\n    question: q\n    expected: {kind: number, value: 1}\n  - id: a\n    files: [x.csv]\n    question: q\n    expected: {kind: text, value: x}\n").unwrap();
        assert!(Suite::from_file(&p).unwrap_err().contains("appears twice"));
    }
}
