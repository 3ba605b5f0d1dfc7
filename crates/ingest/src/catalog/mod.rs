//! The data directory: each table version as Parquet, and a SQLite catalog of
//! names, sources, labels, schemas, row counts, content hashes and notes.
//!
//! Layout of a data directory (default `./quarry-data`):
//! ```text
//! catalog.sqlite
//! tables/<name>/v<N>.parquet
//! ```
//! A table is identified by its source file (canonical path) and sheet. Its
//! data version is the BLAKE3 hash of the source bytes: loading an unchanged
//! file is a no-op, a changed file becomes version N+1, and old versions stay.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, IngestError, Result};
use crate::stats::TableStats;
use crate::table::{ColumnMeta, ExcludedRow, Note};
use crate::{prepare_writing, IngestOptions, LayoutChoice, Progress};

pub const DEFAULT_DIR: &str = "quarry-data";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub source: String,
    pub sheet: Option<String>,
    pub format: String,
    pub version: u32,
    /// BLAKE3 of the source file: the data version.
    pub content_hash: String,
    pub rows: u64,
    pub parquet: PathBuf,
    pub columns: Vec<ColumnMeta>,
    pub notes: Vec<Note>,
    pub excluded: Vec<ExcludedRow>,
    pub stats: TableStats,
    pub loaded_at: String,
    /// Which table of its sheet this is, when the sheet holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Where on the sheet it came from and how its header was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<crate::SourceLayout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    New,
    NewVersion,
    Unchanged,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loaded {
    pub outcome: Outcome,
    pub table: TableEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub file: String,
    pub tables: Vec<Loaded>,
    /// Notes about the file as a whole (skipped sheets, misleading extension).
    pub notes: Vec<Note>,
}

pub struct Catalog {
    dir: PathBuf,
    conn: Connection,
}

/// Where the next version of a table goes.
struct Target {
    /// The table's row, when it exists.
    id: Option<i64>,
    name: String,
    version: u32,
    previous_hash: Option<String>,
}

/// Where a table sits in its file: sheet and part.
struct Place<'a> {
    source: &'a str,
    sheet: &'a str,
    part: &'a str,
}

/// What one table version's rows hold.
struct Version<'a> {
    place: Place<'a>,
    format: &'a str,
    hash: &'a str,
    meta: &'a crate::TableMeta,
}

/// A named point in a load where tests can stop the process as a crash
/// would: when `QUARRY_FAILPOINT` names it, the process kills itself with
/// SIGKILL there (the launcher passes the variable on to workers). Points:
/// `load:reading` (a table being written while its file is read, in
/// `tables/.reading`), `load:before_parquet`, `load:parquet_written`, `load:renamed` (file in
/// place, transaction not committed), `load:committed`.
pub fn failpoint(name: &str) {
    if std::env::var_os("QUARRY_FAILPOINT").is_some_and(|v| v == name) {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

mod schema;
use schema::{migrate, SCHEMA};
mod write;
pub use write::{profile, write_parquet_tmp, TableWriter, Written};

fn cat_err(e: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        ErrorKind::Catalog,
        format!("the catalog could not be used ({e})"),
        "check that the data directory is writable and not used by an older Quarry",
    )
}

/// The data version: it follows the bytes and the layout chosen for them.
fn version_hash(file_hash: &str, choices: &[LayoutChoice]) -> Result<String> {
    if choices.is_empty() {
        return Ok(file_hash.to_string());
    }
    Ok(blake3::hash(format!("{file_hash}{}", json(&choices)?).as_bytes()).to_hex().to_string())
}

/// BLAKE3 of a file's bytes, hex.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(crate::detect::open_regular(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

impl Catalog {
    pub fn open(dir: &Path) -> Result<Catalog> {
        std::fs::create_dir_all(dir.join("tables"))
            .map_err(|e| IngestError::io(e).in_file(dir.display().to_string()))?;
        let conn = Connection::open(dir.join("catalog.sqlite")).map_err(cat_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(cat_err)?;
        let mut conn = conn;
        if conn
            .query_row("SELECT 1 FROM sqlite_master WHERE name = 'tables'", [], |_| Ok(()))
            .optional()
            .map_err(cat_err)?
            .is_some()
        {
            migrate(&mut conn)?;
        }
        conn.execute_batch(SCHEMA).map_err(cat_err)?;
        Ok(Catalog { dir: dir.to_path_buf(), conn })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Load a file: every table in it becomes (or stays) a catalog table.
    ///
    /// Atomic per table version: the Parquet file is written under a
    /// temporary name first; then one transaction adds the table's row (for
    /// a new table) and its version's row, the file is renamed into place,
    /// and the transaction commits. A load stopped anywhere — an error, a
    /// kill -9, a full disk — leaves the catalog as it was; what it leaves
    /// on disk (a `*.tmp`, an unreferenced Parquet file) is removed by
    /// [`Catalog::repair`]. Named failure points ([`failpoint`]) let tests
    /// kill the process between the steps.
    pub fn load(&mut self, path: &Path, opts: &IngestOptions, progress: &dyn Progress) -> Result<LoadReport> {
        self.load_with(path, opts, None, progress)
    }

    /// [`Catalog::load`], with a layout a person chose for the file (a
    /// sheet of it). The choice is stored with the source and applied to
    /// every later version; a choice that leaves everything to the
    /// evidence clears the stored one for its sheet. Tables the new
    /// layout no longer makes are retired: hidden, their versions kept.
    pub fn load_with(
        &mut self,
        path: &Path,
        opts: &IngestOptions,
        choice: Option<&LayoutChoice>,
        progress: &dyn Progress,
    ) -> Result<LoadReport> {
        let shown = path.display().to_string();
        let canon = std::fs::canonicalize(path).map_err(|e| IngestError::io(e).in_file(&shown))?;
        let source = canon.display().to_string();
        let _loading = self.lock(false)?;
        let mut choices = self.layouts(&source)?;
        if let Some(c) = choice {
            choices.retain(|old| old.sheet != c.sheet);
            if !c.is_auto() {
                choices.push(c.clone());
            }
        }
        let existing = self.latest_for_source(&source)?;
        // A large text file's table is written here while it is read; a
        // `*.tmp` left by a crash goes with `repair`, like any other.
        let scratch = self.dir.join("tables").join(".reading");
        let (hash, prepared) = if existing.is_empty() {
            // Nothing of this file is loaded, so nothing can be skipped: its
            // bytes are hashed on a thread of their own while it is read.
            let (hashed, prepared) = std::thread::scope(|s| {
                let hasher = s.spawn(|| hash_file(&canon));
                let prepared = prepare_writing(path, opts, &choices, &scratch, progress);
                (hasher.join().unwrap_or_else(|_| Err(IngestError::internal("the hashing thread panicked"))), prepared)
            });
            (version_hash(&hashed.map_err(|e| e.in_file(&shown))?, &choices)?, prepared?)
        } else {
            let hash = version_hash(&hash_file(&canon).map_err(|e| e.in_file(&shown))?, &choices)?;
            if existing.iter().all(|t| t.content_hash == hash) {
                return Ok(LoadReport {
                    file: shown,
                    tables: existing.into_iter().map(|t| Loaded { outcome: Outcome::Unchanged, table: t }).collect(),
                    notes: Vec::new(),
                });
            }
            (hash, prepare_writing(path, opts, &choices, &scratch, progress)?)
        };
        let mut loaded = Vec::new();
        for p in &prepared.tables {
            loaded.push(self.load_table(p, &source, &hash, &prepared.notes, &shown, progress)?);
        }
        if choice.is_some() {
            self.settle_layout(&source, &choices, &loaded)?;
        }
        Ok(LoadReport { file: shown, tables: loaded, notes: prepared.notes })
    }

    /// One prepared table into a new version (or unchanged).
    fn load_table(
        &mut self,
        p: &crate::Prepared,
        source: &str,
        hash: &str,
        file_notes: &[Note],
        shown: &str,
        progress: &dyn Progress,
    ) -> Result<Loaded> {
        let sheet = p.meta.sheet.clone().unwrap_or_default();
        let part = p.meta.part.clone().unwrap_or_default();
        let place = Place { source, sheet: &sheet, part: &part };
        let target = self.target(&place, &p.meta.name)?;
        if target.previous_hash.as_deref() == Some(hash) {
            return Ok(Loaded { outcome: Outcome::Unchanged, table: self.entry(&target.name, None)? });
        }
        failpoint("load:before_parquet");
        let tmp = self.dir.join("tables").join(&target.name).join(format!("v{}.parquet.tmp", target.version));
        let stats = write_parquet_tmp(p, &tmp, progress).map_err(|e| e.in_file(shown))?;
        failpoint("load:parquet_written");
        let mut meta = p.meta.clone();
        meta.notes.extend(stats.notes.iter().cloned());
        meta.notes.extend(file_notes.iter().cloned());
        let version = Version { place, format: &p.meta.format, hash, meta: &meta };
        let (name, v, outcome) = match self.commit(target, &tmp, &version, &stats) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.in_file(shown));
            }
        };
        failpoint("load:committed");
        Ok(Loaded { outcome, table: self.entry(&name, Some(v))? })
    }

    /// After a load with a new layout choice: store the choices, and retire
    /// the source's tables the new layout did not make.
    fn settle_layout(&mut self, source: &str, choices: &[LayoutChoice], loaded: &[Loaded]) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(cat_err)?;
        if choices.is_empty() {
            tx.execute("DELETE FROM layouts WHERE source = ?1", [source]).map_err(cat_err)?;
        } else {
            tx.execute(
                "INSERT INTO layouts (source, choices_json) VALUES (?1, ?2)
                 ON CONFLICT (source) DO UPDATE SET choices_json = excluded.choices_json",
                params![source, json(&choices)?],
            )
            .map_err(cat_err)?;
        }
        let keep: Vec<&str> = loaded.iter().map(|l| l.table.name.as_str()).collect();
        let mut stmt = tx.prepare("SELECT name FROM tables WHERE source = ?1 AND retired = 0").map_err(cat_err)?;
        let names: Vec<String> = stmt
            .query_map([source], |r| r.get(0))
            .map_err(cat_err)?
            .collect::<std::result::Result<_, _>>()
            .map_err(cat_err)?;
        drop(stmt);
        for n in names.iter().filter(|n| !keep.contains(&n.as_str())) {
            tx.execute("UPDATE tables SET retired = 1 WHERE name = ?1", [n]).map_err(cat_err)?;
        }
        tx.commit().map_err(cat_err)
    }

    /// The layout choices stored for a source file (canonical path).
    pub fn layouts(&self, source: &str) -> Result<Vec<LayoutChoice>> {
        let found: Option<String> = self
            .conn
            .query_row("SELECT choices_json FROM layouts WHERE source = ?1", [source], |r| r.get(0))
            .optional()
            .map_err(cat_err)?;
        found.map(|j| parse(&j)).transpose().map(Option::unwrap_or_default)
    }

    /// Where a table of `source`/`sheet` goes: its existing name and next
    /// version, or a free name for a new table (nothing is written yet).
    fn target(&self, place: &Place<'_>, base: &str) -> Result<Target> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT id, name FROM tables WHERE source = ?1 AND sheet = ?2 AND part = ?3",
                params![place.source, place.sheet, place.part],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(cat_err)?;
        let Some((id, name)) = found else {
            return Ok(Target { id: None, name: self.free_name(base)?, version: 1, previous_hash: None });
        };
        let (v, prev): (u32, Option<String>) = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0), (SELECT content_hash FROM versions WHERE table_id = ?1 ORDER BY version DESC LIMIT 1)
                 FROM versions WHERE table_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(cat_err)?;
        Ok(Target { id: Some(id), name, version: v + 1, previous_hash: prev })
    }

    /// One transaction: the table's row (if new) and the version's row;
    /// the Parquet file is renamed into place before the commit.
    fn commit(&mut self, t: Target, tmp: &Path, v: &Version<'_>, stats: &TableStats) -> Result<(String, u32, Outcome)> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(cat_err)?;
        let id = match t.id {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO tables (name, source, sheet, format, part) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![t.name, v.place.source, v.place.sheet, v.format, v.place.part],
                )
                .map_err(cat_err)?;
                tx.last_insert_rowid()
            }
        };
        tx.execute("UPDATE tables SET retired = 0 WHERE id = ?1", [id]).map_err(cat_err)?;
        let rel = PathBuf::from("tables").join(&t.name).join(format!("v{}.parquet", t.version));
        tx.execute(
            "INSERT INTO versions (table_id, version, content_hash, rows, parquet, columns_json, notes_json, excluded_json, stats_json, layout_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                t.version,
                v.hash,
                stats.rows as i64,
                rel.display().to_string(),
                json(&v.meta.columns)?,
                json(&v.meta.notes)?,
                json(&v.meta.excluded)?,
                json(stats)?,
                json(&v.meta.layout)?,
            ],
        )
        .map_err(cat_err)?;
        let dest = self.dir.join(&rel);
        std::fs::rename(tmp, &dest)?;
        failpoint("load:renamed");
        if let Err(e) = tx.commit() {
            let _ = std::fs::remove_file(&dest);
            return Err(cat_err(e));
        }
        let outcome = if t.version == 1 { Outcome::New } else { Outcome::NewVersion };
        Ok((t.name, t.version, outcome))
    }

    /// Take the data directory's load lock: shared while loading (several
    /// loads may run at once), exclusive for [`Catalog::repair`], which must
    /// not remove a running load's temporary file. `None` when the
    /// exclusive lock is held elsewhere.
    fn lock(&self, exclusive: bool) -> Result<Option<File>> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("catalog.lock"))
            .map_err(|e| IngestError::io(e).in_file(self.dir.display().to_string()))?;
        if exclusive {
            return Ok(f.try_lock().ok().map(|()| f));
        }
        f.lock_shared().map_err(IngestError::io)?;
        Ok(Some(f))
    }

    /// Clear what an interrupted load left behind: table rows without a
    /// version (from older Quarry versions), temporary Parquet files, and
    /// Parquet files no version refers to. Does nothing while a load runs
    /// (another process holds the load lock). Returns what it removed, for
    /// a log line.
    pub fn repair(&mut self) -> Result<Vec<String>> {
        let Some(_lock) = self.lock(true)? else { return Ok(Vec::new()) };
        let mut done = Vec::new();
        let dangling = self
            .conn
            .execute("DELETE FROM tables WHERE id NOT IN (SELECT table_id FROM versions)", [])
            .map_err(cat_err)?;
        if dangling > 0 {
            done.push(format!("{dangling} table entries without data"));
        }
        let mut stmt = self.conn.prepare("SELECT parquet FROM versions").map_err(cat_err)?;
        let known: HashSet<PathBuf> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(cat_err)?
            .filter_map(|r| r.ok())
            .map(|p| self.dir.join(p))
            .collect();
        drop(stmt);
        let tables = self.dir.join("tables");
        for d in std::fs::read_dir(&tables).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let p = f.path();
                let leftover = p.extension().is_some_and(|e| e == "tmp")
                    || (p.extension().is_some_and(|e| e == "parquet") && !known.contains(&p));
                if leftover && std::fs::remove_file(&p).is_ok() {
                    done.push(format!("{}", p.strip_prefix(&self.dir).unwrap_or(&p).display()));
                }
            }
            let _ = std::fs::remove_dir(d.path()); // only if empty
        }
        Ok(done)
    }

    fn free_name(&self, base: &str) -> Result<String> {
        let mut stmt = self.conn.prepare("SELECT name FROM tables").map_err(cat_err)?;
        let mut used: HashSet<String> =
            stmt.query_map([], |r| r.get(0)).map_err(cat_err)?.collect::<Result<_, _>>().map_err(cat_err)?;
        Ok(crate::names::unique(base.to_string(), &mut used))
    }

    fn latest_for_source(&self, source: &str) -> Result<Vec<TableEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM tables WHERE source = ?1 AND retired = 0 AND id IN (SELECT table_id FROM versions) ORDER BY id")
            .map_err(cat_err)?;
        let names: Vec<String> =
            stmt.query_map([source], |r| r.get(0)).map_err(cat_err)?.collect::<Result<_, _>>().map_err(cat_err)?;
        names.iter().map(|n| self.entry(n, None)).collect()
    }

    /// A table by name; the latest version unless one is given.
    pub fn entry(&self, name: &str, version: Option<u32>) -> Result<TableEntry> {
        let row = self
            .conn
            .query_row(
                "SELECT t.name, t.source, t.sheet, t.format, v.version, v.content_hash, v.rows, v.parquet,
                        v.columns_json, v.notes_json, v.excluded_json, v.stats_json, v.loaded_at, t.part, v.layout_json
                 FROM tables t JOIN versions v ON v.table_id = t.id
                 WHERE t.name = ?1 AND (?2 IS NULL OR v.version = ?2)
                 ORDER BY v.version DESC LIMIT 1",
                params![name, version],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, String>(10)?,
                        r.get::<_, String>(11)?,
                        r.get::<_, String>(12)?,
                        r.get::<_, String>(13)?,
                        r.get::<_, String>(14)?,
                    ))
                },
            )
            .optional()
            .map_err(cat_err)?;
        let Some(r) = row else {
            return Err(IngestError::new(
                ErrorKind::Catalog,
                format!("no table named '{name}'{}", version.map(|v| format!(" with version {v}")).unwrap_or_default()),
                "run `quarry tables` to list the tables",
            ));
        };
        Ok(TableEntry {
            name: r.0,
            source: r.1,
            sheet: (!r.2.is_empty()).then_some(r.2),
            format: r.3,
            version: r.4,
            content_hash: r.5,
            rows: r.6 as u64,
            parquet: self.dir.join(r.7),
            columns: parse(&r.8)?,
            notes: parse(&r.9)?,
            excluded: parse(&r.10)?,
            stats: parse(&r.11)?,
            loaded_at: r.12,
            part: (!r.13.is_empty()).then_some(r.13),
            layout: parse(&r.14)?,
        })
    }

    /// The latest version of every table, by name.
    pub fn tables(&self) -> Result<Vec<TableEntry>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name FROM tables WHERE retired = 0 AND id IN (SELECT table_id FROM versions) ORDER BY name",
            )
            .map_err(cat_err)?;
        let names: Vec<String> =
            stmt.query_map([], |r| r.get(0)).map_err(cat_err)?.collect::<Result<_, _>>().map_err(cat_err)?;
        names.iter().map(|n| self.entry(n, None)).collect()
    }

    /// Every version of a table, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>> {
        let mut stmt = self
            .conn
            .prepare("SELECT v.version FROM versions v JOIN tables t ON t.id = v.table_id WHERE t.name = ?1 ORDER BY v.version")
            .map_err(cat_err)?;
        let v = stmt.query_map([name], |r| r.get(0)).map_err(cat_err)?.collect::<Result<_, _>>().map_err(cat_err)?;
        Ok(v)
    }

    /// Changes whenever another connection (another process) commits to the
    /// catalog: a cheap check for whether tables must be registered again.
    pub fn data_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(cat_err)
    }
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| IngestError::internal(format!("serialising catalog data: {e}")))
}

fn parse<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(cat_err)
}
