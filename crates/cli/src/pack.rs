//! `quarry pack …`: shipped and own template packs, their binding to a
//! table (proposed, printed, saved only with --yes), and their analyses
//! run as saved analyses. What a pack is lives in `quarry_agent::packs`.

use std::path::Path;

use quarry_agent::analyses::{self, store};
use quarry_agent::packs::bind::{self, Binding};
use quarry_agent::packs::Pack;
use quarry_ingest::catalog::Catalog;
use quarry_sandbox::Limits;

use crate::args::PackCmd;
use crate::{fail, printable};

fn print_binding(pack: &Pack, b: &Binding, proposals: &[bind::RoleProposal]) {
    for p in proposals {
        let split = b.split.as_ref().filter(|s| s.role == p.role);
        let cols = match (b.roles.get(&p.role), split) {
            (Some(c), _) => c.join(" + "),
            (None, Some(_)) => "from the column names".into(),
            (None, None) => "(not bound)".into(),
        };
        let opt = if p.optional { " (optional)" } else { "" };
        println!("  {:<10} {cols}{opt} — {}", p.role, p.description);
        if let Some(s) = split {
            println!("{}", groups(s));
        }
        let others: Vec<&String> =
            p.candidates.iter().filter(|c| !b.roles.get(&p.role).is_some_and(|x| x.contains(c))).collect();
        if !others.is_empty() {
            println!(
                "  {:<10} could also be: {}",
                "",
                others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let missing: Vec<&str> =
        pack.roles.iter().filter(|r| !r.optional && !b.roles.contains_key(&r.name)).map(|r| r.name.as_str()).collect();
    if !missing.is_empty() {
        println!("  not found: {} (bind with --role ROLE=COLUMN)", missing.join(", "));
    }
}

/// A split role's groups, one a line: `<5 yrs — positive: b; tested: a`.
fn groups(s: &bind::Split) -> String {
    let one = |g: &bind::Group| {
        let cols: Vec<String> = g.columns.iter().map(|(r, c)| format!("{r}: {}", c.join(" + "))).collect();
        format!("  {:<10}   {} — {}", "", g.label, cols.join("; "))
    };
    s.groups.iter().map(one).collect::<Vec<_>>().join("\n")
}

/// `ROLE=COL,COL` flags over the binding.
fn apply(b: &mut Binding, flags: &[String]) -> Result<(), String> {
    for f in flags {
        let (role, cols) = f.split_once('=').ok_or_else(|| format!("--role {f}: write ROLE=COLUMN[,COLUMN]"))?;
        let cols: Vec<String> = cols.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
        b.set(role.trim(), cols);
    }
    Ok(())
}

fn run_pack(data: &Path, pack: &Pack, b: &Binding, trigger: &str, as_json: bool) -> bool {
    let entries = match Catalog::open(data).and_then(|c| c.tables()) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let Some(entry) = entries.iter().find(|e| e.name == b.table) else {
        return fail(format!("no table {} in {}", b.table, data.display()));
    };
    let (list, skipped) = b.analyses(pack, entry);
    let kernels = match crate::analysis::AnalysisKernels::new(data) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let mut ok = true;
    let mut runs = Vec::new();
    for a in &list {
        if let Err(e) = store::save(data, a) {
            return fail(e);
        }
        match analyses::run_and_keep(data, a, Vec::new(), kernels.get(), &entries, trigger) {
            Ok(run) => {
                ok &= run.ok;
                if !as_json {
                    println!("\n{} — {}\n  {}", a.name, printable(&a.question), printable(&run.narrative));
                    if let Some(t) = &run.table {
                        println!("{}", crate::render::render_table(t, 12));
                    }
                }
                runs.push(serde_json::json!({"analysis": a.name, "run": run}));
            }
            Err(e) => ok = fail(e),
        }
    }
    if as_json {
        println!("{}", serde_json::json!({"runs": runs, "skipped": skipped}));
    } else {
        for s in &skipped {
            println!("\nskipped: {s}");
        }
    }
    ok
}

pub(crate) fn run(cmd: PackCmd, data: &Path) -> bool {
    match cmd {
        PackCmd::List => {
            for p in Pack::builtin() {
                println!("{}  {} ({} analyses) — {}", p.name, p.title, p.analyses.len(), p.description);
            }
            true
        }
        PackCmd::Show { pack } => match Pack::find(&pack) {
            Ok(p) => {
                println!("{}: {}\nroles:", p.name, p.title);
                for r in &p.roles {
                    println!(
                        "  {} ({:?}{}{}) — {}",
                        r.name,
                        r.kind,
                        if r.many { ", several columns" } else { "" },
                        if r.optional { ", optional" } else { "" },
                        r.description
                    );
                }
                println!("analyses:");
                for a in &p.analyses {
                    println!("  {} — {} (needs {})", a.name, a.title, a.needs.join(", "));
                }
                true
            }
            Err(e) => fail(e),
        },
        PackCmd::Bind { pack, table, roles, yes } => {
            let pack = match Pack::find(&pack) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let entry = match Catalog::open(data).and_then(|c| c.entry(&table, None)) {
                Ok(e) => e,
                Err(_) => return fail(format!("no table '{}' in {}", printable(&table), data.display())),
            };
            let proposals = bind::propose(&pack, &entry);
            let mut b = match bind::load(data, &pack.name, &table) {
                Some(b) => b,
                None => {
                    let mut b = Binding::from_proposal(&pack, &table, &proposals);
                    if let Ok(k) = crate::loading::sql_worker(data) {
                        b.refine_keys(&pack, &entry, &k, &Limits::default());
                    }
                    b
                }
            };
            if let Err(e) = apply(&mut b, &roles).and_then(|()| b.check(&pack, &entry)) {
                return fail(e);
            }
            println!("{} on {}:", pack.title, table);
            print_binding(&pack, &b, &proposals);
            if !yes {
                println!("\nNothing saved yet. Check each role's columns; confirm with --yes (change one with --role ROLE=COLUMN[,COLUMN], unbind one with --role ROLE=).");
                return true;
            }
            if let Err(e) = bind::save(data, &b) {
                return fail(e);
            }
            run_pack(data, &pack, &b, "pack bound", false)
        }
        PackCmd::Run { pack, table, json } => {
            let pack = match Pack::find(&pack) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match bind::load(data, &pack.name, &table) {
                Some(b) => run_pack(data, &pack, &b, "asked", json),
                None => fail(format!(
                    "{} is not bound to {table} yet: `quarry pack bind {} --table {table}` first",
                    pack.name, pack.name
                )),
            }
        }
    }
}
