//! Where analyses live: `<data>/analyses/<name>/analysis.json` and one
//! `runs/<number>.json` per run, each written whole ([`crate::files`]).

use std::path::{Path, PathBuf};

use super::{Analysis, AnalysisRun};

fn root(data: &Path) -> PathBuf {
    data.join("analyses")
}

/// Analysis names: letters, digits, `_` and `-`, at most 64.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("analysis name '{name}': use letters, digits, _ and - (at most 64)"))
    }
}

use crate::files::write_atomic as write;

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Save (or replace) an analysis.
pub fn save(data: &Path, a: &Analysis) -> Result<(), String> {
    check_name(&a.name)?;
    let text = serde_json::to_vec_pretty(a).map_err(|e| e.to_string())?;
    write(&root(data).join(&a.name).join("analysis.json"), &text)
}

pub fn load(data: &Path, name: &str) -> Result<Analysis, String> {
    check_name(name)?;
    let p = root(data).join(name).join("analysis.json");
    if !p.exists() {
        return Err(format!("there is no analysis '{name}' (see `quarry analysis list`)"));
    }
    read(&p)
}

/// Every analysis, by name.
pub fn list(data: &Path) -> Result<Vec<Analysis>, String> {
    let Ok(dir) = std::fs::read_dir(root(data)) else { return Ok(Vec::new()) };
    let mut names: Vec<String> = dir.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    names
        .iter()
        .filter(|n| check_name(n).is_ok() && root(data).join(n).join("analysis.json").exists())
        .map(|n| load(data, n))
        .collect()
}

/// Remove an analysis and its runs.
pub fn remove(data: &Path, name: &str) -> Result<(), String> {
    check_name(name)?;
    let dir = root(data).join(name);
    if !dir.exists() {
        return Err(format!("there is no analysis '{name}'"));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Keep a run (numbered by the run itself).
pub fn save_run(data: &Path, name: &str, run: &AnalysisRun) -> Result<(), String> {
    let text = serde_json::to_vec(run).map_err(|e| e.to_string())?;
    write(&root(data).join(name).join("runs").join(format!("{:06}.json", run.number)), &text)
}

/// The analysis's runs, oldest first.
pub fn runs(data: &Path, name: &str) -> Result<Vec<AnalysisRun>, String> {
    check_name(name)?;
    let Ok(dir) = std::fs::read_dir(root(data).join(name).join("runs")) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> =
        dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    files.iter().map(|p| read(p)).collect()
}

/// The analysis's last run, if any (read alone).
pub fn last_run(data: &Path, name: &str) -> Result<Option<AnalysisRun>, String> {
    check_name(name)?;
    let Ok(dir) = std::fs::read_dir(root(data).join(name).join("runs")) else { return Ok(None) };
    let last =
        dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).max();
    last.map(|p| read(&p)).transpose()
}

/// Analyses that read any of `tables`.
pub fn reading(data: &Path, tables: &[String]) -> Result<Vec<Analysis>, String> {
    Ok(list(data)?.into_iter().filter(|a| a.tables.iter().any(|t| tables.contains(t))).collect())
}
