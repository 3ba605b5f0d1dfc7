//! The invariants of ARCHITECTURE.md over the real workspace: a change that
//! breaks one fails here, naming the crate and the file.

use quarry_tidy::{only_these_contain, only_these_depend_on, packages, sources, undocumented, Package};

fn workspace() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let ps = packages(&serde_json::from_slice(&out.stdout).expect("metadata json"));
    assert!(ps.len() >= 10, "the workspace's crates: {ps:?}");
    ps
}

fn assert_none(violations: Vec<String>) {
    assert!(violations.is_empty(), "invariants broken:\n{}", violations.join("\n"));
}

#[test]
fn only_the_engine_depends_on_datafusion() {
    assert_none(only_these_depend_on(&workspace(), &["datafusion", "ballista"], &["quarry-engine"]));
}

#[test]
fn only_the_llm_crate_makes_http_requests() {
    assert_none(only_these_depend_on(&workspace(), &["reqwest", "ureq", "hyper-util"], &["quarry-llm"]));
}

#[test]
fn only_the_server_and_the_fake_llm_serve_http() {
    assert_none(only_these_depend_on(
        &workspace(),
        &["axum", "hyper", "tower-http", "multer"],
        &["quarry-server", "quarry-fake-llm"],
    ));
}

#[test]
fn only_the_sandbox_spawns_processes() {
    let files = sources(&workspace()).expect("sources");
    assert_none(only_these_contain(
        &files,
        &["Command::new", "process::Command", "libc::fork", "unistd::fork", "execve", "posix_spawn"],
        &["quarry-sandbox", "quarry-tidy"],
        "spawns a process",
    ));
}

#[test]
fn only_the_sandbox_raises_os_walls() {
    assert_none(only_these_depend_on(
        &workspace(),
        &["landlock", "seccompiler", "ruff_python_parser"],
        &["quarry-sandbox"],
    ));
}

#[test]
fn every_source_file_says_what_it_owns() {
    assert_none(undocumented(&sources(&workspace()).expect("sources")));
}
