//! The invariants of ARCHITECTURE.md over the real workspace: a change that
//! breaks one fails here, naming the crate and the file.

use quarry_tidy::{
    long_functions, long_modules, module_cycles, never_reach, only_these_contain, only_these_depend_on, packages,
    sources, undocumented, Package,
};

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
fn only_the_llm_crate_and_the_cluster_kernel_make_http_requests() {
    // quarry-engine: only with its `ballista` feature, to cancel a job past
    // its time limit through the Ballista scheduler's REST API.
    assert_none(only_these_depend_on(
        &workspace(),
        &["reqwest", "ureq", "hyper-util"],
        &["quarry-llm", "quarry-engine"],
    ));
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
fn only_the_worker_crates_spawn_processes() {
    let files = sources(&workspace()).expect("sources");
    assert_none(only_these_contain(
        &files,
        &["Command::new", "process::Command", "libc::fork", "unistd::fork", "execve", "posix_spawn"],
        &["quarry-worker", "quarry-sandbox", "quarry-tidy"],
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

#[test]
fn shared_types_depend_on_no_quarry_crate() {
    let ws = workspace();
    let ours: Vec<&str> = ws.iter().map(|p| p.name.as_str()).collect();
    assert_none(never_reach(&ws, &["quarry-types"], &ours));
}

#[test]
fn renderers_and_stores_do_not_link_the_engine_or_the_walls() {
    assert_none(never_reach(
        &workspace(),
        &["quarry-types", "quarry-report", "quarry-store", "quarry-worker", "quarry-ingest"],
        &["datafusion", "quarry-engine", "quarry-agent", "quarry-sandbox"],
    ));
}

#[test]
fn file_parsers_and_the_engine_do_not_link_the_python_walls() {
    assert_none(never_reach(
        &workspace(),
        &["quarry-ingest", "quarry-engine", "quarry-worker", "quarry-types", "quarry-sql"],
        &["ruff_python_parser", "landlock", "seccompiler"],
    ));
}

#[test]
fn no_crate_below_the_server_knows_http() {
    let below = [
        "quarry-types",
        "quarry-worker",
        "quarry-sandbox",
        "quarry-ingest",
        "quarry-engine",
        "quarry-agent",
        "quarry-store",
        "quarry-report",
    ];
    assert_none(never_reach(&workspace(), &below, &["axum", "hyper", "http", "tower-http", "multer", "quarry-server"]));
}

#[test]
fn functions_fit_on_a_screen() {
    assert_none(long_functions(&sources(&workspace()).expect("sources"), 120));
}

#[test]
fn modules_stay_readable() {
    assert_none(long_modules(&sources(&workspace()).expect("sources"), 600, &[]));
}

#[test]
fn modules_of_a_crate_do_not_import_each_other_in_a_cycle() {
    assert_none(module_cycles(&sources(&workspace()).expect("sources")));
}

#[test]
fn the_analyst_and_the_server_do_not_link_datafusion() {
    assert_none(never_reach(
        &workspace(),
        &["quarry-sql", "quarry-agent", "quarry-server"],
        &["datafusion", "quarry-engine"],
    ));
}
