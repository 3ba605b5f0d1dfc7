//! Where a workspace keeps its live sources: `<data>/connections.json`
//! beside the catalog, written whole (a temporary file, fsync, rename) and
//! readable by its owner only (mode 0600: the file may hold passwords); and
//! each source's tables as introspected (`<data>/sources/<name>.json`, names
//! and types only) for the analyst's context.
//! What a source is lives in `quarry_types::sources`.

use std::io::Write;
use std::path::{Path, PathBuf};

use quarry_types::{LiveTable, Source};

pub fn path(data: &Path) -> PathBuf {
    data.join(quarry_types::sources::CONNECTIONS_FILE)
}

/// The workspace's sources (none when the file does not exist).
pub fn load(data: &Path) -> Result<Vec<Source>, String> {
    let p = path(data);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// `bytes` as the whole of `target`: a temporary file beside it (tempfile
/// creates it with mode 0600), fsync, rename, directory fsync.
fn write_whole(target: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = target.parent().ok_or_else(|| format!("{}: no directory", target.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(|e| e.to_string())?;
    tmp.persist(target).map_err(|e| e.to_string())?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replace the workspace's sources.
pub fn save(data: &Path, sources: &[Source]) -> Result<(), String> {
    write_whole(&path(data), &serde_json::to_vec_pretty(sources).map_err(|e| e.to_string())?)
}

fn tables_path(data: &Path, source: &str) -> PathBuf {
    data.join("sources").join(format!("{source}.json"))
}

/// Keep what `source`'s tables are (replacing what was kept).
pub fn save_tables(data: &Path, source: &str, tables: &[LiveTable]) -> Result<(), String> {
    write_whole(&tables_path(data, source), &serde_json::to_vec(tables).map_err(|e| e.to_string())?)
}

/// Forget what `source`'s tables were.
pub fn remove_tables(data: &Path, source: &str) {
    let _ = std::fs::remove_file(tables_path(data, source));
}

/// The tables of every source the workspace has, as last introspected.
pub fn live_tables(data: &Path) -> Vec<(Source, Vec<LiveTable>)> {
    load(data)
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let t = std::fs::read(tables_path(data, &s.name))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            (s, t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sources_are_kept_for_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let s = Source::parse("dhis", "postgres://ro:pw@h/d", None).unwrap();
        save(dir.path(), std::slice::from_ref(&s)).unwrap();
        assert_eq!(load(dir.path()).unwrap(), [s]);
        let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
