//! Finding a model server already running on this machine, as tools in this
//! field do: Ollama (`:11434`), LM Studio (`:1234`), llama.cpp's server
//! (`:8080`) and vLLM (`:8000`) all answer the OpenAI-compatible
//! `GET /v1/models` on loopback. Used only when no model is configured;
//! `QUARRY_LLM_DISCOVER=off` turns it off, and a comma-separated list of base
//! URLs replaces the ports looked at.

use std::time::Duration;

use crate::config::{LlmConfig, LlmOverrides};

/// The servers looked for, by name and base URL.
pub const LOCAL_SERVERS: [(&str, &str); 4] = [
    ("Ollama", "http://127.0.0.1:11434/v1"),
    ("LM Studio", "http://127.0.0.1:1234/v1"),
    ("llama.cpp", "http://127.0.0.1:8080/v1"),
    ("vLLM", "http://127.0.0.1:8000/v1"),
];

/// A server that answered, with the models it offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Found {
    pub base_url: String,
    pub models: Vec<String>,
}

fn targets() -> Vec<String> {
    match std::env::var("QUARRY_LLM_DISCOVER") {
        Ok(v) if v.trim().eq_ignore_ascii_case("off") => Vec::new(),
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().trim_end_matches('/').to_string()).collect(),
        _ => LOCAL_SERVERS.iter().map(|(_, u)| u.to_string()).collect(),
    }
}

/// The local servers that answer `GET /models` with at least one model.
pub async fn local_servers() -> Vec<Found> {
    crate::install_crypto();
    let Ok(http) = reqwest::Client::builder().timeout(Duration::from_millis(700)).build() else { return Vec::new() };
    let mut out = Vec::new();
    for base in targets() {
        let Ok(resp) = http.get(format!("{base}/models")).send().await else { continue };
        let Ok(v) = resp.json::<serde_json::Value>().await else { continue };
        let models: Vec<String> =
            v["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
        if !models.is_empty() {
            out.push(Found { base_url: base, models });
        }
    }
    out
}

/// The same, blocking (for callers outside an async runtime).
pub fn local_servers_blocking() -> Vec<Found> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(local_servers()),
        Err(_) => Vec::new(),
    }
}

/// A configuration for the first model of the first server found (the
/// rest of the settings as flags, environment and `quarry.toml` give them).
pub fn configured(found: &[Found], flags: &LlmOverrides, file: Option<&std::path::Path>) -> Option<LlmConfig> {
    let f = found.first()?;
    let flags = LlmOverrides { base_url: Some(f.base_url.clone()), model: Some(f.models[0].clone()), ..flags.clone() };
    LlmConfig::from_env(&flags, file).ok()
}
