//! Which files of a watched folder are ready to load: new or changed ones
//! whose size and modification time held still between two looks (so a
//! file still being copied is not read half-written), leaving out hidden
//! files, partial downloads and editors' lock files. Polling, so it works
//! the same on local disks and network shares. `quarry watch` and
//! `quarry serve --watch` load what it hands out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a folder looked like, and what was handed out.
#[derive(Debug, Default)]
pub struct Scanner {
    last_look: HashMap<PathBuf, (u64, SystemTime)>,
    handed: HashMap<PathBuf, (u64, SystemTime)>,
}

fn partial(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with("~$")
        || [".tmp", ".part", ".crdownload", "~"].iter().any(|s| name.ends_with(s))
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// The files of `dir` to load now: new or changed since handed out, and
    /// unchanged since the previous look (with `settled` false, as soon as seen).
    pub fn ready(&mut self, dir: &Path, settled: bool) -> Vec<PathBuf> {
        let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut seen: Vec<(PathBuf, (u64, SystemTime))> = read
            .filter_map(|e| e.ok())
            .filter(|e| !partial(&e.file_name().to_string_lossy()))
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                Some((e.path(), (m.len(), m.modified().ok()?)))
            })
            .collect();
        seen.sort();
        let mut out = Vec::new();
        for (path, now) in seen {
            let stable = !settled || self.last_look.get(&path) == Some(&now);
            self.last_look.insert(path.clone(), now);
            if stable && self.handed.get(&path) != Some(&now) {
                self.handed.insert(path.clone(), now);
                out.push(path);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_handed_out_once_they_hold_still_and_again_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Scanner::new();
        std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(dir.path().join("b.csv.part"), "x\n").unwrap();
        assert!(s.ready(dir.path(), true).is_empty(), "seen once: maybe still being copied");
        assert_eq!(s.ready(dir.path(), true), [dir.path().join("a.csv")]);
        assert!(s.ready(dir.path(), true).is_empty(), "handed out already");
        std::fs::write(dir.path().join("a.csv"), "x\n1\n2\n").unwrap();
        assert!(s.ready(dir.path(), true).is_empty());
        assert_eq!(s.ready(dir.path(), true), [dir.path().join("a.csv")], "changed, then still");
    }
}
