//! Saved Python: the answer's Python steps as run, parameters as variables
//! the kernel sets before the code runs ([`quarry_sandbox::python::params`]:
//! the literal in the code is replaced by the variable's name, the value
//! travels as data), run in a fresh kernel session of their own, the
//! earlier steps first.

use quarry_sandbox::python::{params, DataAccess, PyRun, PythonError, PythonKernels, RunRequest};
use quarry_types::answer::Column;
use quarry_types::sql::Param;
use quarry_types::{Answer, ColumnType, Table};
use serde_json::Value;

use super::{Kernels, Outcome, ParamSpec};
use crate::python::{table_of, EngineData};

/// Runs saved Python: the process's Python kernels, however it starts them
/// (the server has them warm; the CLI starts them on first use).
pub trait PythonRunner: Send + Sync {
    fn run(&self, session: &str, req: &RunRequest<'_>, data: &dyn DataAccess) -> Result<PyRun, PythonError>;
    /// Forget the session's kernel state.
    fn end(&self, session: &str);
}

impl PythonRunner for PythonKernels {
    fn run(&self, session: &str, req: &RunRequest<'_>, data: &dyn DataAccess) -> Result<PyRun, PythonError> {
        PythonKernels::run(self, session, req, data)
    }

    fn end(&self, session: &str) {
        PythonKernels::end(self, session)
    }
}

/// The Python steps of an answer that ran, in order, ending with its code.
pub(super) fn steps(answer: &Answer) -> Vec<String> {
    let mut out: Vec<String> =
        answer.steps.iter().filter(|s| s.ok && s.language == "python").map(|s| s.code.clone()).collect();
    match out.iter().rposition(|c| c == &answer.code) {
        Some(i) => out.truncate(i + 1),
        None => out.push(answer.code.clone()),
    }
    out
}

/// The literals the steps compare with a column, one per column.
pub(super) fn literals(steps: &[String]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for l in steps.iter().flat_map(|s| params::literals(s)) {
        if !out.iter().any(|(c, _)| c == &l.column) {
            out.push((l.column, l.value));
        }
    }
    out
}

/// Each step with the confirmed parameters' literals replaced by their
/// variables; a parameter whose literal no step holds is an error.
pub(super) fn bind(steps: &[String], chosen: &[ParamSpec]) -> Result<Vec<String>, String> {
    let mut out = steps.to_vec();
    for p in chosen {
        let one = [(p.column.clone(), p.default.clone(), p.name.clone())];
        let mut bound = false;
        for s in out.iter_mut() {
            params::usable_name(s, &p.name)?;
            if let Ok(b) = params::bind(s, &one) {
                *s = b;
                bound = true;
            }
        }
        if !bound {
            return Err(format!("the code compares no column '{}' with {}", p.column, p.default));
        }
    }
    Ok(out)
}

/// Run `steps` in a fresh session with `values` set as variables.
pub(super) fn run(
    name: &str,
    steps: &[String],
    tables: &[String],
    values: &[Param],
    k: Kernels<'_>,
) -> Result<Outcome, String> {
    let Some(py) = k.python else {
        return Err("this analysis is Python, and Python is not available here (`quarry setup-python`)".into());
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let session = format!("analysis-{name}-{nanos}");
    let data = EngineData::new(k.sql, k.limits);
    let vars: Vec<(String, Value)> = values.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
    let mut last = None;
    for (i, code) in steps.iter().enumerate() {
        let req = RunRequest { code, tables, params: &vars };
        let r = py.run(&session, &req, &data);
        match r {
            Ok(r) if r.ok => last = Some(r),
            Ok(r) => {
                py.end(&session);
                let e = r.error.map(|e| format!("{}: {}", e.kind, e.message)).unwrap_or_default();
                return Err(format!("step {} of {} failed: {e}", i + 1, steps.len()));
            }
            Err(e) => {
                py.end(&session);
                return Err(e.redacted());
            }
        }
    }
    py.end(&session);
    let r = last.ok_or("the analysis has no code")?;
    let table = r.tables.first().and_then(table_of).or_else(|| r.value.as_ref().map(value_table));
    if table.is_none() && r.stdout.trim().is_empty() && r.figures.is_empty() {
        return Err("the code returned no table, printed nothing and drew nothing".into());
    }
    Ok(Outcome { table, output: r.stdout, figures: r.figures })
}

/// The code's last value as a one-cell table.
fn value_table(v: &Value) -> Table {
    let cell = match v {
        Value::Object(o) if o.contains_key("repr") => o["repr"].clone(),
        other => other.clone(),
    };
    let dtype = match &cell {
        Value::Number(n) if n.is_i64() => Some(ColumnType::Integer),
        Value::Number(_) => Some(ColumnType::Float),
        Value::Bool(_) => Some(ColumnType::Boolean),
        Value::String(_) => Some(ColumnType::Text),
        _ => None,
    };
    Table { columns: vec![Column { name: "value".into(), dtype }], rows: vec![vec![cell]], truncated: false }
}

/// `text` with the identifier `old` (a table name) written as `new`.
pub(super) fn rename_word(text: &str, old: &str, new: &str) -> String {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(old) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + old.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(ident) || after.is_some_and(ident) {
            out.push_str(old);
        } else {
            out.push_str(new);
        }
        rest = &rest[i + old.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_renamed_as_whole_words() {
        let code = "a = dfs['report_07']\nb = sql('SELECT * FROM report_07 WHERE x')\nc = report_07_old";
        let r = rename_word(code, "report_07", "report_08");
        assert_eq!(r, "a = dfs['report_08']\nb = sql('SELECT * FROM report_08 WHERE x')\nc = report_07_old");
    }
}
