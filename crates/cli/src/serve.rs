//! `quarry serve`, `quarry demo` (which serves the demo workspace) and
//! `quarry user`: thin wrappers over `quarry-server` and `quarry-store`.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use quarry_llm::LlmOverrides;
use quarry_sandbox::{Launcher, Limits};
use quarry_server::{AppState, ServerConfig};
use quarry_store::Store;

use crate::fail;
use crate::python::{start_kernels, PyArgs};

/// Options of `quarry serve`.
pub struct Serve<'a> {
    pub web: crate::args::WebArgs,
    pub engine: crate::args::EngineArgs,
    pub data: &'a Path,
    pub bind: IpAddr,
    pub port: u16,
    pub demo_files: Vec<PathBuf>,
    pub py: &'a PyArgs,
    pub no_python: bool,
    pub config: &'a Path,
    pub questions_per_minute: u32,
    pub requests_per_minute: u32,
    pub ingest: &'a quarry_ingest::IngestOptions,
    /// A folder whose files load as they arrive.
    pub watch: Option<PathBuf>,
}

pub fn cmd_serve(s: Serve<'_>) -> bool {
    let (llm, local_models) = match crate::ask::llm_config(&LlmOverrides::default(), s.config) {
        Ok((c, found)) => (Ok(c), found),
        Err(e) => (Err(e), Vec::new()),
    };
    let launcher = match Launcher::current() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let python = if s.no_python {
        Err("switched off (--no-python)".to_string())
    } else if !s.py.runtime().is_ready() {
        Err("not set up: run `quarry setup-python` once to let the analyst use Python".to_string())
    } else {
        start_kernels(s.py, Limits::for_python(), true).map_err(|e| e.to_string())
    };
    let mut cfg = ServerConfig::new(s.data.to_path_buf(), SocketAddr::new(s.bind, s.port), llm);
    cfg.demo_files = s.demo_files;
    cfg.local_models = local_models;
    cfg.ingest = s.ingest.clone();
    cfg.questions_per_minute = s.questions_per_minute;
    cfg.requests_per_minute = s.requests_per_minute;
    cfg.allowed_hosts = s.web.allowed_hosts.clone();
    cfg.engine = match s.engine.target(s.config) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    cfg.trusted_proxies = s.web.trusted_proxies.clone();
    cfg.trusted_user_header = s.web.trusted_user_header.to_ascii_lowercase();
    if let Some(u) = &s.web.public_url {
        cfg = cfg.with_public_url(u);
    }
    let hours = |h: f64| std::time::Duration::from_secs_f64((h * 3600.0).clamp(60.0, 1e9));
    cfg.session_idle = hours(s.web.session_idle_hours);
    cfg.session_max = hours(s.web.session_max_days * 24.0);
    let state = match AppState::new(cfg, launcher, python) {
        Ok(st) => st,
        Err(e) => return fail(format!("{}: {e}", s.data.display())),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("the runtime could not start: {e}")),
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind((s.bind, s.port)).await {
            Ok(l) => l,
            Err(e) => return fail(format!("{}:{}: could not listen ({e}); try another --port", s.bind, s.port)),
        };
        if let Err(e) = quarry_server::seed_demo(&state).await {
            return fail(format!("loading the demo files failed: {e}"));
        }
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        println!("Quarry is serving http://{addr} (Ctrl-C stops)");
        if state.cfg.require_login {
            let users = state.store.users().map(|u| u.len()).unwrap_or(0);
            eprintln!(
                "login is required on {}: {}",
                s.bind,
                if users <= 1 {
                    "add an account with `quarry user add NAME --admin`"
                } else {
                    "users log in with their accounts"
                }
            );
        }
        if let Err(e) = &state.cfg.llm {
            eprintln!("note: no model configured — the page explains how to point Quarry at one.\n{e}");
        }
        if let Some(n) = &state.python_note {
            eprintln!("note: Python: {n}");
        }
        if let Some(dir) = s.watch.clone() {
            eprintln!("watching {} for files to load", dir.display());
            tokio::spawn(quarry_server::watch_folder(state.clone(), dir));
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping: finishing what is in flight…");
        };
        match quarry_server::serve(state, listener, shutdown).await {
            Ok(()) => true,
            Err(e) => fail(e),
        }
    })
}

/// `quarry user add NAME [--admin]`: the password comes from
/// `QUARRY_PASSWORD` or the first line of standard input.
pub fn cmd_user_add(data: &Path, name: &str, admin: bool) -> bool {
    let password = match std::env::var("QUARRY_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password for {name} (one line on standard input):");
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() {
                return fail("no password given");
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let store = match Store::open(&data.join("quarry.sqlite")) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match store.create_user(name, Some(&password), admin) {
        Ok(u) => {
            println!("user {} added{}", u.name, if admin { " (admin)" } else { "" });
            true
        }
        Err(e) => fail(e),
    }
}

/// `quarry user token NAME`: a new API token for scripts (`Authorization: Bearer …`).
pub fn cmd_user_token(data: &Path, name: &str) -> bool {
    let store = match Store::open(&data.join("quarry.sqlite")) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match store.user_by_name(name) {
        Ok(Some(u)) => match store.issue_token(u.id, "quarry user token") {
            Ok(t) => {
                println!("{t}");
                true
            }
            Err(e) => fail(e),
        },
        Ok(None) => fail(format!("no user named '{name}'")),
        Err(e) => fail(e),
    }
}
