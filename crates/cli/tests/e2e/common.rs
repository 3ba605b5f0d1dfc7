//! Helpers the integration tests share: the `quarry` binary as the workers'
//! launcher, the fake LLM as a configured model, loading files through an
//! ingest worker, and Quarry's Python runtime.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use quarry_fake_llm::FakeLlm;
use quarry_ingest::worker::IngestWorkers;
use quarry_ingest::{IngestOptions, Quiet};
use quarry_llm::{LlmConfig, Provider};
use quarry_sandbox::python::Runtime;
use quarry_sandbox::{Launcher, Limits};

pub const BIN: &str = env!("CARGO_BIN_EXE_quarry");

pub fn launcher() -> Launcher {
    Launcher::with_exe(PathBuf::from(BIN))
}

/// The fake LLM as an OpenAI-compatible model: no retries, the given timeout.
pub fn fake_llm(fake: &FakeLlm, timeout: Duration) -> LlmConfig {
    LlmConfig {
        provider: Provider::OpenAi,
        base_url: fake.openai_url(),
        model: "fake-model".into(),
        api_key: None,
        timeout,
        max_retries: 0,
        retry_base: Duration::from_millis(10),
        max_tokens: 1024,
    }
}

/// Load `file` into the catalog at `data` through an ingest worker.
pub fn load(data: &Path, file: &Path) {
    IngestWorkers::new(launcher(), data, Limits::for_ingest(), 1)
        .load(file, &IngestOptions::default(), &Quiet)
        .expect("loads");
}

/// The runtime the binary uses: QUARRY_PYTHON_HOME, else the default home.
pub fn python_runtime() -> Runtime {
    Runtime::new(std::env::var_os("QUARRY_PYTHON_HOME").map(PathBuf::from).unwrap_or_else(|| {
        Runtime::default_home(
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }))
}

/// Quarry's Python runtime, set up once through the binary (idempotent).
pub fn ensure_python_runtime() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if python_runtime().is_ready() {
            return;
        }
        let out = Command::new(BIN).arg("setup-python").output().expect("setup-python");
        assert!(
            out.status.success(),
            "quarry setup-python failed (tests need Python 3 with venv and PyPI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A command that finds no model: none in its environment, none by looking
/// for a local server (the tests say which model they use).
pub fn clean_llm_env(cmd: &mut Command) -> &mut Command {
    for k in [
        "QUARRY_LLM_BASE_URL",
        "QUARRY_LLM_MODEL",
        "QUARRY_LLM_API_KEY",
        "QUARRY_LLM_PROVIDER",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("QUARRY_LLM_DISCOVER", "off")
}

/// Run the binary in `dir` with no model around (see [`clean_llm_env`]).
pub fn quarry(dir: &Path, args: &[&str]) -> Output {
    clean_llm_env(&mut Command::new(BIN)).args(args).current_dir(dir).output().expect("quarry runs")
}

/// Its standard output, after checking it succeeded (both streams shown if not).
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
