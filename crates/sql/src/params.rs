//! Parameters of a saved query: the literals a query compares columns with
//! (`state = 'Kano'`, `year >= 2024`) proposed as parameters, and the query
//! rewritten with a named placeholder (`state = $state`) in their place, so
//! a value given later is bound as data by the engine, never spliced into
//! the text. Parsed with `sqlparser` (DataFusion's parser, generic dialect).

use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions, visit_expressions_mut, BinaryOperator, Expr, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// A literal a query compares a column with: a parameter it could take.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub column: String,
    /// A string or a number, as the query wrote it.
    pub value: serde_json::Value,
}

fn column(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column(inner),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<serde_json::Value> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(serde_json::Value::String(s.clone())),
            Value::Number(n, _) => n.parse::<i64>().map(serde_json::Value::from).ok().or_else(|| {
                n.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(serde_json::Value::Number)
            }),
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

fn comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// `column <op> literal` (either side) in `sql`, in order, once each.
pub fn literals(sql: &str) -> Vec<Literal> {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else { return Vec::new() };
    let mut out: Vec<Literal> = Vec::new();
    for s in &statements {
        let _ = visit_expressions(s, |e: &Expr| {
            if let Expr::BinaryOp { left, op, right } = e {
                if comparison(op) {
                    let found = match (column(left), literal(right), column(right), literal(left)) {
                        (Some(c), Some(v), _, _) | (_, _, Some(c), Some(v)) => Some(Literal { column: c, value: v }),
                        _ => None,
                    };
                    if let Some(l) = found.filter(|l| !out.contains(l)) {
                        out.push(l);
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    out
}

/// `sql` with each comparison of `column` against `value` made a comparison
/// against the placeholder `$name`, for every (column, value, name) given.
/// Errors when the query does not parse or a literal is not found.
pub fn bind(sql: &str, params: &[(String, serde_json::Value, String)]) -> Result<String, String> {
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| format!("the query does not parse: {e}"))?;
    let mut used = vec![false; params.len()];
    for s in &mut statements {
        let _ = visit_expressions_mut(s, |e: &mut Expr| {
            if let Expr::BinaryOp { left, op, right } = e {
                if comparison(op) {
                    for (k, (col, value, name)) in params.iter().enumerate() {
                        let placeholder = || Box::new(Expr::Value(Value::Placeholder(format!("${name}")).into()));
                        if column(left).as_ref() == Some(col) && literal(right).as_ref() == Some(value) {
                            *right = placeholder();
                            used[k] = true;
                        } else if column(right).as_ref() == Some(col) && literal(left).as_ref() == Some(value) {
                            *left = placeholder();
                            used[k] = true;
                        }
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    if let Some(k) = used.iter().position(|u| !u) {
        let (col, value, _) = &params[k];
        return Err(format!("the query compares no {col} with {value}"));
    }
    Ok(statements.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(";\n"))
}

/// `sql` reading table `to` wherever it read table `from` (its relations,
/// not text that happens to match), for an analysis following next
/// month's file.
pub fn rename_table(sql: &str, from: &str, to: &str) -> Result<String, String> {
    use sqlparser::ast::{visit_relations_mut, Ident, ObjectName, ObjectNamePart};
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| format!("the query does not parse: {e}"))?;
    let mut found = false;
    for s in &mut statements {
        let _ = visit_relations_mut(s, |name: &mut ObjectName| {
            if let [ObjectNamePart::Identifier(i)] = name.0.as_slice() {
                if i.value.eq_ignore_ascii_case(from) {
                    let simple = to.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    let ident = if simple { Ident::new(to) } else { Ident::with_quote('"', to) };
                    *name = ObjectName(vec![ObjectNamePart::Identifier(ident)]);
                    found = true;
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    if !found {
        return Err(format!("the query does not read {from}"));
    }
    Ok(statements.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(";\n"))
}

/// Whether `name` can be a placeholder's name (`$state`).
pub fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_become_named_placeholders() {
        let sql =
            "SELECT lga, sum(positive) FROM t WHERE state = 'Kano' AND 2024 <= year AND state = 'Kano' GROUP BY 1";
        assert_eq!(
            literals(sql),
            [
                Literal { column: "state".into(), value: json!("Kano") },
                Literal { column: "year".into(), value: json!(2024) }
            ]
        );
        let bound = bind(
            sql,
            &[("state".into(), json!("Kano"), "state".into()), ("year".into(), json!(2024), "from_year".into())],
        )
        .unwrap();
        assert_eq!(bound, "SELECT lga, sum(positive) FROM t WHERE state = $state AND $from_year <= year AND state = $state GROUP BY 1");
        assert!(bind(sql, &[("state".into(), json!("Lagos"), "state".into())])
            .unwrap_err()
            .contains("compares no state"));
        assert!(valid_name("from_year") && !valid_name("1x") && !valid_name("a-b"));
        let next =
            rename_table("SELECT t.x FROM t_07 AS t JOIN pop ON pop.s = t.s WHERE t.note = 't_07'", "t_07", "t_08")
                .unwrap();
        assert_eq!(next, "SELECT t.x FROM t_08 AS t JOIN pop ON pop.s = t.s WHERE t.note = 't_07'", "relations only");
    }
}
