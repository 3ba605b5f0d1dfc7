//! Which engine a command's SQL runs on: `--engine`, else `QUARRY_ENGINE`
//! (clap reads it for the commands with the flag; [`from_env`] for those
//! without), else `engine = …` in quarry.toml, else local.

use std::path::Path;

use quarry_engine::EngineTarget;

/// `given` (the flag), else `engine` in the configuration file `config`, else local.
pub(crate) fn target(given: Option<String>, config: &Path) -> Result<EngineTarget, String> {
    #[derive(serde::Deserialize)]
    struct File {
        engine: Option<String>,
    }
    let from_file = match std::fs::read_to_string(config) {
        Ok(text) => toml::from_str::<File>(&text).map_err(|e| format!("{}: {}", config.display(), e.message()))?.engine,
        Err(_) => None,
    };
    EngineTarget::parse(&given.or(from_file).unwrap_or_else(|| "local".into()))
}

/// For a command without the flag: `QUARRY_ENGINE`, else quarry.toml here, else local.
pub(crate) fn from_env() -> Result<EngineTarget, String> {
    target(std::env::var("QUARRY_ENGINE").ok().filter(|e| !e.trim().is_empty()), Path::new("quarry.toml"))
}
