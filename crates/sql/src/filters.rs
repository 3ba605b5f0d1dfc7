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

/// Whether `text` is exactly one SQL expression (a metric's definition):
/// nothing before or after it, no statement, no subquery — so a definition
/// cannot smuggle a second clause into the queries it is used in.
pub fn one_expression(text: &str) -> Result<(), String> {
    use sqlparser::tokenizer::Token;
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).try_with_sql(text).map_err(|e| format!("not an expression: {e}"))?;
    let expr = parser.parse_expr().map_err(|e| format!("not an expression: {e}"))?;
    let rest = parser.peek_token();
    if rest.token != Token::EOF {
        return Err(format!("one expression only: '{}' follows it", rest.token));
    }
    let mut subquery = false;
    let _ = visit_expressions(&expr, |e: &Expr| {
        subquery |= matches!(e, Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. });
        ControlFlow::<()>::Continue(())
    });
    if subquery {
        return Err("a metric is an expression over its table's columns, without subqueries".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{filter_literals, one_expression};

    #[test]
    fn one_expression_takes_expressions_only() {
        assert!(one_expression("pct(sum(positive), sum(tested))").is_ok());
        assert!(one_expression("100.0 * sum(\"Positive\") / nullif(sum(tested), 0)").is_ok());
        assert!(one_expression("sum(x) FROM t; DROP TABLE t").unwrap_err().contains("follows"));
        assert!(one_expression("(SELECT max(x) FROM other)").unwrap_err().contains("subquer"));
        assert!(one_expression("").is_err());
    }

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
