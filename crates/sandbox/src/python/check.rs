//! The first wall: an AST check of generated Python, in Rust, before the
//! code reaches a worker. It gives the model fast, explainable refusals; the
//! OS walls ([`crate::jail`]) carry the weight when something gets past it.
//!
//! Rules: imports only from [`ALLOWED_IMPORTS`]; no builtins that reach the
//! interpreter's machinery ([`BLOCKED_NAMES`]); no dunder attributes or names
//! (`__subclasses__`, `__globals__`, `__builtins__`, …) nor frame/code
//! internals ([`BLOCKED_ATTRS`]); no file, pickle or process readers and
//! writers on allowed modules ([`BLOCKED_CALLS`]); no strings that spell a
//! dunder (format-string escapes); identifiers in ASCII (NFKC tricks).

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::{Ranged, TextSize};
use serde::{Deserialize, Serialize};

/// Top-level modules generated code may import.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "sklearn",
    "matplotlib",
    "math",
    "statistics",
    "datetime",
    "re",
    "json",
    "collections",
    "itertools",
    "functools",
    "operator",
    "string",
    "decimal",
    "fractions",
    "random",
    "textwrap",
    "calendar",
    "typing",
    "dataclasses",
    "enum",
    "heapq",
    "bisect",
    "copy",
    "warnings",
    "difflib",
];

/// Builtins that reach the interpreter, the file system or other processes.
pub const BLOCKED_NAMES: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "open",
    "__import__",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "help",
    "exit",
    "quit",
    "memoryview",
];

/// Attributes that expose frames, code objects and module internals.
pub const BLOCKED_ATTRS: &[&str] = &[
    "f_globals",
    "f_locals",
    "f_back",
    "f_builtins",
    "f_code",
    "gi_frame",
    "gi_code",
    "cr_frame",
    "cr_code",
    "ag_frame",
    "ag_code",
    "tb_frame",
    "tb_next",
    "co_code",
    "func_globals",
    "mro",
    "ctypes",
    "ctypeslib",
    "os",
    "sys",
    "subprocess",
    "builtins",
    "system",
    "popen",
];

/// Method names that read or write files, unpickle, or evaluate strings as
/// code. The tables are already loaded (`df`, `dfs[...]`, `sql()`).
pub const BLOCKED_CALLS: &[&str] = &[
    "read_csv",
    "read_table",
    "read_fwf",
    "read_excel",
    "read_json",
    "read_html",
    "read_xml",
    "read_parquet",
    "read_feather",
    "read_orc",
    "read_sas",
    "read_spss",
    "read_stata",
    "read_hdf",
    "read_sql",
    "read_sql_query",
    "read_sql_table",
    "read_clipboard",
    "read_pickle",
    "to_pickle",
    "to_csv",
    "to_excel",
    "to_parquet",
    "to_feather",
    "to_hdf",
    "to_sql",
    "to_stata",
    "to_json",
    "to_html",
    "to_clipboard",
    "savefig",
    "load",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "tofile",
    "save",
    "savez",
    "savetxt",
    "memmap",
    "eval",
];

/// Which rule refused the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Syntax,
    Import,
    BlockedName,
    Dunder,
    BlockedAttribute,
    FileOrCodeCall,
    DunderString,
    NonAsciiIdentifier,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Syntax,
        Rule::Import,
        Rule::BlockedName,
        Rule::Dunder,
        Rule::BlockedAttribute,
        Rule::FileOrCodeCall,
        Rule::DunderString,
        Rule::NonAsciiIdentifier,
    ];

    /// The rule's stable name, as serialised: what users and the model read.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::Import => "import",
            Rule::BlockedName => "blocked_name",
            Rule::Dunder => "dunder",
            Rule::BlockedAttribute => "blocked_attribute",
            Rule::FileOrCodeCall => "file_or_code_call",
            Rule::DunderString => "dunder_string",
            Rule::NonAsciiIdentifier => "non_ascii_identifier",
        }
    }
}

/// One refusal: where, which rule, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub rule: Rule,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Check `code`; `Err` holds every refusal (at most 10), in source order.
pub fn check(code: &str) -> Result<(), Vec<Refusal>> {
    let parsed = match ruff_python_parser::parse_module(code) {
        Ok(p) => p,
        Err(e) => {
            return Err(vec![Refusal {
                rule: Rule::Syntax,
                line: line_of(code, e.location.start()),
                message: format!("syntax error: {}", e.error),
            }])
        }
    };
    let mut c = Checker { code, refusals: Vec::new() };
    c.visit_body(parsed.suite());
    if c.refusals.is_empty() {
        Ok(())
    } else {
        c.refusals.sort_by_key(|r| r.line);
        c.refusals.truncate(10);
        Err(c.refusals)
    }
}

fn line_of(code: &str, at: TextSize) -> u32 {
    let at = (u32::from(at) as usize).min(code.len());
    code.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() as u32 + 1
}

fn is_dunder(s: &str) -> bool {
    s.len() > 4 && s.starts_with("__") && s.ends_with("__")
}

/// A string literal that spells a dunder (`"{0.__globals__}"`, `"__builtins__"`).
fn spells_dunder(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s[i..].find("__") {
        let start = i + off + 2;
        let mut j = start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            j += 1;
        }
        let word = &s[start..j];
        if word.len() > 2 && word.ends_with("__") && word[..word.len() - 2].bytes().any(|c| c.is_ascii_alphabetic()) {
            return true;
        }
        i = start;
        if i >= s.len() {
            break;
        }
    }
    false
}

struct Checker<'s> {
    code: &'s str,
    refusals: Vec<Refusal>,
}

impl Checker<'_> {
    fn refuse(&mut self, at: TextSize, rule: Rule, message: String) {
        let line = line_of(self.code, at);
        if !self.refusals.iter().any(|r| r.line == line && r.rule == rule) {
            self.refusals.push(Refusal { rule, line, message });
        }
    }

    fn identifier(&mut self, at: TextSize, name: &str) {
        if !name.is_ascii() {
            self.refuse(
                at,
                Rule::NonAsciiIdentifier,
                format!("the name `{name}` is not plain ASCII; use ASCII letters for names"),
            );
        } else if is_dunder(name) && name != "__init__" && name != "__name__" {
            self.refuse(
                at,
                Rule::Dunder,
                format!("`{name}` reaches Python's internals, which analysis code must not touch; work with the data directly"),
            );
        }
    }

    fn import(&mut self, at: TextSize, module: &str) {
        let top = module.split('.').next().unwrap_or(module);
        if !ALLOWED_IMPORTS.contains(&top) {
            self.refuse(
                at,
                Rule::Import,
                format!(
                    "`import {module}` is not allowed; analysis code may import {} (pd, np, plt, scipy.stats as stats, sm and smf are already imported)",
                    ALLOWED_IMPORTS.join(", ")
                ),
            );
        }
    }
}

impl<'a> Visitor<'a> for Checker<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(s) => {
                for a in &s.names {
                    self.import(a.range().start(), a.name.as_str());
                }
            }
            Stmt::ImportFrom(s) => {
                let module = s.module.as_ref().map(|m| m.as_str()).unwrap_or("");
                if s.level > 0 {
                    self.refuse(stmt.range().start(), Rule::Import, "relative imports are not allowed".into());
                } else {
                    self.import(stmt.range().start(), module);
                }
                for a in &s.names {
                    self.identifier(a.range().start(), a.name.as_str());
                }
            }
            Stmt::FunctionDef(f) => self.identifier(f.name.range().start(), f.name.as_str()),
            Stmt::ClassDef(c) => self.identifier(c.name.range().start(), c.name.as_str()),
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        let at = expr.range().start();
        match expr {
            Expr::Name(n) => {
                let id = n.id.as_str();
                self.identifier(at, id);
                if BLOCKED_NAMES.contains(&id) {
                    self.refuse(
                        at,
                        Rule::BlockedName,
                        format!("`{id}` is not available to analysis code; use the DataFrames (df, dfs[...]) and sql() directly"),
                    );
                }
            }
            Expr::Attribute(a) => {
                let attr = a.attr.as_str();
                self.identifier(a.attr.range().start(), attr);
                if BLOCKED_ATTRS.contains(&attr) {
                    self.refuse(
                        at,
                        Rule::BlockedAttribute,
                        format!("`.{attr}` reaches the operating system or interpreter internals; analysis code must not use it"),
                    );
                }
            }
            Expr::Call(c) => {
                if let Expr::Attribute(a) = &*c.func {
                    let name = a.attr.as_str();
                    if BLOCKED_CALLS.contains(&name) {
                        let why = if name.starts_with("read_") || name.starts_with("load") || name == "fromfile" {
                            "the tables are already loaded: use df (one table), dfs[\"name\"] or sql(\"SELECT …\") instead of reading files"
                        } else if name == "eval" {
                            "string evaluation is not allowed; write the expression as code"
                        } else {
                            "results go back to Quarry by returning them (a DataFrame as the last line, show(df), or a figure), not by writing files"
                        };
                        self.refuse(at, Rule::FileOrCodeCall, format!("`.{name}()` is not allowed: {why}"));
                    }
                }
                if let Expr::Name(n) = &*c.func {
                    if n.id.as_str() == "type" && c.arguments.args.len() == 3 {
                        self.refuse(
                            at,
                            Rule::BlockedName,
                            "`type()` with three arguments builds classes dynamically; define a class instead".into(),
                        );
                    }
                }
                for k in c.arguments.keywords.iter() {
                    if let Some(arg) = &k.arg {
                        self.identifier(arg.range().start(), arg.as_str());
                    }
                }
            }
            Expr::StringLiteral(s) if spells_dunder(s.value.to_str()) => {
                self.refuse(
                    at,
                    Rule::DunderString,
                    "a string that names a dunder attribute (`__…__`) is not allowed in analysis code".into(),
                );
            }
            _ => {}
        }
        visitor::walk_expr(self, expr);
    }

    fn visit_parameter(&mut self, p: &'a ruff_python_ast::Parameter) {
        self.identifier(p.name.range().start(), p.name.as_str());
        visitor::walk_parameter(self, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_their_serialised_names() {
        for r in Rule::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    fn rules(code: &str) -> Vec<Rule> {
        check(code).err().unwrap_or_default().into_iter().map(|r| r.rule).collect()
    }

    #[test]
    fn ordinary_analysis_passes() {
        let code = r#"
import pandas as pd
from scipy import stats
import matplotlib.pyplot as plt
g = df.groupby("state")["confirmed"].sum().sort_values(ascending=False)
t, p = stats.ttest_ind(df["a"], df["b"])
fig, ax = plt.subplots()
g.plot.bar(ax=ax)
class Model:
    def __init__(self, k):
        self.k = k
print(f"t={t:.3f} p={p:.4f}")
g.head(10)
"#;
        assert_eq!(check(code), Ok(()));
    }

    #[test]
    fn each_rule_refuses_with_a_line() {
        assert_eq!(rules("import os\nos.system('id')"), vec![Rule::Import, Rule::BlockedAttribute]);
        assert_eq!(rules("x = 1\n().__class__.__bases__[0].__subclasses__()"), vec![Rule::Dunder]);
        assert_eq!(rules("getattr(pd, 'read_csv')"), vec![Rule::BlockedName]);
        assert_eq!(rules("pd.read_csv('/etc/passwd')"), vec![Rule::FileOrCodeCall]);
        assert_eq!(rules("'{0.__globals__}'.format(f)"), vec![Rule::DunderString]);
        // The parser applies Python's NFKC normalisation: fullwidth `ｅｖａｌ` is `eval`.
        assert_eq!(rules("ｅｖａｌ('1')"), vec![Rule::BlockedName]);
        assert_eq!(rules("переменная = 1"), vec![Rule::NonAsciiIdentifier]);
        assert_eq!(rules("pd.io.common.os.popen('id')"), vec![Rule::BlockedAttribute]);
        assert_eq!(rules("def f(:\n"), vec![Rule::Syntax]);
        assert_eq!(rules("from . import x"), vec![Rule::Import]);
        let r = check("a = 1\nb = 2\nimport socket").unwrap_err();
        assert_eq!(r[0].line, 3);
        assert!(r[0].message.contains("import socket"), "{}", r[0].message);
    }

    #[test]
    fn dunder_strings() {
        assert!(spells_dunder("__builtins__"));
        assert!(spells_dunder("{0.__init__.__globals__}"));
        assert!(!spells_dunder("total__cases"));
        assert!(!spells_dunder("a____b"));
    }
}
