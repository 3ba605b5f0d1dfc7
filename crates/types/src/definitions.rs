//! A workspace's definitions — a small semantic layer the team agrees on:
//! named metrics (SQL expressions over a table), terms and periods, column
//! descriptions, value synonyms and verified answers. The words only; how
//! they are stored, checked and put in the model's context belongs to
//! `quarry_agent::definitions`.

use serde::{Deserialize, Serialize};

/// The kinds of definition, named once for the CLI, the API and the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefinitionKind {
    Metric,
    Term,
    Column,
    Synonym,
    Verified,
}

impl DefinitionKind {
    pub const ALL: [DefinitionKind; 5] = [
        DefinitionKind::Metric,
        DefinitionKind::Term,
        DefinitionKind::Column,
        DefinitionKind::Synonym,
        DefinitionKind::Verified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Metric => "metric",
            DefinitionKind::Term => "term",
            DefinitionKind::Column => "column",
            DefinitionKind::Synonym => "synonym",
            DefinitionKind::Verified => "verified",
        }
    }

    /// What a definition of this kind is, for help text and the page.
    pub fn describe(self) -> &'static str {
        match self {
            DefinitionKind::Metric => "a named measure: a SQL expression over a table's columns",
            DefinitionKind::Term => "a word or period and what it means (\"Q2\" = April to June)",
            DefinitionKind::Column => "what a column holds",
            DefinitionKind::Synonym => "another word for a value of a column (\"KMC\" = \"Kano Municipal\")",
            DefinitionKind::Verified => "a question with the query a person checked as right",
        }
    }
}

impl std::str::FromStr for DefinitionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<DefinitionKind, String> {
        let s = s.trim().to_ascii_lowercase();
        DefinitionKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = DefinitionKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown kind of definition '{s}': use {}", names.join(", "))
        })
    }
}

/// `tpr = pct(sum(positive), sum(tested))` over `malaria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    /// One SQL expression over `table`'s columns (checked when saved).
    pub expr: String,
    pub table: String,
    #[serde(default)]
    pub description: String,
}

/// A word or a period and what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    pub name: String,
    pub meaning: String,
}

/// What a column holds, in the team's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnNote {
    pub table: String,
    pub column: String,
    pub description: String,
}

/// `word` means the value `value` of `table.column`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synonym {
    pub word: String,
    pub value: String,
    pub table: String,
    pub column: String,
}

/// A question and the query a person marked as answering it right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub question: String,
    pub sql: String,
}

/// Every definition of one workspace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub terms: Vec<Term>,
    #[serde(default)]
    pub columns: Vec<ColumnNote>,
    #[serde(default)]
    pub synonyms: Vec<Synonym>,
    #[serde(default)]
    pub verified: Vec<Verified>,
}

/// One definition of any kind, as the CLI and the API add it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Definition {
    Metric(Metric),
    Term(Term),
    Column(ColumnNote),
    Synonym(Synonym),
    Verified(Verified),
}

impl Definition {
    pub fn kind(&self) -> DefinitionKind {
        match self {
            Definition::Metric(_) => DefinitionKind::Metric,
            Definition::Term(_) => DefinitionKind::Term,
            Definition::Column(_) => DefinitionKind::Column,
            Definition::Synonym(_) => DefinitionKind::Synonym,
            Definition::Verified(_) => DefinitionKind::Verified,
        }
    }

    /// The key it is found and removed by: a metric's or term's name,
    /// `table.column`, a synonym's word, a verified question.
    pub fn key(&self) -> String {
        match self {
            Definition::Metric(m) => m.name.clone(),
            Definition::Term(t) => t.name.clone(),
            Definition::Column(c) => format!("{}.{}", c.table, c.column),
            Definition::Synonym(s) => s.word.clone(),
            Definition::Verified(v) => v.question.clone(),
        }
    }

    /// One line for people: `metric tpr = pct(…) on malaria`.
    pub fn line(&self) -> String {
        match self {
            Definition::Metric(m) => {
                let about = if m.description.is_empty() { String::new() } else { format!(" ({})", m.description) };
                format!("metric {} = {} on {}{about}", m.name, m.expr, m.table)
            }
            Definition::Term(t) => format!("term \"{}\" = {}", t.name, t.meaning),
            Definition::Column(c) => format!("column {}.{}: {}", c.table, c.column, c.description),
            Definition::Synonym(s) => format!("synonym \"{}\" = '{}' in {}.{}", s.word, s.value, s.table, s.column),
            Definition::Verified(v) => format!("verified answer to \"{}\"", v.question),
        }
    }
}

impl Definitions {
    /// Every definition, kind by kind, in the order they were added.
    pub fn all(&self) -> Vec<Definition> {
        let mut out: Vec<Definition> = self.metrics.iter().cloned().map(Definition::Metric).collect();
        out.extend(self.terms.iter().cloned().map(Definition::Term));
        out.extend(self.columns.iter().cloned().map(Definition::Column));
        out.extend(self.synonyms.iter().cloned().map(Definition::Synonym));
        out.extend(self.verified.iter().cloned().map(Definition::Verified));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }

    /// Add `d`, replacing the definition of the same kind and key.
    pub fn put(&mut self, d: Definition) {
        let (kind, key) = (d.kind(), d.key());
        self.remove(kind, &key);
        match d {
            Definition::Metric(m) => self.metrics.push(m),
            Definition::Term(t) => self.terms.push(t),
            Definition::Column(c) => self.columns.push(c),
            Definition::Synonym(s) => self.synonyms.push(s),
            Definition::Verified(v) => self.verified.push(v),
        }
    }

    /// Remove the definition of `kind` keyed `key` (case-insensitive); false when there was none.
    pub fn remove(&mut self, kind: DefinitionKind, key: &str) -> bool {
        let before = self.all().len();
        let keep = |d: Definition| !d.key().eq_ignore_ascii_case(key.trim());
        match kind {
            DefinitionKind::Metric => self.metrics.retain(|m| keep(Definition::Metric(m.clone()))),
            DefinitionKind::Term => self.terms.retain(|t| keep(Definition::Term(t.clone()))),
            DefinitionKind::Column => self.columns.retain(|c| keep(Definition::Column(c.clone()))),
            DefinitionKind::Synonym => self.synonyms.retain(|s| keep(Definition::Synonym(s.clone()))),
            DefinitionKind::Verified => self.verified.retain(|v| keep(Definition::Verified(v.clone()))),
        }
        self.all().len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_replaces_the_same_key_and_remove_finds_it_in_any_case() {
        let mut d = Definitions::default();
        let m = |expr: &str| {
            Definition::Metric(Metric {
                name: "tpr".into(),
                expr: expr.into(),
                table: "t".into(),
                description: "".into(),
            })
        };
        d.put(m("pct(sum(p), sum(t))"));
        d.put(m("100.0 * sum(p) / sum(t)"));
        assert_eq!(d.metrics.len(), 1);
        assert_eq!(d.metrics[0].expr, "100.0 * sum(p) / sum(t)");
        assert!(!d.remove(DefinitionKind::Term, "tpr"));
        assert!(d.remove(DefinitionKind::Metric, "TPR"));
        assert!(d.is_empty());
        assert_eq!("Synonym".parse::<DefinitionKind>(), Ok(DefinitionKind::Synonym));
        assert!("metrics".parse::<DefinitionKind>().unwrap_err().contains("metric, term"));
    }
}
