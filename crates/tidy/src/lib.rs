//! # quarry-tidy: the invariants of `ARCHITECTURE.md`, checked
//!
//! Each invariant that says what is *absent* ("only `quarry-sandbox` spawns
//! processes", "only `quarry-engine` depends on DataFusion") is a function
//! here that returns its violations, run over the real tree by
//! `tests/tidy.rs` (from `cargo metadata` and the crates' sources) and over
//! made-up trees by this crate's unit tests, which show that each check
//! fails when its invariant is broken. Nothing here is linked by Quarry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A workspace crate: its name, where it lives, and the crates it depends
/// on directly for building its library or binary (not tests, not builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub dir: PathBuf,
    pub deps: Vec<String>,
}

/// The workspace's own packages from `cargo metadata --format-version 1`.
pub fn packages(metadata: &Value) -> Vec<Package> {
    let members: Vec<&str> =
        metadata["workspace_members"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = Vec::new();
    for p in metadata["packages"].as_array().into_iter().flatten() {
        if !members.contains(&p["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let deps = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        out.push(Package {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
            deps,
        });
    }
    out
}

/// Packages depending directly on any of `deps` that are not in `allowed`.
pub fn only_these_depend_on(packages: &[Package], deps: &[&str], allowed: &[&str]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| !allowed.contains(&p.name.as_str()))
        .flat_map(|p| {
            p.deps
                .iter()
                .filter(|d| deps.contains(&d.as_str()))
                .map(move |d| format!("{} depends on {d}; only {} may", p.name, allowed.join(", ")))
        })
        .collect()
}

/// A source file: its path and text.
pub type Source = (PathBuf, String);

/// The code of a file without its `#[cfg(test)]` items (tests may do what
/// the crate may not: start `python3`, say). An item is skipped to the
/// brace that closes it (braces in strings are rare enough in this tree).
fn non_test(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(open) = after.find('{') else { return out };
        rest = &after[closing_brace(after, open).map_or(after.len(), |c| c + 1)..];
    }
    out.push_str(rest);
    out
}

/// Where the brace opened at `open` closes, counting nested braces.
fn closing_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(open + k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Files outside `allowed` crates whose non-test code contains any of `needles`.
pub fn only_these_contain(
    files: &BTreeMap<String, Vec<Source>>,
    needles: &[&str],
    allowed: &[&str],
    what: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, sources) in files.iter().filter(|(k, _)| !allowed.contains(&k.as_str())) {
        for (path, text) in sources {
            let code = non_test(text);
            if let Some(n) = needles.iter().find(|n| code.contains(**n)) {
                out.push(format!("{} ({krate}) {what} (`{n}`); only {} may", path.display(), allowed.join(", ")));
            }
        }
    }
    out
}

/// Source files that do not open with a `//!` comment saying what they own.
pub fn undocumented(files: &BTreeMap<String, Vec<Source>>) -> Vec<String> {
    files
        .values()
        .flatten()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| format!("{} does not open with a //! comment", path.display()))
        .collect()
}

/// Workspace crates in `crates` that reach any of `targets` through other
/// workspace crates (or directly), with the path that gets there.
pub fn never_reach(packages: &[Package], crates: &[&str], targets: &[&str]) -> Vec<String> {
    let by_name: BTreeMap<&str, &Package> = packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut out = Vec::new();
    for start in crates {
        let mut stack = vec![vec![start.to_string()]];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(path) = stack.pop() {
            let here = path.last().cloned().unwrap_or_default();
            if !seen.insert(here.clone()) {
                continue;
            }
            let Some(p) = by_name.get(here.as_str()) else { continue };
            for d in &p.deps {
                let mut next = path.clone();
                next.push(d.clone());
                if targets.contains(&d.as_str()) {
                    out.push(format!("{start} links {d} ({}); it must not", next.join(" → ")));
                } else {
                    stack.push(next);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The code with comments, strings and character literals blanked (kept as
/// spaces, newlines kept), so braces and `fn` can be counted.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or(' ');
        if c == '/' && next == '/' {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == '*' {
            while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                out.push(blank(b[i]));
                i += 1;
            }
            out.push_str("  ");
            i += 2;
        } else if c == 'r'
            && (next == '"' || next == '#')
            && !b.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let hashes = b[i + 1..].iter().take_while(|c| **c == '#').count();
            if b.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let start = i + 2 + hashes;
            let rest: String = b[start..].iter().collect();
            let len =
                rest.find(&close).map_or(rest.chars().count(), |k| rest[..k].chars().count() + close.chars().count());
            for ch in b[i..(start + len).min(b.len())].iter() {
                out.push(blank(*ch));
            }
            i = start + len;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                let skip = if b[i] == '\\' { 2 } else { 1 };
                for ch in &b[i..(i + skip).min(b.len())] {
                    out.push(blank(*ch));
                }
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (b.get(i + 2) == Some(&'\'') || next == '\\') {
            // A character literal ('{', '\n', '\u{7f}'); a lifetime has no closing quote.
            let end = (i + 1..b.len().min(i + 12)).find(|&k| b[k] == '\'' && k > i + 1).unwrap_or(i);
            for _ in i..=end {
                out.push(' ');
            }
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Functions longer than `max` lines (from `fn` to its closing brace), test
/// code included, as `path:line name (N lines)`.
pub fn long_functions(files: &BTreeMap<String, Vec<Source>>, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files.values().flatten() {
        let code = code_only(text);
        let line_of = |at: usize| code[..at].matches('\n').count() + 1;
        let mut from = 0;
        while let Some(k) = code[from..].find("fn ") {
            let at = from + k;
            from = at + 3;
            if code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String =
                code[at + 3..].trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let Some(open) = code[at..].find(['{', ';']).map(|o| at + o).filter(|&o| code[o..].starts_with('{')) else {
                continue;
            };
            let close = closing_brace(&code, open).unwrap_or(code.len());
            let lines = line_of(close) - line_of(at) + 1;
            if lines > max {
                out.push(format!("{}:{} fn {name} has {lines} lines (at most {max})", path.display(), line_of(at)));
            }
        }
    }
    out
}

/// Modules whose non-test code is longer than `max` lines, except `exempt`
/// (paths ending so: generated or table-like code, each with its reason).
pub fn long_modules(files: &BTreeMap<String, Vec<Source>>, max: usize, exempt: &[&str]) -> Vec<String> {
    files
        .values()
        .flatten()
        .filter(|(path, _)| !exempt.iter().any(|e| path.ends_with(e)))
        .filter_map(|(path, text)| {
            let lines = non_test(text).trim_end().lines().count();
            (lines > max).then(|| format!("{} has {lines} lines of non-test code (at most {max})", path.display()))
        })
        .collect()
}

/// The top-level module a source file belongs to (`api` for `src/api/upload.rs`),
/// `None` for the crate root (`lib.rs`, `main.rs`).
fn top_module(path: &Path) -> Option<String> {
    let parts: Vec<String> = path.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
    let src = parts.iter().rposition(|p| p == "src")?;
    let first = parts.get(src + 1)?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules `code` names through `crate::` paths.
fn crate_refs(code: &str) -> Vec<String> {
    let ident = |s: &str| s.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            out.extend(list[..end].split(',').map(ident));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_lowercase()));
    out
}

/// Import cycles between the top-level modules of one crate (`a` uses
/// `crate::b` and `b` uses `crate::a`, directly or through others), test
/// code left out. The crate root is left out too: it declares every module.
pub fn module_cycles(files: &BTreeMap<String, Vec<Source>>) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, sources) in files {
        let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        let modules: std::collections::BTreeSet<String> = sources.iter().filter_map(|(p, _)| top_module(p)).collect();
        for (path, text) in sources {
            let Some(from) = top_module(path) else { continue };
            for to in crate_refs(&non_test(text)) {
                if to != from && modules.contains(&to) {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for start in edges.keys() {
            // A path back to `start`, by depth-first search.
            let mut stack = vec![vec![start.clone()]];
            while let Some(path) = stack.pop() {
                let here = path.last().cloned().unwrap_or_default();
                for next in edges.get(&here).into_iter().flatten() {
                    if next == start {
                        let mut cycle = path.clone();
                        cycle.sort();
                        if seen.insert((krate.clone(), cycle)) {
                            out.push(format!("{krate}: modules import each other: {} → {start}", path.join(" → ")));
                        }
                    } else if !path.contains(next) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push(p);
                    }
                }
            }
        }
    }
    out
}

/// Every `src/**/*.rs` of each package, by crate name.
pub fn sources(packages: &[Package]) -> std::io::Result<BTreeMap<String, Vec<Source>>> {
    let mut out = BTreeMap::new();
    for p in packages {
        let mut files = Vec::new();
        let mut stack = vec![p.dir.join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let path = e?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&path)?;
                    files.push((path, text));
                }
            }
        }
        files.sort();
        out.insert(p.name.clone(), files);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pkg(name: &str, deps: &[&str]) -> Package {
        Package { name: name.into(), dir: PathBuf::new(), deps: deps.iter().map(|d| d.to_string()).collect() }
    }

    #[test]
    fn metadata_gives_normal_dependencies_of_members_only() {
        let m = json!({
            "workspace_members": ["a 0.1"],
            "packages": [
                {"id": "a 0.1", "name": "a", "manifest_path": "/w/crates/a/Cargo.toml", "dependencies": [
                    {"name": "serde", "kind": null}, {"name": "tempfile", "kind": "dev"}, {"name": "cc", "kind": "build"}]},
                {"id": "serde 1", "name": "serde", "manifest_path": "/r/serde/Cargo.toml", "dependencies": []}
            ]
        });
        assert_eq!(
            packages(&m),
            vec![Package { name: "a".into(), dir: "/w/crates/a".into(), deps: vec!["serde".into()] }]
        );
    }

    /// The checker itself fails when an invariant is broken.
    #[test]
    fn a_renderer_linking_datafusion_is_reported() {
        let ps = [pkg("quarry-engine", &["datafusion"]), pkg("quarry-report", &["datafusion", "serde"])];
        let v = only_these_depend_on(&ps, &["datafusion"], &["quarry-engine"]);
        assert_eq!(v, ["quarry-report depends on datafusion; only quarry-engine may"]);
        assert!(only_these_depend_on(&ps[..1], &["datafusion"], &["quarry-engine"]).is_empty());
    }

    #[test]
    fn spawning_outside_the_sandbox_is_reported_but_not_in_tests() {
        let mut files = BTreeMap::new();
        files.insert(
            "quarry-report".to_string(),
            vec![
                (PathBuf::from("a.rs"), "//! a\nfn f() { std::process::Command::new(\"sh\"); }".to_string()),
                (
                    PathBuf::from("b.rs"),
                    "//! b\nfn g() {}\n#[cfg(test)]\nmod t { fn h() { Command::new(\"python3\"); } }".into(),
                ),
                (
                    PathBuf::from("d.rs"),
                    "//! d\n#[cfg(test)]\nmod t { fn h() {} }\nfn late() { Command::new(\"sh\"); }".into(),
                ),
            ],
        );
        files.insert("quarry-sandbox".to_string(), vec![(PathBuf::from("c.rs"), "Command::new(x)".to_string())]);
        let v = only_these_contain(&files, &["Command::new"], &["quarry-sandbox"], "spawns a process");
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].starts_with("a.rs (quarry-report) spawns a process"), "{v:?}");
        assert!(v[1].starts_with("d.rs (quarry-report)"), "code after a test module counts: {v:?}");
        assert_eq!(undocumented(&files), ["c.rs does not open with a //! comment"]);
    }

    #[test]
    fn a_renderer_reaching_datafusion_through_the_analyst_is_reported() {
        let ps = [
            pkg("quarry-report", &["quarry-agent", "csv"]),
            pkg("quarry-agent", &["quarry-engine"]),
            pkg("quarry-engine", &["datafusion"]),
        ];
        let v = never_reach(&ps, &["quarry-report"], &["datafusion"]);
        assert_eq!(
            v,
            ["quarry-report links datafusion (quarry-report → quarry-agent → quarry-engine → datafusion); it must not"]
        );
        assert!(never_reach(&ps[..1], &["quarry-report"], &["datafusion"]).is_empty());
    }

    #[test]
    fn long_functions_and_modules_are_reported() {
        let body = |n: usize| (0..n).map(|i| format!("    let x{i} = \"{{\"; // }}\n")).collect::<String>();
        let text = format!(
            "//! m\nfn short() {{\n}}\nfn long() {{\n{}}}\ntrait T {{ fn decl(&self); }}\nfn chars() {{ let _ = '{{'; let _: &'static str = r#\"}}\"#; }}\n",
            body(130)
        );
        let mut files = BTreeMap::new();
        files.insert("c".to_string(), vec![(PathBuf::from("m.rs"), text)]);
        let v = long_functions(&files, 120);
        assert_eq!(v, ["m.rs:4 fn long has 132 lines (at most 120)"], "{v:?}");
        assert!(long_functions(&files, 200).is_empty());
        assert_eq!(long_modules(&files, 100, &[]).len(), 1);
        assert!(long_modules(&files, 100, &["m.rs"]).is_empty());
        assert!(long_modules(&files, 200, &[]).is_empty());
    }

    #[test]
    fn modules_importing_each_other_are_reported() {
        let mut files = BTreeMap::new();
        let f = |p: &str, t: &str| (PathBuf::from(p), t.to_string());
        files.insert(
            "c".to_string(),
            vec![
                f("/w/c/src/lib.rs", "//! r\nmod api; mod run; use crate::api::x;"),
                f("/w/c/src/api/mod.rs", "//! a\nuse crate::run::go;"),
                f("/w/c/src/api/views.rs", "//! v\nuse crate::{auth, AppState};"),
                f("/w/c/src/auth.rs", "//! au\n#[cfg(test)]\nmod t { use crate::run; }"),
                f("/w/c/src/run.rs", "//! r\nuse crate::{errors::E, api::Question};"),
                f("/w/c/src/errors.rs", "//! e"),
            ],
        );
        let v = module_cycles(&files);
        assert_eq!(v, ["c: modules import each other: api → run → api"], "{v:?}");
        files.get_mut("c").unwrap()[4].1 = "//! r\nuse crate::errors::E;".into();
        assert!(module_cycles(&files).is_empty());
    }
}
