//! `quarry define`: the workspace's definitions from the command line —
//! each checked on the workspace's tables (in a SQL worker) before it is
//! saved, listed, removed.

use std::path::Path;

use quarry_agent::definitions;
use quarry_sandbox::Limits;
use quarry_types::definitions::{ColumnNote, Definition, Metric, Synonym, Term, Verified};

use crate::args::DefineCmd;
use crate::{fail, printable};

/// `TABLE.COLUMN` split at its last dot.
fn table_column(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once('.') {
        Some((t, c)) if !t.is_empty() && !c.is_empty() => Ok((t.to_string(), c.to_string())),
        _ => Err(format!("'{s}': name the column as TABLE.COLUMN")),
    }
}

fn definition(cmd: DefineCmd) -> Result<Option<Definition>, String> {
    Ok(Some(match cmd {
        DefineCmd::Metric { name, expr, table, description } => {
            Definition::Metric(Metric { name, expr, table, description })
        }
        DefineCmd::Term { name, meaning } => Definition::Term(Term { name, meaning }),
        DefineCmd::Column { column, description } => {
            let (table, column) = table_column(&column)?;
            Definition::Column(ColumnNote { table, column, description })
        }
        DefineCmd::Synonym { word, value, column } => {
            let (table, column) = table_column(&column)?;
            Definition::Synonym(Synonym { word, value, table, column })
        }
        DefineCmd::Verified { question, sql } => Definition::Verified(Verified { question, sql }),
        DefineCmd::List { .. } | DefineCmd::Remove { .. } => return Ok(None),
    }))
}

pub(crate) fn run(cmd: DefineCmd, data: &Path) -> bool {
    let mut defs = match definitions::load(data) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    match cmd {
        DefineCmd::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&defs).unwrap_or_default());
            } else if defs.is_empty() {
                eprintln!("no definitions yet: add one with `quarry define metric|term|column|synonym|verified …`");
            } else {
                for d in defs.all() {
                    println!("{}", printable(&d.line()));
                }
            }
            return true;
        }
        DefineCmd::Remove { kind, key } => {
            if !defs.remove(kind, &key) {
                return fail(format!("there is no {} '{}' (see `quarry define list`)", kind.as_str(), printable(&key)));
            }
            return save(data, &defs, &format!("removed {} {}", kind.as_str(), printable(&key)));
        }
        _ => {}
    }
    let d = match definition(cmd) {
        Ok(Some(d)) => d,
        Ok(None) => return true,
        Err(e) => return fail(e),
    };
    let kernel = match crate::loading::sql_worker(data) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    if let Err(e) = definitions::check(&d, &kernel, &Limits::default()) {
        return fail(format!("not saved: {}", printable(&e)));
    }
    let line = d.line();
    defs.put(d);
    save(data, &defs, &format!("saved: {}", printable(&line)))
}

fn save(data: &Path, defs: &quarry_types::Definitions, said: &str) -> bool {
    match definitions::save(data, defs) {
        Ok(()) => {
            eprintln!("{said}");
            true
        }
        Err(e) => fail(e),
    }
}
