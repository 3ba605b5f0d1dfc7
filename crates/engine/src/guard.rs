//! The first wall: what generated SQL may be, checked before DataFusion plans it.
//!
//! Layer 1 (here): parse with DataFusion's `sqlparser`; exactly one
//! statement; a read-only query (`SELECT`, `WITH`, `VALUES`, or `EXPLAIN` of
//! those). Layer 2 (in `session`): planning with `SQLOptions` that disallow
//! DDL, DML and statements, and `verify_plan`. Layer 3: the session has
//! nothing to reach beyond the catalog's tables (no object stores, no file
//! paths, no table functions that read files).

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
pub use quarry_sql::filter_literals;
pub use quarry_types::sql::{Refusal, Rule};

fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase()
}

/// True for a read-only query, or EXPLAIN of one.
fn read_only(s: &Statement) -> bool {
    match s {
        Statement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Query(_) => true,
            SqlStatement::Explain { statement, .. } => matches!(statement.as_ref(), SqlStatement::Query(_)),
            _ => false,
        },
        Statement::Explain(e) => read_only(&e.statement),
        _ => false,
    }
}

/// Check one piece of SQL with DataFusion's own parser (the one that will
/// run it). Returns the single read-only statement it holds.
pub fn check(sql: &str) -> Result<Statement, Refusal> {
    let mut stmts = DFParser::parse_sql(sql).map_err(|e| {
        let msg = e.to_string();
        Refusal { rule: Rule::Syntax, at: location(&msg), message: msg }
    })?;
    match stmts.len() {
        0 => {
            return Err(Refusal { rule: Rule::Empty, message: "there is no statement to run".into(), at: None });
        }
        1 => {}
        n => {
            return Err(Refusal {
                rule: Rule::StackedStatements,
                message: format!(
                    "{n} statements were given ({}); send exactly one read-only query",
                    stmts.iter().map(statement_kind).collect::<Vec<_>>().join(", ")
                ),
                at: None,
            })
        }
    }
    let stmt = stmts.pop_front().ok_or(Refusal {
        rule: Rule::Empty,
        message: "there is no statement to run".into(),
        at: None,
    })?;
    if !read_only(&stmt) {
        return Err(Refusal {
            rule: Rule::NotAQuery,
            message: format!(
                "{} is not allowed: only read-only queries (SELECT, WITH, VALUES, EXPLAIN) run here",
                statement_kind(&stmt)
            ),
            at: None,
        });
    }
    Ok(stmt)
}

/// sqlparser errors end with "at Line: L, Column: C".
fn location(msg: &str) -> Option<(u64, u64)> {
    let i = msg.rfind("Line: ")?;
    let rest = &msg[i + 6..];
    let (l, rest) = rest.split_once(", Column: ")?;
    let c: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((l.trim().parse().ok()?, c.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass() {
        for q in [
            "SELECT 1",
            "with t as (select 1 as x) select x from t",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "SELECT 1;",
        ] {
            assert!(check(q).is_ok(), "{q}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let cases = [
            ("SELECT 1; DROP TABLE t", Rule::StackedStatements),
            ("CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'", Rule::NotAQuery),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", Rule::NotAQuery),
            ("INSERT INTO t VALUES (1)", Rule::NotAQuery),
            ("SET datafusion.execution.batch_size = 1", Rule::NotAQuery),
            ("EXPLAIN DELETE FROM t", Rule::NotAQuery),
            ("", Rule::Empty),
            ("SELEC 1", Rule::Syntax),
        ];
        for (q, rule) in cases {
            let r = check(q).expect_err(q);
            assert_eq!(r.rule, rule, "{q}: {r}");
        }
    }
}
