//! The run's own queries about the data, beside the model's: the previous
//! answer's query again (for follow-ups), sample rows for the context, and
//! the check that a filter value matches any row (an aggregate over a
//! misspelled filter returns one row of zeros, not an empty table).

use std::collections::HashMap;

use quarry_types::sql::quoted;

use super::Run;
use crate::answer::{self, Table};
use crate::{prompt, Event};

impl Run<'_> {
    /// The previous answer's query run again (on today's data), so a
    /// follow-up such as "as a chart" can be answered from its result.
    pub(super) async fn previous_result(&mut self, conversation: &crate::Conversation) -> Option<(String, Table)> {
        let sql = conversation.turns.last()?.sql.clone()?;
        let r = self.analyst.run_sql(&sql, &self.opts.limits).await.ok()?;
        Some((sql, Table::from_result(&r)))
    }

    /// A few rows per table, as text, for the contexts that show sample rows.
    /// (`&mut self` here and below: the run holds the sink, which is `Send`
    /// but not `Sync`, so no `&Run` may live across an await.)
    pub(super) async fn samples(&mut self) -> HashMap<String, (Vec<String>, Vec<Vec<String>>)> {
        let mut out = HashMap::new();
        for t in self.entries.iter().take(12) {
            let sql = format!("SELECT * FROM {} LIMIT 3", quoted(&t.name));
            if let Ok(r) = self.analyst.run_sql(&sql, &self.opts.limits).await {
                let table = Table::from_result(&r);
                let cols = table.columns.iter().map(|c| c.name.clone()).collect();
                let rows = table.rows.iter().map(|r| r.iter().map(answer::plain).collect()).collect();
                out.insert(t.name.clone(), (cols, rows));
            }
        }
        out
    }

    /// For each `column = 'value'` filter that matches no row: an event, a
    /// line for the model (with the closest values where the policy allows)
    /// and a note for the answer.
    pub(super) async fn check_filters(&mut self, sql: &str, text: &mut String) {
        for (column, value, closest) in self.empty_filters(sql).await {
            self.emit(Event::EmptyFilter { column: column.clone(), value: value.clone(), closest: closest.clone() });
            text.push('\n');
            text.push_str(&prompt::empty_filter(&column, &value, self.policy.filter_suggestions(&closest)));
            self.notes.push(if closest.is_empty() {
                format!("No row has {column} = '{value}'.")
            } else {
                format!(
                    "No row has {column} = '{value}'; the closest existing values are {}.",
                    closest.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ")
                )
            });
        }
    }

    /// For each `column = 'value'` filter whose value does not occur: the closest existing values.
    async fn empty_filters(&mut self, sql: &str) -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        let lower = sql.to_lowercase();
        for (column, value) in quarry_sql::filter_literals(sql).into_iter().take(6) {
            let Some((t, c)) = self
                .entries
                .iter()
                .filter(|t| lower.contains(&t.name.to_lowercase()))
                .find_map(|t| t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column)).map(|c| (t, c)))
            else {
                continue;
            };
            let q = format!(
                "SELECT CAST({c} AS VARCHAR) AS v FROM {t} WHERE {c} IS NOT NULL GROUP BY 1 LIMIT 20000",
                c = quoted(&c.name),
                t = quoted(&t.name)
            );
            let Ok(r) = self.analyst.run_sql(&q, &self.opts.limits).await else { continue };
            let values: Vec<String> = Table::from_result(&r).rows.into_iter().map(|r| answer::plain(&r[0])).collect();
            if values.iter().any(|v| v == &value) {
                continue;
            }
            out.push((c.name.clone(), value.clone(), closest_values(&value, values)));
        }
        out
    }
}

/// Up to three existing values closest to `value` (Jaro-Winkler above 0.75).
fn closest_values(value: &str, values: Vec<String>) -> Vec<String> {
    let target = value.to_lowercase();
    let mut scored: Vec<(f64, String)> = values
        .into_iter()
        .map(|v| (strsim::jaro_winkler(&target, &v.to_lowercase()), v))
        .filter(|(s, _)| *s > 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, v)| v).collect()
}
