//! Parameters of saved Python: the literals generated code compares with a
//! column (`df["state"] == "Kano"`, `df.year >= 2024`), found in its AST
//! (ruff's parser, as [`super::check`]), and the code with a chosen literal
//! replaced by a variable name. The kernel sets the variable from the run's
//! parameters ([`super::RunRequest::params`]) before the code runs, so a
//! value is data, never code.

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{CmpOp, Expr, Number, UnaryOp};
use ruff_text_size::{Ranged, TextRange};
use serde_json::Value;

/// A literal compared with a column.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub column: String,
    /// A string or a number.
    pub value: Value,
    range: TextRange,
}

/// Python's keywords: no parameter may be named one.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match", "case", "type",
];

/// Names the kernel itself puts in the namespace.
const KERNEL_NAMES: &[&str] = &["df", "dfs", "sql", "show", "pd", "np", "plt", "stats", "sm", "smf", "result"];

fn column_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Subscript(s) => match &*s.slice {
            Expr::StringLiteral(l) => Some(l.value.to_str().to_string()),
            _ => None,
        },
        Expr::Attribute(a) if matches!(&*a.value, Expr::Name(_)) => Some(a.attr.as_str().to_string()),
        _ => None,
    }
}

fn value_of(e: &Expr) -> Option<Value> {
    match e {
        Expr::StringLiteral(l) => Some(Value::String(l.value.to_str().to_string())),
        Expr::NumberLiteral(n) => match &n.value {
            Number::Int(i) => i.as_i64().map(Value::from),
            Number::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
            Number::Complex { .. } => None,
        },
        Expr::UnaryOp(u) if u.op == UnaryOp::USub => match value_of(&u.operand)? {
            Value::Number(n) if n.is_i64() => n.as_i64().map(|i| Value::from(-i)),
            Value::Number(n) => n.as_f64().and_then(|f| serde_json::Number::from_f64(-f)).map(Value::Number),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Default)]
struct Finder {
    found: Vec<Literal>,
    names: Vec<String>,
}

impl<'a> Visitor<'a> for Finder {
    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Compare(c)
                if c.ops.len() == 1 && !matches!(c.ops[0], CmpOp::In | CmpOp::NotIn | CmpOp::Is | CmpOp::IsNot) =>
            {
                let (left, right) = (&*c.left, &c.comparators[0]);
                let pair = match (column_of(left), value_of(right)) {
                    (Some(col), Some(v)) => Some((col, v, right.range())),
                    _ => column_of(right).zip(value_of(left)).map(|(col, v)| (col, v, left.range())),
                };
                if let Some((column, value, range)) = pair {
                    self.found.push(Literal { column, value, range });
                }
            }
            Expr::Name(n) => self.names.push(n.id.as_str().to_string()),
            _ => {}
        }
        visitor::walk_expr(self, expr);
    }
}

fn parse(code: &str) -> Result<Finder, String> {
    let parsed = ruff_python_parser::parse_module(code).map_err(|e| format!("the code does not parse: {}", e.error))?;
    let mut f = Finder::default();
    f.visit_body(parsed.suite());
    Ok(f)
}

/// The literals `code` compares with a column, in source order (none when
/// it does not parse).
pub fn literals(code: &str) -> Vec<Literal> {
    parse(code).map(|f| f.found).unwrap_or_default()
}

/// Whether `name` may name a variable in `code`: an identifier that is no
/// keyword, no name the kernel defines, and no name the code already uses.
pub fn usable_name(code: &str, name: &str) -> Result<(), String> {
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident || KEYWORDS.contains(&name) || KERNEL_NAMES.contains(&name) {
        return Err(format!("'{name}' cannot name a Python variable here: choose another name"));
    }
    if parse(code)?.names.iter().any(|n| n == name) {
        return Err(format!("the code already uses the name '{name}': choose another parameter name"));
    }
    Ok(())
}

/// `code` with each literal compared with `column` and equal to `value`
/// replaced by the variable `name` (for each `(column, value, name)`); an
/// error when one of them matches nothing or its name is not usable.
pub fn bind(code: &str, binds: &[(String, Value, String)]) -> Result<String, String> {
    let found = literals(code);
    let mut edits: Vec<(TextRange, &str)> = Vec::new();
    for (column, value, name) in binds {
        usable_name(code, name)?;
        let before = edits.len();
        edits.extend(
            found.iter().filter(|l| &l.column == column && &l.value == value).map(|l| (l.range, name.as_str())),
        );
        if edits.len() == before {
            return Err(format!("the code compares no column '{column}' with {value}"));
        }
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start()));
    let mut out = code.to_string();
    for (r, name) in edits {
        out.replace_range(usize::from(r.start())..usize::from(r.end()), name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_compared_with_columns_become_variables() {
        let code = "k = df[df['state'] == 'Kano']\nr = k[k.year >= 2024]\nr[-1.5 < r[\"x\"]]\nn = len(k) + 3\n";
        let found: Vec<(String, Value)> = literals(code).into_iter().map(|l| (l.column, l.value)).collect();
        assert_eq!(found, [("state".into(), json!("Kano")), ("year".into(), json!(2024)), ("x".into(), json!(-1.5))]);
        let bound = bind(code, &[("state".into(), json!("Kano"), "state".into())]).unwrap();
        assert!(bound.starts_with("k = df[df['state'] == state]\n"), "{bound}");
        // The value is never written into the code.
        assert!(!bound.contains("Kano"));
        assert!(bind(code, &[("state".into(), json!("Lagos"), "s".into())]).unwrap_err().contains("no column 'state'"));
        assert!(bind(code, &[("state".into(), json!("Kano"), "k".into())]).unwrap_err().contains("already uses"));
        assert!(usable_name(code, "df").is_err() && usable_name(code, "class").is_err());
    }
}
