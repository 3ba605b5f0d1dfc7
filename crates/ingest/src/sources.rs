//! Where a workspace keeps its live sources: `<data>/connections.json`
//! beside the catalog, written whole (a temporary file, fsync, rename) and
//! readable by its owner only (mode 0600: the file may hold passwords); and
//! each source's tables as introspected (`<data>/sources/<name>.json`, names
//! and types only) for the analyst's context; snapshots of live tables
//! (`<data>/snapshots/<name>.parquet`), written whole, then loaded as tables.
//! What a source is lives in `quarry_types::sources`.

use std::io::Write;
use std::path::{Path, PathBuf};

use quarry_types::sql::quoted;
use quarry_types::{Limits, LiveTable, QueryResult, Source};

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
fn save(data: &Path, sources: &[Source]) -> Result<(), String> {
    write_whole(&path(data), &serde_json::to_vec_pretty(sources).map_err(|e| e.to_string())?)
}

/// Change the workspace's sources with `f`, holding `<data>/connections.lock`
/// from reading to writing, so that a `quarry connect` in a shell and the
/// server changing the same workspace never lose each other's change.
fn change<T>(data: &Path, f: impl FnOnce(&mut Vec<Source>) -> Result<T, String>) -> Result<T, String> {
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let lock_path = data.join("connections.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let mut all = load(data)?;
    let out = f(&mut all)?;
    save(data, &all)?;
    Ok(out)
}

/// Add `source` (replacing one of the same name) with its introspected tables.
pub fn add(data: &Path, source: &Source, tables: &[LiveTable]) -> Result<(), String> {
    change(data, |all| {
        save_tables(data, &source.name, tables)?;
        all.retain(|s| s.name != source.name);
        all.push(source.clone());
        Ok(())
    })
}

/// Remove the source `name` and what was kept of its tables; false if there was none.
pub fn remove(data: &Path, name: &str) -> Result<bool, String> {
    change(data, |all| {
        let before = all.len();
        all.retain(|s| s.name != name);
        if all.len() < before {
            remove_tables(data, name);
        }
        Ok(all.len() < before)
    })
}

fn tables_path(data: &Path, source: &str) -> PathBuf {
    data.join("sources").join(format!("{source}.json"))
}

/// Keep what `source`'s tables are (replacing what was kept).
fn save_tables(data: &Path, source: &str, tables: &[LiveTable]) -> Result<(), String> {
    write_whole(&tables_path(data, source), &serde_json::to_vec(tables).map_err(|e| e.to_string())?)
}

/// Forget what `source`'s tables were.
fn remove_tables(data: &Path, source: &str) {
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

/// Most rows a snapshot holds unless asked for more.
pub const SNAPSHOT_MAX_ROWS: usize = 5_000_000;

/// A snapshot of a live table (or of the rows `filter` picks), checked: the
/// query it runs and the name of the table it becomes (`source_table`
/// unless `name` is given).
pub fn snapshot_query(
    data: &Path,
    table: &str,
    filter: Option<&str>,
    name: Option<&str>,
) -> Result<(String, String), String> {
    let Some((source, t)) = table.split_once('.') else {
        return Err(format!("{table}: name a live table as SOURCE.TABLE"));
    };
    if !load(data)?.iter().any(|x| x.name == source) {
        return Err(format!("there is no connection '{source}'"));
    }
    let name = name.map(str::to_string).unwrap_or_else(|| format!("{source}_{t}"));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("snapshot name '{name}': use letters, digits and _"));
    }
    let filter = filter.map(str::trim).filter(|w| !w.is_empty()).map(|w| format!(" WHERE {w}")).unwrap_or_default();
    Ok((format!("SELECT * FROM {}.{}{filter}", quoted(source), quoted(t)), name))
}

/// The limits a snapshot's query runs under: room for one row more than
/// `max_rows` (to tell that it has more), half an hour.
pub fn snapshot_limits(max_rows: usize) -> Limits {
    Limits {
        max_rows: max_rows.saturating_add(1),
        max_live_rows: Limits::default().max_live_rows.max(max_rows.saturating_add(1)),
        max_result_bytes: 4 << 30,
        time: std::time::Duration::from_secs(1800),
        ..Limits::default()
    }
}

/// Write a snapshot's rows as `<data>/snapshots/<name>.parquet`, whole or
/// not at all (a temporary file renamed into place), to be loaded as the
/// table `name`. More rows than `max_rows` writes nothing.
pub fn write_snapshot(
    data: &Path,
    table: &str,
    name: &str,
    r: &QueryResult,
    max_rows: usize,
) -> Result<PathBuf, String> {
    if r.truncated || r.rows > max_rows {
        return Err(format!(
            "snapshot of {table}: more than {max_rows} rows — nothing written; pick fewer rows with a condition (--where) or allow more (--max-rows)"
        ));
    }
    let dir = data.join("snapshots");
    let path = dir.join(format!("{name}.parquet"));
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| fail(&e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(tmp.reopen().map_err(|e| fail(&e))?, r.schema.clone(), None)
        .map_err(|e| fail(&e))?;
    for b in &r.batches {
        w.write(b).map_err(|e| fail(&e))?;
    }
    w.close().map_err(|e| fail(&e))?;
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(&path).map_err(|e| fail(&e))?;
    Ok(path)
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

    /// Two writers at once (a shell's `quarry connect` and the server) lose
    /// neither's change: each holds the lock from reading to writing.
    #[test]
    fn changes_from_two_writers_at_once_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let data = data.clone();
                std::thread::spawn(move || {
                    for k in 0..40 {
                        let s = Source::parse(&format!("{who}{k}"), &format!("sqlite:/x/{who}{k}.db"), None).unwrap();
                        add(&data, &s, &[]).unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(load(&data).unwrap().len(), 80);
        assert!(remove(&data, "a3").unwrap());
        assert!(!remove(&data, "a3").unwrap());
        assert_eq!(load(&data).unwrap().len(), 79);
        assert!(!data.join("sources/a3.json").exists());
    }
}
