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
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
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
}
