//! Template packs: analyses written over *roles* (`tested`, `positive`,
//! `period`, `admin_1`, `facility`, …) instead of column names, in a plain
//! TOML file. Binding a pack to a table maps each role to columns — proposed
//! from names, labels and types ([`bind::propose`]), shown to a person,
//! confirmed, stored, editable — and turns the pack's analyses into saved
//! analyses over those columns (so they run with no model, keep their runs
//! and re-run on new data). Nothing is bound silently: an unconfirmed
//! proposal is only a proposal.
//!
//! Shipped: `malaria-routine` and `data-quality` (`packs/*.toml` in this
//! crate). The format, for writing your own:
//!
//! ```toml
//! name = "my-pack"
//! title = "…"
//! [[roles]]
//! name = "tested"        # used as {tested} in SQL
//! kind = "number"        # number, text or period (a date, or an integer year)
//! many = true            # several columns summed (every age group)
//! optional = true        # analyses needing it are skipped when unbound
//! hints = ["tested"]     # words of column names or labels that suggest it
//! avoid = ["positive"]   # words that rule a column out
//! [[roles]]
//! name = "age_group"     # a text role may also be read from column names:
//! kind = "text"          # tested_lt5yrs / positive_lt5yrs are the group "<5 yrs"
//! optional = true
//! from_names = { of = ["tested", "positive"], words = ["lt", "ge", "yrs"], other = "not split" }
//! [[analyses]]
//! name = "tpr_by_state"
//! needs = ["tested", "positive", "admin_1"]
//! sql = "SELECT {admin_1} AS admin_1, pct(sum({positive}), sum({tested})) AS tpr_pct FROM {table} GROUP BY 1"
//! narrative = "Highest: {row 1 admin_1} ({row 1 tpr_pct})."   # slots, filled from each result
//! chart = { type = "bar", x = "admin_1", y = "tpr_pct" }
//! ```

pub mod bind;

use serde::{Deserialize, Serialize};

use crate::chart::ChartProposal;

/// What a role's columns hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKind {
    Number,
    Text,
    /// A date column, or an integer column of years.
    Period,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub kind: RoleKind,
    #[serde(default)]
    pub many: bool,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub hints: Vec<String>,
    #[serde(default)]
    pub avoid: Vec<String>,
    /// A text role that, when no column plays it, may be read from the
    /// names of other roles' columns ([`FromNames`]).
    #[serde(default)]
    pub from_names: Option<FromNames>,
}

/// A role read from column names: wide exports keep one column per group
/// (`tested_lt5yrs`, `tested_ge5yrs`, `positive_lt5yrs`, …). The words of a
/// name among `words`, with its numbers, say its group; groups pair the
/// columns of the roles `of` (each group summed per role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromNames {
    /// The several-column number roles whose columns are split.
    pub of: Vec<String>,
    /// Words that name a group (`lt`, `ge`, `yrs`, `preg`, `women`, …).
    pub words: Vec<String>,
    /// The label of the columns whose names name no group.
    #[serde(default)]
    pub other: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackAnalysis {
    pub name: String,
    pub title: String,
    pub needs: Vec<String>,
    pub sql: String,
    #[serde(default)]
    pub narrative: String,
    #[serde(default)]
    pub chart: Option<ChartProposal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pack {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub roles: Vec<Role>,
    pub analyses: Vec<PackAnalysis>,
}

const BUILTIN: [(&str, &str); 2] = [
    ("malaria-routine", include_str!("../../packs/malaria-routine.toml")),
    ("data-quality", include_str!("../../packs/data-quality.toml")),
];

impl Pack {
    /// Read a pack file's text, checked: every role an analysis needs and
    /// every `{placeholder}` its SQL uses is a role of the pack.
    pub fn parse(text: &str, origin: &str) -> Result<Pack, String> {
        let p: Pack = toml::from_str(text).map_err(|e| format!("{origin}: not a pack ({e})"))?;
        // Names become file and analysis names: letters, digits, _ and - only.
        let named = |n: &str| crate::analyses::store::check_name(n).map_err(|e| format!("{origin}: {e}"));
        named(&p.name)?;
        for a in &p.analyses {
            named(&a.name)?;
            for n in &a.needs {
                if !p.roles.iter().any(|r| &r.name == n) {
                    return Err(format!(
                        "{origin}: analysis {} needs role '{n}', which the pack does not define",
                        a.name
                    ));
                }
            }
            for used in bind::placeholders(&a.sql) {
                if used != "table" && !a.needs.contains(&used) {
                    return Err(format!("{origin}: analysis {} uses {{{used}}} without listing it in needs", a.name));
                }
            }
        }
        for r in &p.roles {
            let Some(f) = &r.from_names else { continue };
            let many_number = |n: &String| p.role(n).is_some_and(|o| o.many && o.kind == RoleKind::Number);
            if r.kind != RoleKind::Text || f.of.len() < 2 || !f.of.iter().all(many_number) {
                return Err(format!(
                    "{origin}: role {} is read from names: it must be a text role over two or more several-column number roles",
                    r.name
                ));
            }
        }
        Ok(p)
    }

    /// The packs Quarry ships, by name.
    pub fn builtin() -> Vec<Pack> {
        BUILTIN.iter().filter_map(|(n, t)| Pack::parse(t, n).ok()).collect()
    }

    /// A shipped pack by name, or a pack file by path.
    pub fn find(name_or_path: &str) -> Result<Pack, String> {
        if let Some(p) = Pack::builtin().into_iter().find(|p| p.name == name_or_path) {
            return Ok(p);
        }
        let path = std::path::Path::new(name_or_path);
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name_or_path}: {e}"))?;
            return Pack::parse(&text, name_or_path);
        }
        let names: Vec<String> = Pack::builtin().into_iter().map(|p| p.name).collect();
        Err(format!("no pack '{name_or_path}': use one of {} or a pack file's path", names.join(", ")))
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_packs_parse_and_bad_ones_are_named() {
        let names: Vec<String> = Pack::builtin().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["malaria-routine", "data-quality"]);
        let bad = "name = 'x'\ntitle = 'x'\n[[roles]]\nname = 'a'\nkind = 'number'\n[[analyses]]\nname = 'q'\ntitle = 't'\nneeds = ['a']\nsql = 'SELECT {b} FROM {table}'\n";
        assert!(Pack::parse(bad, "x.toml").unwrap_err().contains("uses {b} without listing it"));
        let escape = "name = '../x'\ntitle = 'x'\nroles = []\nanalyses = []\n";
        assert!(Pack::parse(escape, "x.toml").unwrap_err().contains("use letters, digits"));
    }
}
