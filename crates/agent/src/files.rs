//! Files the analyst keeps beside the catalog (definitions, analyses and
//! their runs, pack bindings, insights, cached answers), each written whole:
//! a temporary file in the same directory, synced, renamed over the old one,
//! the directory synced — so a crash or a full disk leaves the old file or
//! the new one, never half of either.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically, creating its directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
