//! The catalog's SQLite schema, and the migration of catalogs made by an
//! older Quarry.

use rusqlite::Connection;

use super::cat_err;
use crate::error::Result;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tables (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    source  TEXT NOT NULL,
    sheet   TEXT NOT NULL DEFAULT '',
    format  TEXT NOT NULL,
    part    TEXT NOT NULL DEFAULT '',
    retired INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, sheet, part)
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
    layout_json   TEXT NOT NULL DEFAULT 'null',
    PRIMARY KEY (table_id, version)
);
CREATE TABLE IF NOT EXISTS layouts (
    source       TEXT PRIMARY KEY,
    choices_json TEXT NOT NULL
);
";

/// Bring a catalog made by an older Quarry up to [`SCHEMA`]: tables gain
/// `part` (several tables per sheet) and `retired`, in one transaction
/// (the unique key changes, so the table is rebuilt); versions gain
/// `layout_json`.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let has = has_column;
    if !has(conn, "tables", "part")? {
        // The rebuild drops the table `versions` refers to: foreign keys are
        // switched off for it (outside the transaction, as SQLite requires)
        // and restored after.
        let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).map_err(cat_err)?;
        conn.execute_batch("PRAGMA foreign_keys = OFF").map_err(cat_err)?;
        let rebuilt = rebuild_tables(conn);
        conn.execute_batch(&format!("PRAGMA foreign_keys = {fk}")).map_err(cat_err)?;
        rebuilt?;
    }
    if !has(conn, "versions", "layout_json")? {
        let _ = conn.execute_batch("ALTER TABLE versions ADD COLUMN layout_json TEXT NOT NULL DEFAULT 'null'");
    }
    Ok(())
}

fn has_column(conn: &Connection, table: &str, col: &str) -> Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})")).map_err(cat_err)?;
    let cols: Vec<String> =
        stmt.query_map([], |r| r.get(1)).map_err(cat_err)?.collect::<std::result::Result<_, _>>().map_err(cat_err)?;
    Ok(cols.iter().any(|c| c == col))
}

fn rebuild_tables(conn: &mut Connection) -> Result<()> {
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(cat_err)?;
        if !has_column(&tx, "tables", "part")? {
            tx.execute_batch(
                "CREATE TABLE tables_new (
                    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
                    sheet TEXT NOT NULL DEFAULT '', format TEXT NOT NULL, part TEXT NOT NULL DEFAULT '',
                    retired INTEGER NOT NULL DEFAULT 0, UNIQUE (source, sheet, part));
                 INSERT INTO tables_new (id, name, source, sheet, format) SELECT id, name, source, sheet, format FROM tables;
                 DROP TABLE tables;
                 ALTER TABLE tables_new RENAME TO tables;",
            )
            .map_err(cat_err)?;
        }
        tx.commit().map_err(cat_err)?;
    }
    Ok(())
}
