//! A workspace's definitions as the analyst uses them: stored beside the
//! catalog (`<data>/definitions.json`, written whole to a temporary file
//! and renamed, so a crash leaves the old file or the new one), checked on
//! the workspace's SQL kernel before they are saved ([`check`]), chosen for
//! a question by what it mentions ([`Relevant::for_question`]), written into
//! the prompt as their own block, and named in the answers that used them
//! ([`Relevant::used`]).
//!
//! Definitions are the team's words, not the files' cells: they reach the
//! model as written, in every privacy mode (a synonym's value is one a
//! person typed). Nothing here reads a value from the data into them.

use std::path::{Path, PathBuf};

use quarry_types::definitions::{Definition, Definitions, Verified};
use quarry_types::sql::quoted;
use quarry_types::{Limits, SqlKernel, Table};

use crate::quote::data_str;
use crate::words::{mentions, words};

/// Where a workspace's definitions live.
pub fn path(data: &Path) -> PathBuf {
    data.join("definitions.json")
}

/// The workspace's definitions (none when the file does not exist yet).
pub fn load(data: &Path) -> Result<Definitions, String> {
    let p = path(data);
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a definitions file ({e}); fix it or remove it to start again", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Definitions::default()),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Write the definitions whole (see [`crate::files::write_atomic`]).
pub fn save(data: &Path, defs: &Definitions) -> Result<(), String> {
    let text = serde_json::to_string_pretty(defs).map_err(|e| e.to_string())?;
    crate::files::write_atomic(&path(data), text.as_bytes())
}

/// Check a definition against the workspace's tables before it is saved:
/// a metric is one expression (no second clause, no subquery) that plans
/// over its table; a column note and a synonym name a column that exists,
/// and a synonym's value is found in it; a verified query is one read-only
/// query that plans. Every query here goes through the kernel's guard.
pub fn check(d: &Definition, kernel: &dyn SqlKernel, limits: &Limits) -> Result<(), String> {
    let run = |sql: String| kernel.query(&sql, limits).map_err(|e| e.to_string());
    let nonempty = |what: &str, s: &str| {
        if s.trim().is_empty() {
            Err(format!("the {what} is empty"))
        } else {
            Ok(())
        }
    };
    match d {
        Definition::Metric(m) => {
            if !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || m.name.is_empty()
                || m.name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("metric name '{}': use letters, digits and _ (e.g. tpr_pct)", m.name));
            }
            quarry_sql::one_expression(&m.expr).map_err(|e| format!("metric {}: {e}", m.name))?;
            run(format!("SELECT {} AS {} FROM {} LIMIT 0", m.expr, quoted(&m.name), quoted(&m.table)))
                .map_err(|e| format!("metric {}: {e}", m.name))?;
        }
        Definition::Term(t) => {
            nonempty("term", &t.name)?;
            nonempty("meaning", &t.meaning)?;
        }
        Definition::Column(c) => {
            nonempty("description", &c.description)?;
            run(format!("SELECT {} FROM {} LIMIT 0", quoted(&c.column), quoted(&c.table)))?;
        }
        Definition::Synonym(s) => {
            nonempty("word", &s.word)?;
            let sql = format!(
                "SELECT count(*) AS n FROM {} WHERE CAST({} AS VARCHAR) = '{}'",
                quoted(&s.table),
                quoted(&s.column),
                s.value.replace('\'', "''")
            );
            let r = run(sql)?;
            let n = Table::from_result(&r).rows.first().and_then(|row| row.first()?.as_i64()).unwrap_or(0);
            if n == 0 {
                return Err(format!(
                    "synonym {}: no row of {}.{} holds '{}' (values are matched exactly)",
                    s.word, s.table, s.column, s.value
                ));
            }
        }
        Definition::Verified(v) => {
            nonempty("question", &v.question)?;
            let sql = v.sql.trim().trim_end_matches(';');
            run(format!("SELECT * FROM ({sql}) AS verified LIMIT 0"))?;
        }
    }
    Ok(())
}

/// Share of the verified question's words the question has too.
fn overlap(question: &[String], other: &str) -> f64 {
    let theirs = words(other);
    if theirs.is_empty() {
        return 0.0;
    }
    theirs.iter().filter(|w| question.contains(w)).count() as f64 / theirs.len() as f64
}

/// Verified answers shown as examples: at most this many, this similar.
const EXAMPLES: usize = 2;
const EXAMPLE_OVERLAP: f64 = 0.6;

/// The definitions that matter for one question over some tables.
#[derive(Debug, Clone, Default)]
pub struct Relevant {
    pub items: Vec<Definition>,
}

impl Relevant {
    /// Metrics whose name or description the question mentions, terms and
    /// synonyms it uses, descriptions of the tables' columns, and the
    /// verified answers to the most similar questions — over `tables` only.
    pub fn for_question(defs: &Definitions, question: &str, tables: &[String]) -> Relevant {
        let on = |t: &str| tables.iter().any(|n| n.eq_ignore_ascii_case(t));
        let qwords = words(question);
        let mut items = Vec::new();
        for m in defs.metrics.iter().filter(|m| on(&m.table)) {
            let about = format!("{} {}", m.name.replace('_', " "), m.description);
            if mentions(question, &m.name) || words(&about).iter().any(|w| qwords.contains(w)) {
                items.push(Definition::Metric(m.clone()));
            }
        }
        items.extend(defs.terms.iter().filter(|t| mentions(question, &t.name)).cloned().map(Definition::Term));
        items.extend(defs.columns.iter().filter(|c| on(&c.table)).cloned().map(Definition::Column));
        items.extend(
            defs.synonyms
                .iter()
                .filter(|s| on(&s.table) && mentions(question, &s.word))
                .cloned()
                .map(Definition::Synonym),
        );
        let mut similar: Vec<(f64, &Verified)> = defs
            .verified
            .iter()
            .map(|v| (overlap(&qwords, &v.question), v))
            .filter(|(o, _)| *o >= EXAMPLE_OVERLAP)
            .collect();
        similar.sort_by(|a, b| b.0.total_cmp(&a.0));
        items.extend(similar.into_iter().take(EXAMPLES).map(|(_, v)| Definition::Verified(v.clone())));
        Relevant { items }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The block the model reads (empty when nothing is relevant).
    pub fn prompt_text(&self) -> String {
        let mut s = String::new();
        for d in &self.items {
            let line = match d {
                Definition::Metric(m) => format!(
                    "- metric {}: {} over table {}{}",
                    data_str(&m.name, 60),
                    data_str(&m.expr, 400),
                    data_str(&m.table, 120),
                    if m.description.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", data_str(&m.description, 200))
                    }
                ),
                Definition::Term(t) => {
                    format!("- term \"{}\" means: {}", data_str(&t.name, 60), data_str(&t.meaning, 300))
                }
                Definition::Column(c) => format!(
                    "- column {}.{}: {}",
                    data_str(&c.table, 120),
                    data_str(&c.column, 120),
                    data_str(&c.description, 300)
                ),
                Definition::Synonym(s) => format!(
                    "- \"{}\" means the value '{}' of {}.{}",
                    data_str(&s.word, 60),
                    data_str(&s.value, 120),
                    data_str(&s.table, 120),
                    data_str(&s.column, 120)
                ),
                Definition::Verified(v) => format!(
                    "- a verified answer to \"{}\":\n```sql\n{}\n```",
                    data_str(&v.question, 300),
                    v.sql.replace("</definitions", "‹/definitions").trim()
                ),
            };
            s.push_str(&line);
            s.push('\n');
        }
        s
    }

    /// The definitions the code used, as lines for people: a metric whose
    /// expression it holds (spaces and case aside) or whose name it gives a
    /// column, a synonym whose value it quotes, a term the question used, a
    /// verified query it ran as it is.
    pub fn used(&self, code: &str) -> Vec<String> {
        let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
        let code_sq = squash(code);
        let code_lower = code.to_lowercase();
        let alias = |name: &str| {
            let n = name.to_lowercase();
            [format!(" as {n}"), format!(" as \"{n}\"")].iter().any(|a| code_lower.contains(a))
        };
        self.items
            .iter()
            .filter(|d| match d {
                Definition::Metric(m) => code_sq.contains(&squash(&m.expr)) || alias(&m.name),
                Definition::Term(_) => true,
                Definition::Column(_) => false,
                Definition::Synonym(s) => code.contains(&format!("'{}'", s.value.replace('\'', "''"))),
                Definition::Verified(v) => {
                    squash(v.sql.trim_end_matches(';')) == squash(code.trim().trim_end_matches(';'))
                }
            })
            .map(Definition::line)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_types::definitions::{ColumnNote, Metric, Synonym, Term};

    fn defs() -> Definitions {
        let mut d = Definitions::default();
        d.put(Definition::Metric(Metric {
            name: "tpr".into(),
            expr: "pct(sum(positive), sum(tested))".into(),
            table: "malaria".into(),
            description: "test positivity rate over all age groups".into(),
        }));
        d.put(Definition::Metric(Metric {
            name: "stock_days".into(),
            expr: "sum(stock) / avg(use)".into(),
            table: "stock".into(),
            description: "".into(),
        }));
        d.put(Definition::Term(Term { name: "Q2".into(), meaning: "April to June".into() }));
        d.put(Definition::Column(ColumnNote {
            table: "malaria".into(),
            column: "tested".into(),
            description: "RDT and microscopy".into(),
        }));
        d.put(Definition::Synonym(Synonym {
            word: "KMC".into(),
            value: "Kano Municipal".into(),
            table: "malaria".into(),
            column: "lga".into(),
        }));
        d.put(Definition::Verified(Verified {
            question: "positivity rate by state".into(),
            sql: "SELECT state, pct(sum(positive), sum(tested)) AS tpr FROM malaria GROUP BY state".into(),
        }));
        d
    }

    #[test]
    fn what_the_question_mentions_over_its_tables_is_relevant() {
        let tables = vec!["malaria".to_string()];
        let r = Relevant::for_question(&defs(), "What was the positivity rate by state in Q2 in KMC?", &tables);
        let kinds: Vec<String> = r.items.iter().map(Definition::key).collect();
        assert_eq!(kinds, ["tpr", "Q2", "malaria.tested", "KMC", "positivity rate by state"]);
        let r = Relevant::for_question(&defs(), "How many rows are there?", &tables);
        assert_eq!(r.items.iter().map(Definition::key).collect::<Vec<_>>(), ["malaria.tested"]);
        assert!(Relevant::for_question(&defs(), "stock days", &["malaria".into()]).items.len() == 1);
        assert!(!mentions("Q20 of 2024", "Q2"));
    }

    #[test]
    fn an_answer_names_the_definitions_its_code_used() {
        let tables = vec!["malaria".to_string()];
        let r = Relevant::for_question(&defs(), "positivity rate in KMC", &tables);
        let used = r.used("SELECT PCT(SUM(positive),SUM(tested)) AS rate FROM malaria WHERE lga = 'Kano Municipal'");
        assert_eq!(
            used,
            [
                "metric tpr = pct(sum(positive), sum(tested)) on malaria (test positivity rate over all age groups)",
                "synonym \"KMC\" = 'Kano Municipal' in malaria.lga"
            ]
        );
        assert!(r.used("SELECT count(*) FROM malaria").is_empty());
        assert_eq!(r.used("SELECT 100.0 * sum(positive) / sum(tested) AS tpr FROM malaria").len(), 1);
    }

    #[test]
    fn saved_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        save(dir.path(), &defs()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), defs());
        std::fs::write(path(dir.path()), "{ not json").unwrap();
        assert!(load(dir.path()).unwrap_err().contains("not a definitions file"));
    }
}
