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
    /// A role read from column names instead of a column (age groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

/// A role read from the names of other roles' columns ([`super::FromNames`]):
/// each group with its columns per role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub role: String,
    pub groups: Vec<Group>,
}

/// One group of a [`Split`]: its label (from the names: `<5 yrs`) and, per
/// role, the columns summed for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub label: String,
    pub columns: BTreeMap<String, Vec<String>>,
}

/// A role's proposed columns, and the other columns that could play it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleProposal {
    pub role: String,
    pub description: String,
    pub columns: Vec<String>,
    pub candidates: Vec<String>,
    pub optional: bool,
    /// For a role no column plays, read from other roles' column names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
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
    let mut out: Vec<RoleProposal> = pack.roles.iter().map(|r| propose_role(r, stats)).collect();
    for (i, r) in pack.roles.iter().enumerate() {
        if let (Some(f), true) = (&r.from_names, out[i].columns.is_empty()) {
            out[i].groups = groups_from_names(f, &out);
        }
    }
    out
}

/// The words of a column name that say its group (`lt`, `5`, `yrs`).
fn group_words(name: &str, f: &super::FromNames) -> Vec<String> {
    words(name).into_iter().filter(|w| w.chars().all(|c| c.is_ascii_digit()) || f.words.contains(w)).collect()
}

/// A group's label as people write it: `lt 5 yrs` → `<5 yrs`.
fn group_label(key: &[String], f: &super::FromNames) -> String {
    if key.is_empty() {
        return if f.other.is_empty() { "other".into() } else { f.other.clone() };
    }
    let mut out = String::new();
    for w in key {
        let sign = match w.as_str() {
            "lt" | "u" => Some("<"),
            "le" => Some("≤"),
            "gt" => Some(">"),
            "ge" => Some("≥"),
            _ => None,
        };
        if !out.is_empty() && !out.ends_with(['<', '≤', '>', '≥']) {
            out.push(' ');
        }
        out.push_str(sign.unwrap_or(w));
    }
    out
}

/// The groups the proposed columns of `f.of` fall into by their names, when
/// every role has the same two or more groups (else none: nothing is guessed).
fn groups_from_names(f: &super::FromNames, proposals: &[RoleProposal]) -> Vec<Group> {
    let mut keys: Vec<Vec<String>> = Vec::new();
    // Role → group key (its words) → that role's columns in the group.
    type ByKey = BTreeMap<Vec<String>, Vec<String>>;
    let mut per_role: Vec<(String, ByKey)> = Vec::new();
    for role in &f.of {
        let Some(p) = proposals.iter().find(|p| &p.role == role) else { return Vec::new() };
        let mut by: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
        for c in &p.columns {
            let k = group_words(c, f);
            if !keys.contains(&k) {
                keys.push(k.clone());
            }
            by.entry(k).or_default().push(c.clone());
        }
        per_role.push((role.clone(), by));
    }
    let named = keys.iter().filter(|k| !k.is_empty()).count();
    if named < 2 || per_role.iter().any(|(_, by)| by.len() != keys.len()) {
        return Vec::new();
    }
    keys.iter()
        .map(|k| Group {
            label: group_label(k, f),
            columns: per_role.iter().map(|(r, by)| (r.clone(), by[k].clone())).collect(),
        })
        .collect()
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
    RoleProposal {
        role: r.name.clone(),
        description: r.description.clone(),
        columns,
        candidates,
        optional: r.optional,
        groups: Vec::new(),
    }
}

impl Binding {
    /// The proposal as a binding (for a person to confirm or change).
    pub fn from_proposal(pack: &Pack, table: &str, p: &[RoleProposal]) -> Binding {
        let roles = p.iter().filter(|r| !r.columns.is_empty()).map(|r| (r.role.clone(), r.columns.clone())).collect();
        let split = p
            .iter()
            .find(|r| r.columns.is_empty() && !r.groups.is_empty())
            .map(|r| Split { role: r.role.clone(), groups: r.groups.clone() });
        Binding { pack: pack.name.clone(), table: table.to_string(), roles, split }
    }

    /// Bind `role` to `cols` (none: unbind it); a role bound to columns is
    /// no longer read from names.
    pub fn set(&mut self, role: &str, cols: Vec<String>) {
        if self.split.as_ref().is_some_and(|s| s.role == role) {
            self.split = None;
        }
        if cols.is_empty() {
            self.roles.remove(role);
        } else {
            self.roles.insert(role.to_string(), cols);
        }
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
        if let Some(split) = &self.split {
            self.check_split(pack, entry, split)?;
        }
        Ok(())
    }

    fn check_split(&self, pack: &Pack, entry: &TableEntry, split: &Split) -> Result<(), String> {
        let role = &split.role;
        let Some(f) = pack.role(role).and_then(|r| r.from_names.as_ref()) else {
            return Err(format!("role {role} of pack {} is not read from column names", pack.name));
        };
        if self.roles.contains_key(role) {
            return Err(format!("role {role} is bound to a column and read from names: choose one"));
        }
        if split.groups.len() < 2 {
            return Err(format!("role {role} read from names needs two or more groups"));
        }
        for g in &split.groups {
            for (r, cols) in &g.columns {
                if !f.of.contains(r) || cols.is_empty() {
                    return Err(format!("group '{}' of {role}: role {r} is not one it splits", g.label));
                }
                for c in cols {
                    if !entry.stats.columns.iter().any(|s| &s.name == c && s.dtype.is_numeric()) {
                        return Err(format!(
                            "group '{}' of {role}: table {} has no number column '{c}'",
                            g.label, entry.name
                        ));
                    }
                }
            }
            if f.of.iter().any(|r| !g.columns.contains_key(r)) {
                return Err(format!("group '{}' of {role} needs columns for {}", g.label, f.of.join(" and ")));
            }
        }
        Ok(())
    }

    /// A role as SQL: its column quoted; several number columns summed
    /// (nulls as 0); several text columns joined as one key (`Kano / Dala / PHC 1`).
    fn expr(&self, pack: &Pack, role: &str) -> Option<String> {
        columns_expr(pack, role, self.roles.get(role)?)
    }

    /// The table an analysis needing the split role reads: one block of
    /// rows per group (`UNION ALL`), each with the group's label and its
    /// columns summed per role, under the table's own name.
    fn split_table(&self, pack: &Pack, split: &Split) -> String {
        let blocks: Vec<String> = split
            .groups
            .iter()
            .map(|g| {
                let mut cols =
                    vec![format!("'{}' AS {}", g.label.replace('\'', "''"), quoted(&split_column(&split.role)))];
                for (role, list) in &g.columns {
                    let e = columns_expr(pack, role, list).unwrap_or_else(|| "NULL".into());
                    cols.push(format!("{e} AS {}", quoted(&split_column(role))));
                }
                format!("SELECT *, {} FROM {}", cols.join(", "), quoted(&self.table))
            })
            .collect();
        format!("({}) AS {}", blocks.join(" UNION ALL "), quoted(&self.table))
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
        // An analysis by the split role reads the table one group at a time.
        let split = self.split.as_ref().filter(|s| a.needs.contains(&s.role) && !self.roles.contains_key(&s.role));
        let split_of =
            |n: &str| split.is_some_and(|s| s.role == n || s.groups.iter().any(|g| g.columns.contains_key(n)));
        let missing: Vec<&str> =
            a.needs.iter().filter(|n| !split_of(n) && self.expr(pack, n).is_none()).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(format!("{} needs {}, not bound", a.name, missing.join(", ")));
        }
        let table = match split {
            Some(s) => self.split_table(pack, s),
            None => quoted(&self.table),
        };
        let (mut sql, mut title) = (a.sql.replace("{table}", &table), a.title.clone());
        for n in &a.needs {
            let (e, shown) = if split_of(n) {
                (quoted(&split_column(n)), format!("{n} (from the column names)"))
            } else {
                (self.expr(pack, n).unwrap_or_default(), self.roles[n].join(" + "))
            };
            sql = sql.replace(&format!("{{{n}}}"), &e);
            title = title.replace(&format!("{{{n}}}"), &shown);
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

/// Columns as one role's SQL: one quoted; several number columns summed
/// (nulls as 0); several text columns joined as one key (`Kano / Dala / PHC 1`).
fn columns_expr(pack: &Pack, role: &str, cols: &[String]) -> Option<String> {
    if cols.len() <= 1 {
        return cols.first().map(|c| quoted(c));
    }
    let list: Vec<String> = cols.iter().map(|c| quoted(c)).collect();
    Some(match pack.role(role).map(|r| r.kind) {
        Some(RoleKind::Number) => {
            format!("({})", list.iter().map(|c| format!("coalesce({c}, 0)")).collect::<Vec<_>>().join(" + "))
        }
        _ => format!("concat_ws(' / ', {})", list.join(", ")),
    })
}

/// The column a split role (or a role it splits) is read from in [`Binding::split_table`].
fn split_column(role: &str) -> String {
    format!("{role}__")
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

    fn proposal(role: &str, columns: &[&str]) -> RoleProposal {
        RoleProposal {
            role: role.into(),
            description: String::new(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            candidates: Vec::new(),
            optional: false,
            groups: Vec::new(),
        }
    }

    #[test]
    fn groups_are_read_from_names_only_when_every_role_has_the_same_ones() {
        let f = super::super::FromNames {
            of: vec!["tested".into(), "positive".into()],
            words: vec!["lt".into(), "ge".into(), "yrs".into()],
            other: "all ages".into(),
        };
        let both = [
            proposal("tested", &["tested_lt5yrs", "tested_ge5yrs", "micro_tested"]),
            proposal("positive", &["pos_ge5yrs", "pos_lt5yrs", "micro_pos"]),
        ];
        let g = groups_from_names(&f, &both);
        let labels: Vec<&str> = g.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["<5 yrs", "≥5 yrs", "all ages"]);
        assert_eq!(g[0].columns["positive"], ["pos_lt5yrs"]);
        // A group that only one role has: nothing is paired (no guess).
        let uneven =
            [proposal("tested", &["tested_lt5yrs", "tested_ge5yrs"]), proposal("positive", &["pos_lt5yrs", "pos_all"])];
        assert!(groups_from_names(&f, &uneven).is_empty());
        // One named group is not a split.
        let one = [proposal("tested", &["tested_lt5yrs", "t"]), proposal("positive", &["pos_lt5yrs", "p"])];
        assert!(groups_from_names(&f, &one).is_empty());
    }
}
