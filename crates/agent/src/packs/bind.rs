//! Binding a pack to a table: the proposal (each role's columns from the
//! words of names and labels, and types), the confirmed binding stored in
//! `<data>/packs/<pack>/<table>.json`, and the pack's analyses rendered over
//! the bound columns (quoted identifiers from the catalog, never values) as
//! saved analyses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use quarry_ingest::catalog::TableEntry;
use quarry_types::sql::quoted;
use quarry_types::ColumnType;

use super::{Pack, PackAnalysis, Role, RoleKind};
use crate::analyses::Analysis;

/// The `{name}` placeholders of a pack's SQL.
pub fn placeholders(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 1..i + j];
        if !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !out.iter().any(|o| o == name)
        {
            out.push(name.to_string());
        }
        rest = &rest[i + j + 1..];
    }
    out
}

/// Which columns play each role of a pack in one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub pack: String,
    pub table: String,
    /// Role → its columns (several for a `many` number role, summed).
    pub roles: BTreeMap<String, Vec<String>>,
}

/// A role's proposed columns, and the other columns that could play it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleProposal {
    pub role: String,
    pub description: String,
    pub columns: Vec<String>,
    pub candidates: Vec<String>,
    pub optional: bool,
}

/// Lower-case words of a name or label, split at anything not a letter
/// and between letters and digits (`period0me` → period, 0, me).
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut last_digit = None;
    for c in s.chars().flat_map(char::to_lowercase) {
        if !c.is_alphanumeric() {
            out.extend((!cur.is_empty()).then(|| std::mem::take(&mut cur)));
            last_digit = None;
            continue;
        }
        let digit = c.is_ascii_digit();
        if last_digit.is_some_and(|d| d != digit) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        last_digit = Some(digit);
    }
    out.extend((!cur.is_empty()).then_some(cur));
    out
}

/// Whether every word of `hint` is among `have`.
fn matches(hint: &str, have: &[String]) -> bool {
    let h = words(hint);
    !h.is_empty() && h.iter().all(|w| have.contains(w))
}

fn is_year(v: &Option<Value>) -> bool {
    v.as_ref().and_then(Value::as_i64).is_some_and(|y| (1900..=2100).contains(&y))
}

fn fits(kind: RoleKind, c: &quarry_ingest::stats::ColumnStats) -> bool {
    match kind {
        RoleKind::Number => c.dtype.is_numeric(),
        RoleKind::Text => c.dtype == ColumnType::Text,
        RoleKind::Period => {
            matches!(c.dtype, ColumnType::Date | ColumnType::DateTime)
                || (c.dtype == ColumnType::Integer && is_year(&c.min) && is_year(&c.max))
        }
    }
}

/// Each role's columns as the names, labels and types suggest them. A
/// column whose label repeats an earlier one's (a duplicated export column)
/// is not taken twice.
pub fn propose(pack: &Pack, entry: &TableEntry) -> Vec<RoleProposal> {
    let stats = &entry.stats.columns;
    pack.roles.iter().map(|r| propose_role(r, stats)).collect()
}

fn propose_role(r: &Role, stats: &[quarry_ingest::stats::ColumnStats]) -> RoleProposal {
    let mut scored: Vec<(usize, &quarry_ingest::stats::ColumnStats)> = stats
        .iter()
        .filter(|c| fits(r.kind, c))
        .filter_map(|c| {
            let have = [words(&c.name), words(&c.label)].concat();
            if r.avoid.iter().any(|a| matches(a, &have)) {
                return None;
            }
            let score = r.hints.iter().filter(|h| matches(h, &have)).count();
            (score > 0).then_some((score, c))
        })
        .collect();
    let candidates: Vec<String> = scored.iter().map(|(_, c)| c.name.clone()).collect();
    let columns = if r.many && r.kind == RoleKind::Text {
        // One name column; `refine_keys` adds the place columns it needs.
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.distinct.cmp(&a.1.distinct)));
        scored.first().map(|(_, c)| vec![c.name.clone()]).unwrap_or_default()
    } else if r.many {
        let mut labels: Vec<&str> = Vec::new();
        scored
            .iter()
            .filter(|(_, c)| {
                let fresh = !labels.contains(&c.label.as_str());
                labels.push(&c.label);
                fresh
            })
            .map(|(_, c)| c.name.clone())
            .collect()
    } else {
        // The best-matching column; among equals, the coarsest (fewest values).
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.distinct.cmp(&b.1.distinct)));
        scored.first().map(|(_, c)| vec![c.name.clone()]).unwrap_or_default()
    };
    RoleProposal { role: r.name.clone(), description: r.description.clone(), columns, candidates, optional: r.optional }
}

impl Binding {
    /// The proposal as a binding (for a person to confirm or change).
    pub fn from_proposal(pack: &Pack, table: &str, p: &[RoleProposal]) -> Binding {
        let roles = p.iter().filter(|r| !r.columns.is_empty()).map(|r| (r.role.clone(), r.columns.clone())).collect();
        Binding { pack: pack.name.clone(), table: table.to_string(), roles }
    }

    /// Every bound column exists in the table, and has the role's kind.
    pub fn check(&self, pack: &Pack, entry: &TableEntry) -> Result<(), String> {
        for (role, cols) in &self.roles {
            let r = pack.role(role).ok_or_else(|| format!("pack {} has no role '{role}'", pack.name))?;
            if cols.len() > 1 && !r.many {
                return Err(format!("role {role} takes one column, not {}", cols.len()));
            }
            for c in cols {
                let Some(s) = entry.stats.columns.iter().find(|s| &s.name == c) else {
                    return Err(format!("table {} has no column '{c}' (for role {role})", entry.name));
                };
                if !fits(r.kind, s) {
                    return Err(format!(
                        "column {c} is {}, but role {role} needs a {:?} column",
                        s.dtype.as_str(),
                        r.kind
                    ));
                }
            }
        }
        Ok(())
    }

    /// A role as SQL: its column quoted; several number columns summed
    /// (nulls as 0); several text columns joined as one key (`Kano / Dala / PHC 1`).
    fn expr(&self, pack: &Pack, role: &str) -> Option<String> {
        let cols = self.roles.get(role).filter(|c| !c.is_empty())?;
        if cols.len() == 1 {
            return Some(quoted(&cols[0]));
        }
        let list: Vec<String> = cols.iter().map(|c| quoted(c)).collect();
        Some(match pack.role(role).map(|r| r.kind) {
            Some(RoleKind::Number) => {
                format!("({})", list.iter().map(|c| format!("coalesce({c}, 0)")).collect::<Vec<_>>().join(" + "))
            }
            _ => format!("concat_ws(' / ', {})", list.join(", ")),
        })
    }

    /// For each several-column text role (an entity): when its name column
    /// and the period do not identify the rows, the text columns before it in
    /// the table (the place: ward, LGA, state), nearest first, are added until
    /// they do — facilities of one name in two LGAs are two facilities.
    pub fn refine_keys(
        &mut self,
        pack: &Pack,
        entry: &TableEntry,
        kernel: &dyn quarry_types::SqlKernel,
        limits: &quarry_types::Limits,
    ) {
        let Some(period) = self.roles.get("period").and_then(|p| p.first()).cloned() else { return };
        let count = |cols: &[String]| -> Option<i64> {
            let list: Vec<String> = cols.iter().chain([&period]).map(|c| quoted(c)).collect();
            let sql = format!(
                "SELECT count(*) AS n FROM (SELECT DISTINCT {} FROM {}) AS k",
                list.join(", "),
                quoted(&entry.name)
            );
            let t = quarry_types::Table::from_result(&kernel.query(&sql, limits).ok()?);
            t.rows.first()?.first()?.as_i64()
        };
        for r in pack.roles.iter().filter(|r| r.many && r.kind == RoleKind::Text) {
            let Some(mut cols) = self.roles.get(&r.name).filter(|c| c.len() == 1).cloned() else { continue };
            let Some(at) = entry.columns.iter().position(|c| c.name == cols[0]) else { continue };
            let before: Vec<String> = entry.columns[..at]
                .iter()
                .rev()
                .filter(|c| c.dtype == ColumnType::Text && c.name != period)
                .map(|c| c.name.clone())
                .collect();
            let Some(mut n) = count(&cols) else { continue };
            for extra in before {
                // Identified: every row, or all but exact duplicates (1%).
                if n as u64 * 100 >= entry.rows * 99 {
                    break;
                }
                let with: Vec<String> = [extra.clone()].into_iter().chain(cols.iter().cloned()).collect();
                // A column that tells no two rows apart is left out (a constant state, say).
                match count(&with) {
                    Some(m) if m > n => {
                        cols = with;
                        n = m;
                    }
                    _ => {}
                }
            }
            self.roles.insert(r.name.clone(), cols);
        }
    }

    /// A pack analysis's SQL and title over this binding, or the roles it lacks.
    pub fn render(&self, pack: &Pack, a: &PackAnalysis) -> Result<(String, String), String> {
        let missing: Vec<&str> = a.needs.iter().filter(|n| self.expr(pack, n).is_none()).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(format!("{} needs {}, not bound", a.name, missing.join(", ")));
        }
        let (mut sql, mut title) = (a.sql.replace("{table}", &quoted(&self.table)), a.title.clone());
        for n in &a.needs {
            let e = self.expr(pack, n).unwrap_or_default();
            sql = sql.replace(&format!("{{{n}}}"), &e);
            title = title.replace(&format!("{{{n}}}"), &self.roles[n].join(" + "));
        }
        Ok((sql, title))
    }

    /// The pack's analyses over this binding, as saved analyses named
    /// `<analysis>-<table>`; those whose roles are unbound, with why.
    pub fn analyses(&self, pack: &Pack, entry: &TableEntry) -> (Vec<Analysis>, Vec<String>) {
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        for a in &pack.analyses {
            match self.render(pack, a) {
                Ok((sql, title)) => {
                    let name: String = format!("{}-{}", a.name, self.table).chars().take(64).collect();
                    out.push(Analysis::over_table(&name, &title, &sql, &a.narrative, a.chart.clone(), entry));
                }
                Err(why) => skipped.push(why),
            }
        }
        (out, skipped)
    }
}

fn path(data: &Path, pack: &str, table: &str) -> PathBuf {
    data.join("packs").join(pack).join(format!("{table}.json"))
}

/// Keep a confirmed binding (written whole, [`crate::files`]).
pub fn save(data: &Path, b: &Binding) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(b).map_err(|e| e.to_string())?;
    crate::files::write_atomic(&path(data, &b.pack, &b.table), &text)
}

/// The confirmed binding of `pack` to `table`, if any.
pub fn load(data: &Path, pack: &str, table: &str) -> Option<Binding> {
    serde_json::from_slice(&std::fs::read(path(data, pack, table)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_names_and_labels_as_people_read_them() {
        assert_eq!(words("period0me"), ["period", "0", "me"]);
        assert_eq!(words("Persons tested positive / ≥5yrs"), ["persons", "tested", "positive", "5", "yrs"]);
        assert!(matches("orgunitlevel2", &words("orgunitlevel2")));
        assert!(matches("health_facility", &words("location_health_facility")));
        assert!(!matches("fever_cases", &words("presenting_fever_tested")));
        assert_eq!(placeholders("SELECT {a}, {b} FROM {table} WHERE {a} > 0"), ["a", "b", "table"]);
    }
}
