//! Which model to call and how: [`LlmConfig`], documented here and resolved
//! in one place from flags, the environment and `quarry.toml`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{LlmError, LlmErrorKind};

/// The wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI Chat Completions and every server that copies it: OpenAI,
    /// Ollama, vLLM, llama.cpp server, LM Studio, OpenRouter.
    #[serde(alias = "openai-compatible", alias = "ollama", alias = "vllm", alias = "openrouter")]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl std::str::FromStr for Provider {
    type Err = LlmError;
    fn from_str(s: &str) -> Result<Provider, LlmError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "ollama" | "vllm" | "llamacpp" | "llama.cpp" | "lmstudio"
            | "openrouter" => Ok(Provider::OpenAi),
            "anthropic" | "claude" => Ok(Provider::Anthropic),
            other => Err(LlmError::new(
                LlmErrorKind::NotConfigured,
                format!("unknown LLM provider '{other}': use openai (any OpenAI-compatible server) or anthropic"),
            )),
        }
    }
}

/// An API key. Prints as `[redacted]` in `Debug` and `Display`, so it cannot
/// reach logs, errors or stored history by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The key itself, for the request header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

pub const OPENAI_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_URL: &str = "https://api.anthropic.com";

/// Everything about reaching a model.
///
/// Resolved by [`LlmConfig::resolve`], highest precedence first:
/// 1. flags: `--llm-provider`, `--llm-base-url`, `--llm-model`, `--llm-api-key`;
/// 2. environment: `QUARRY_LLM_PROVIDER`, `QUARRY_LLM_BASE_URL`,
///    `QUARRY_LLM_MODEL`, `QUARRY_LLM_API_KEY`, then `OPENAI_API_KEY` /
///    `ANTHROPIC_API_KEY` for the matching provider;
/// 3. the `[llm]` table of `quarry.toml` (same names without the prefix:
///    `provider`, `base_url`, `model`, `api_key`, `timeout_secs`,
///    `max_retries`, `max_tokens`).
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub provider: Provider,
    /// e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama),
    /// `https://api.anthropic.com`.
    pub base_url: String,
    pub model: String,
    /// Not needed by most local servers.
    pub api_key: Option<Secret>,
    /// Per request; while streaming, the longest wait for the next chunk (default 120 s).
    pub timeout: Duration,
    /// Retries on 429, 5xx and dropped connections, with exponential backoff (default 3).
    pub max_retries: u32,
    /// First backoff delay (default 500 ms), doubled each retry; `Retry-After` wins when given.
    pub retry_base: Duration,
    /// Reply length limit sent with each request (default 4096).
    pub max_tokens: u32,
}

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct LlmOverrides {
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    llm: FileLlm,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLlm {
    provider: Option<String>,
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    timeout_secs: Option<f64>,
    max_retries: Option<u32>,
    max_tokens: Option<u32>,
}

fn not_configured(what: &str) -> LlmError {
    LlmError::new(LlmErrorKind::NotConfigured, what.to_string())
}

impl LlmConfig {
    /// Resolve from the process environment and an optional config file.
    pub fn from_env(flags: &LlmOverrides, file: Option<&Path>) -> Result<LlmConfig, LlmError> {
        LlmConfig::resolve(flags, &|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()), file)
    }

    /// Resolve from flags, an environment lookup and an optional `quarry.toml`.
    pub fn resolve(
        flags: &LlmOverrides,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<LlmConfig, LlmError> {
        let file = match file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| not_configured(&format!("{}: could not be read ({e})", p.display())))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| not_configured(&format!("{}: {}", p.display(), e.message())))?
                    .llm
            }
            _ => FileLlm::default(),
        };
        let pick = |flag: &Option<String>, var: &str, f: &Option<String>| {
            flag.clone().or_else(|| env(var)).or_else(|| f.clone()).map(|s| s.trim().to_string())
        };
        let base_url = pick(&flags.base_url, "QUARRY_LLM_BASE_URL", &file.base_url);
        let explicit_key = pick(&flags.api_key, "QUARRY_LLM_API_KEY", &file.api_key);
        let provider = match pick(&flags.provider, "QUARRY_LLM_PROVIDER", &file.provider) {
            Some(p) => p.parse()?,
            None => match &base_url {
                Some(u) if u.contains("anthropic.com") => Provider::Anthropic,
                Some(_) => Provider::OpenAi,
                None if env("ANTHROPIC_API_KEY").is_some() && env("OPENAI_API_KEY").is_none() => Provider::Anthropic,
                None => Provider::OpenAi,
            },
        };
        let (default_url, key_var) = match provider {
            Provider::OpenAi => (OPENAI_URL, "OPENAI_API_KEY"),
            Provider::Anthropic => (ANTHROPIC_URL, "ANTHROPIC_API_KEY"),
        };
        let hosted = base_url.is_none();
        let base_url = base_url.unwrap_or_else(|| default_url.to_string()).trim_end_matches('/').to_string();
        let api_key = explicit_key.or_else(|| env(key_var)).map(Secret::new);
        let Some(model) = pick(&flags.model, "QUARRY_LLM_MODEL", &file.model) else {
            return Err(not_configured(
                "no LLM is configured: set QUARRY_LLM_MODEL (and QUARRY_LLM_BASE_URL for a local server, e.g. \
                 http://localhost:11434/v1 for Ollama), or pass --llm-model / --llm-base-url, or add an [llm] table \
                 to quarry.toml; hosted APIs also need OPENAI_API_KEY or ANTHROPIC_API_KEY",
            ));
        };
        if hosted && api_key.is_none() {
            return Err(not_configured(&format!(
                "{base_url} needs an API key: set {key_var} or QUARRY_LLM_API_KEY, or point QUARRY_LLM_BASE_URL at a \
                 local server"
            )));
        }
        Ok(LlmConfig {
            provider,
            base_url,
            model,
            api_key,
            timeout: Duration::from_secs_f64(file.timeout_secs.unwrap_or(120.0).max(0.1)),
            max_retries: file.max_retries.unwrap_or(3),
            retry_base: Duration::from_millis(500),
            max_tokens: file.max_tokens.unwrap_or(4096),
        })
    }

    /// One line for people: provider, URL and model (never the key).
    pub fn describe(&self) -> String {
        let p = match self.provider {
            Provider::OpenAi => "OpenAI-compatible",
            Provider::Anthropic => "Anthropic",
        };
        format!("{} ({p}) at {}", self.model, self.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn nothing_configured_names_what_to_set() {
        let e = LlmConfig::resolve(&LlmOverrides::default(), &env(&[]), None).expect_err("nothing set");
        assert_eq!(e.kind, LlmErrorKind::NotConfigured);
        assert!(e.message.contains("QUARRY_LLM_MODEL") && e.message.contains("Ollama"), "{e}");
        let e = LlmConfig::resolve(&LlmOverrides::default(), &env(&[("QUARRY_LLM_MODEL", "gpt-4o")]), None)
            .expect_err("hosted without key");
        assert!(e.message.contains("OPENAI_API_KEY"), "{e}");
    }

    #[test]
    fn precedence_is_flags_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("quarry.toml");
        std::fs::write(&f, "[llm]\nbase_url = \"http://file:1/v1\"\nmodel = \"from-file\"\nmax_retries = 7\n").unwrap();
        let c = LlmConfig::resolve(&LlmOverrides::default(), &env(&[]), Some(&f)).unwrap();
        assert_eq!((c.base_url.as_str(), c.model.as_str(), c.max_retries), ("http://file:1/v1", "from-file", 7));
        assert_eq!(c.provider, Provider::OpenAi);
        assert!(c.api_key.is_none(), "local servers need no key");
        let c =
            LlmConfig::resolve(&LlmOverrides::default(), &env(&[("QUARRY_LLM_MODEL", "from-env")]), Some(&f)).unwrap();
        assert_eq!(c.model, "from-env");
        let flags = LlmOverrides { model: Some("from-flag".into()), ..Default::default() };
        let c = LlmConfig::resolve(&flags, &env(&[("QUARRY_LLM_MODEL", "from-env")]), Some(&f)).unwrap();
        assert_eq!(c.model, "from-flag");
    }

    #[test]
    fn provider_keys_are_honoured_and_never_printed() {
        let c = LlmConfig::resolve(
            &LlmOverrides::default(),
            &env(&[("QUARRY_LLM_MODEL", "claude-x"), ("ANTHROPIC_API_KEY", "sk-ant-secret")]),
            None,
        )
        .unwrap();
        assert_eq!(c.provider, Provider::Anthropic);
        assert_eq!(c.base_url, ANTHROPIC_URL);
        assert_eq!(c.api_key.as_ref().map(|k| k.expose()), Some("sk-ant-secret"));
        let shown = format!("{c:?} {}", c.describe());
        assert!(!shown.contains("sk-ant-secret"), "{shown}");
    }

    #[test]
    fn a_bad_config_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("quarry.toml");
        std::fs::write(&f, "[llm]\nmodle = \"typo\"\n").unwrap();
        let e = LlmConfig::resolve(&LlmOverrides::default(), &env(&[]), Some(&f)).expect_err("typo");
        assert!(e.message.contains("quarry.toml") && e.message.contains("modle"), "{e}");
    }
}
