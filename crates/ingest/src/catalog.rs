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

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, IngestError, Result};
use crate::stats::{StatsBuilder, TableStats};
use crate::table::{ColumnMeta, ExcludedRow, Note};
use crate::{prepare, IngestOptions, Progress};

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

fn cat_err(e: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        ErrorKind::Catalog,
        format!("the catalog could not be used ({e})"),
        "check that the data directory is writable and not used by an older Quarry",
    )
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tables (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    source  TEXT NOT NULL,
    sheet   TEXT NOT NULL DEFAULT '',
    format  TEXT NOT NULL,
    UNIQUE (source, sheet)
);
CREATE TABLE IF NOT EXISTS versions (
    table_id      INTEGER NOT NULL REFERENCES tables(id),
    version       INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    rows          INTEGER NOT NULL,
    parquet       TEXT NOT NULL,
    columns_json  TEXT NOT NULL,
    notes_json    TEXT NOT NULL,
    excluded_json TEXT NOT NULL,
    stats_json    TEXT NOT NULL,
    loaded_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    PRIMARY KEY (table_id, version)
);
";

/// BLAKE3 of a file's bytes, hex.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

impl Catalog {
    pub fn open(dir: &Path) -> Result<Catalog> {
        std::fs::create_dir_all(dir.join("tables"))
            .map_err(|e| IngestError::io(e).in_file(dir.display().to_string()))?;
        let conn = Connection::open(dir.join("catalog.sqlite")).map_err(cat_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(cat_err)?;
        conn.execute_batch(SCHEMA).map_err(cat_err)?;
        Ok(Catalog { dir: dir.to_path_buf(), conn })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Load a file: every table in it becomes (or stays) a catalog table.
    pub fn load(&mut self, path: &Path, opts: &IngestOptions, progress: &dyn Progress) -> Result<LoadReport> {
        let shown = path.display().to_string();
        let canon = std::fs::canonicalize(path).map_err(|e| IngestError::io(e).in_file(&shown))?;
        let source = canon.display().to_string();
        let hash = hash_file(&canon).map_err(|e| e.in_file(&shown))?;
        let existing = self.latest_for_source(&source)?;
        if !existing.is_empty() && existing.iter().all(|t| t.content_hash == hash) {
            return Ok(LoadReport {
                file: shown,
                tables: existing.into_iter().map(|t| Loaded { outcome: Outcome::Unchanged, table: t }).collect(),
                notes: Vec::new(),
            });
        }
        let prepared = prepare(path, opts, progress)?;
        let mut loaded = Vec::new();
        for p in &prepared.tables {
            let sheet = p.meta.sheet.clone().unwrap_or_default();
            let found: Option<(i64, String)> = self
                .conn
                .query_row(
                    "SELECT id, name FROM tables WHERE source = ?1 AND sheet = ?2",
                    params![source, sheet],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(cat_err)?;
            let (id, name, version, outcome) = match found {
                Some((id, name)) => {
                    let v: u32 = self
                        .conn
                        .query_row("SELECT COALESCE(MAX(version), 0) FROM versions WHERE table_id = ?1", [id], |r| {
                            r.get(0)
                        })
                        .map_err(cat_err)?;
                    let prev: Option<String> = self
                        .conn
                        .query_row(
                            "SELECT content_hash FROM versions WHERE table_id = ?1 AND version = ?2",
                            params![id, v],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(cat_err)?;
                    if prev.as_deref() == Some(hash.as_str()) {
                        let t = self.entry(&name, None)?;
                        loaded.push(Loaded { outcome: Outcome::Unchanged, table: t });
                        continue;
                    }
                    (id, name, v + 1, if v == 0 { Outcome::New } else { Outcome::NewVersion })
                }
                None => {
                    let name = self.free_name(&p.meta.name)?;
                    self.conn
                        .execute(
                            "INSERT INTO tables (name, source, sheet, format) VALUES (?1, ?2, ?3, ?4)",
                            params![name, source, sheet, p.meta.format],
                        )
                        .map_err(cat_err)?;
                    (self.conn.last_insert_rowid(), name, 1, Outcome::New)
                }
            };
            let rel = PathBuf::from("tables").join(&name).join(format!("v{version}.parquet"));
            let stats = write_parquet(p, &self.dir.join(&rel), progress).map_err(|e| e.in_file(&shown))?;
            let mut meta = p.meta.clone();
            meta.name = name.clone();
            meta.notes.extend(stats.notes.iter().cloned());
            meta.notes.extend(prepared.notes.iter().cloned());
            self.conn
                .execute(
                    "INSERT INTO versions (table_id, version, content_hash, rows, parquet, columns_json, notes_json, excluded_json, stats_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        id,
                        version,
                        hash,
                        stats.rows as i64,
                        rel.display().to_string(),
                        json(&meta.columns)?,
                        json(&meta.notes)?,
                        json(&meta.excluded)?,
                        json(&stats)?,
                    ],
                )
                .map_err(cat_err)?;
            loaded.push(Loaded { outcome, table: self.entry(&name, Some(version))? });
        }
        Ok(LoadReport { file: shown, tables: loaded, notes: prepared.notes })
    }

    fn free_name(&self, base: &str) -> Result<String> {
        let mut stmt = self.conn.prepare("SELECT name FROM tables").map_err(cat_err)?;
        let mut used: HashSet<String> =
            stmt.query_map([], |r| r.get(0)).map_err(cat_err)?.collect::<Result<_, _>>().map_err(cat_err)?;
        Ok(crate::names::unique(base.to_string(), &mut used))
    }

    fn latest_for_source(&self, source: &str) -> Result<Vec<TableEntry>> {
        let mut stmt = self.conn.prepare("SELECT name FROM tables WHERE source = ?1 ORDER BY id").map_err(cat_err)?;
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
                        v.columns_json, v.notes_json, v.excluded_json, v.stats_json, v.loaded_at
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
        })
    }

    /// The latest version of every table, by name.
    pub fn tables(&self) -> Result<Vec<TableEntry>> {
        let mut stmt = self.conn.prepare("SELECT name FROM tables ORDER BY name").map_err(cat_err)?;
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

/// Stream a prepared table into a Parquet file (written to a temporary name,
/// then renamed), profiling it on the way.
pub fn write_parquet(p: &crate::Prepared, dest: &Path, progress: &dyn Progress) -> Result<TableStats> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = dest.with_extension("parquet.tmp");
    let file = File::create(&tmp)?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let werr = |e: parquet::errors::ParquetError| {
        IngestError::new(ErrorKind::Io, format!("writing Parquet failed ({e})"), "check free disk space")
    };
    let writer = ArrowWriter::try_new(file, p.schema.clone(), Some(props)).map_err(werr)?;
    // Two stages on two threads: this one parses and builds batches, the
    // other profiles them and encodes Parquet.
    let (stats, result) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<arrow::record_batch::RecordBatch>(4);
        let meta = &p.meta;
        let consumer = s.spawn(move || -> Result<TableStats> {
            let mut writer = writer;
            let mut stats = StatsBuilder::new(meta);
            for b in rx {
                stats.update(&b);
                writer.write(&b).map_err(werr)?;
            }
            writer.close().map_err(werr)?;
            Ok(stats.finish())
        });
        let produced = p.batches(progress, &mut |b| {
            tx.send(b).map_err(|_| IngestError::new(ErrorKind::Io, "writing Parquet stopped", "check free disk space"))
        });
        drop(tx);
        let consumed =
            consumer.join().unwrap_or_else(|_| Err(IngestError::internal("the Parquet writer thread panicked")));
        (consumed, produced)
    });
    // A writer error explains a failed send better than the send itself.
    let outcome = match (stats, result) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(st), Ok(())) => Ok(st),
    };
    match outcome {
        Ok(st) => {
            std::fs::rename(&tmp, dest)?;
            Ok(st)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Profile a prepared table without writing it anywhere.
pub fn profile(p: &crate::Prepared, progress: &dyn Progress) -> Result<TableStats> {
    let mut stats = StatsBuilder::new(&p.meta);
    p.batches(progress, &mut |b| {
        stats.update(&b);
        Ok(())
    })?;
    Ok(stats.finish())
}
