//! What the analyst reads from SQL text: the literal filters a query holds,
//! parsed with `sqlparser` (the parser DataFusion uses, in its default
//! generic dialect), so the analyst needs no DataFusion to check a filter
//! value against the data.

use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions, BinaryOperator, Expr, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// `column = 'text'` and `column IN ('a', 'b')` comparisons in a query, as
/// (column, literal) pairs: the analyst checks these against the data when
/// a result comes back empty, to catch a misspelled filter value.
pub fn filter_literals(sql: &str) -> Vec<(String, String)> {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else { return Vec::new() };
    fn column(e: &Expr) -> Option<String> {
        match e {
            Expr::Identifier(i) => Some(i.value.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
            Expr::Nested(inner) => column(inner),
            Expr::Function(f) if ["lower", "upper", "trim"].contains(&f.name.to_string().to_lowercase().as_str()) => {
                match &f.args {
                    sqlparser::ast::FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                        sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => column(e),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        }
    }
    fn text(e: &Expr) -> Option<String> {
        match e {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            Expr::Nested(inner) => text(inner),
            _ => None,
        }
    }
    let mut out = Vec::new();
    for s in statements {
        {
            let _ = visit_expressions(&s, |e: &Expr| {
                match e {
                    Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
                        if let (Some(c), Some(t)) = (column(left), text(right)) {
                            out.push((c, t));
                        } else if let (Some(c), Some(t)) = (column(right), text(left)) {
                            out.push((c, t));
                        }
                    }
                    Expr::InList { expr, list, negated: false } => {
                        if let Some(c) = column(expr) {
                            out.extend(list.iter().filter_map(text).map(|t| (c.clone(), t)));
                        }
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::filter_literals;

    #[test]
    fn equality_and_in_filters_are_found() {
        let f = filter_literals(
            "SELECT * FROM t WHERE state = 'Kanoo' AND lower(t.lga) IN ('dala', 'fagge') AND n = 3 OR 'x' = \"Ward\"",
        );
        assert_eq!(
            f,
            vec![
                ("state".to_string(), "Kanoo".to_string()),
                ("lga".into(), "dala".into()),
                ("lga".into(), "fagge".into()),
                ("Ward".into(), "x".into())
            ]
        );
        assert!(filter_literals("not sql at all").is_empty());
    }
}
