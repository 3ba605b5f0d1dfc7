//! The privacy-safe value check: the model names the spellings it expects in
//! a column, and learns which exist and how many rows each has — nothing
//! about any value it did not name. In `strict` it never sees how "Kano" or
//! "private" are written, so this saves it guessing with `LIKE` queries.

use quarry_types::sql::quoted;

use super::Run;
use crate::answer::Table;
use crate::Event;

use crate::tools::MAX_CHECKED as MAX_VALUES;

/// The longest candidate value looked for.
const MAX_LEN: usize = 200;

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Run<'_> {
    /// Check candidate values of `table.column`; the reply for the model.
    pub(super) async fn on_check(&mut self, table: &str, column: &str, values: &[String]) -> String {
        let Some(t) = self.entries.iter().find(|t| t.name == table) else {
            let names: Vec<&str> = self.entries.iter().map(|t| t.name.as_str()).collect();
            return format!("check_values: there is no table '{table}'; the tables are {}.", names.join(", "));
        };
        if !t.columns.iter().any(|c| c.name == column) {
            return format!("check_values: table {table} has no column '{column}'.");
        }
        let values: Vec<&str> =
            values.iter().map(|v| v.as_str()).filter(|v| v.len() <= MAX_LEN).take(MAX_VALUES).collect();
        if values.is_empty() {
            return "check_values needs one or more values (at most 50, each under 200 characters).".into();
        }
        let shown: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
        self.emit(Event::Plan { text: format!("Checking whether {table}.{column} holds {}", shown.join(", ")) });
        let exact = self.counts(table, column, &values, false).await;
        let folded = self.counts(table, column, &values, true).await;
        let (Some(exact), Some(folded)) = (exact, folded) else {
            return format!("check_values: the values of {table}.{column} could not be counted.");
        };
        let mut out = format!("check_values on {table}.{column} (only the values you named):");
        for v in values {
            let key = v.trim().to_lowercase();
            let line = match (exact.iter().find(|(x, _)| x == v), folded.iter().find(|(x, _)| *x == key)) {
                (Some((_, n)), _) => format!("'{v}': {n} rows"),
                (None, Some((_, n))) => format!(
                    "'{v}': no row with exactly this value; {n} rows match it ignoring case and spaces (filter with lower(trim({column})) = {})",
                    literal(&key)
                ),
                (None, None) => format!("'{v}': no row, not even ignoring case and spaces"),
            };
            out.push_str("\n- ");
            out.push_str(&line);
        }
        out
    }

    /// Rows per named value (or per folded value: trimmed, lower case).
    async fn counts(&mut self, table: &str, column: &str, values: &[&str], fold: bool) -> Option<Vec<(String, i64)>> {
        let col = format!("CAST({} AS VARCHAR)", quoted(column));
        let (expr, list): (String, Vec<String>) = if fold {
            (format!("lower(trim({col}))"), values.iter().map(|v| literal(&v.trim().to_lowercase())).collect())
        } else {
            (col, values.iter().map(|v| literal(v)).collect())
        };
        let sql = format!(
            "SELECT {expr} AS v, count(*) AS n FROM {} WHERE {expr} IN ({}) GROUP BY 1",
            quoted(table),
            list.join(", ")
        );
        let r = self.analyst.run_sql(&sql, &self.opts.limits).await.ok()?;
        let t = Table::from_result(&r);
        Some(t.rows.iter().filter_map(|r| Some((r.first()?.as_str()?.to_string(), r.get(1)?.as_i64()?))).collect())
    }
}
