//! What a database's own catalog says of its tables, read once when a
//! source is connected: row estimates and primary and foreign keys, for
//! the analyst to join and size by (names and counts only — no values).
//! Best effort: a catalog that cannot be read leaves them unknown.

use std::collections::HashMap;

use quarry_types::{ColumnType, LiveTable, Source, SourceKind};

/// Per table (by its name in the database): what its catalog says.
#[derive(Default)]
pub(super) struct Facts {
    pub rows: HashMap<String, u64>,
    pub primary: HashMap<String, Vec<String>>,
    pub references: HashMap<String, Vec<(String, String)>>,
    /// Columns as the table declares them, where the provider learns them
    /// from rows (SQLite), so that a table with no rows still has columns.
    pub declared: HashMap<String, Vec<(String, ColumnType)>>,
}

impl Facts {
    /// `t` (named `source.table`) with what is known of `table`.
    pub fn apply(&self, t: &mut LiveTable, table: &str) {
        t.rows_estimate = self.rows.get(table).copied();
        t.primary_key = self.primary.get(table).cloned().unwrap_or_default();
        t.references = self.references.get(table).cloned().unwrap_or_default();
        if t.columns.is_empty() {
            t.columns = self.declared.get(table).cloned().unwrap_or_default();
        }
    }

    /// One key column: of the primary key, or (with what it refers to) of a foreign key.
    pub fn key(&mut self, table: String, column: String, foreign: Option<(String, String)>) {
        match foreign {
            Some((t, c)) => self.references.entry(table).or_default().push((column, format!("{t}.{c}"))),
            None => self.primary.entry(table).or_default().push(column),
        }
    }
}

/// A literal for SQL text (names from the URL, not from generated code).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The facts of `s`'s tables, or none where its catalog cannot be read
/// within the connect timeout.
pub(super) async fn read(s: &Source, limits: &quarry_types::Limits) -> Facts {
    let got = async {
        match s.kind {
            SourceKind::Postgres => postgres(s, limits).await,
            SourceKind::Mysql => super::mysql::facts(s).await,
            SourceKind::Sqlite => sqlite(s),
        }
    };
    match tokio::time::timeout(super::CONNECT_TIMEOUT, got).await {
        Ok(Ok(f)) => f,
        _ => Facts::default(),
    }
}

async fn postgres(s: &Source, limits: &quarry_types::Limits) -> Result<Facts, String> {
    let (pool, schema) = super::postgres_pool(s, limits).await?;
    let c = pool.connect_direct().await.map_err(|e| e.to_string())?;
    let mut f = Facts::default();
    let rows = format!(
        "SELECT c.relname::text, c.reltuples::float8 FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = {} AND c.relkind IN ('r', 'p', 'm')",
        literal(&schema)
    );
    for r in c.conn.query(rows.as_str(), &[]).await.map_err(|e| e.to_string())? {
        let (t, n): (String, f64) = (r.get(0), r.get(1));
        if n >= 0.0 {
            f.rows.insert(t, n as u64);
        }
    }
    let keys = format!(
        "SELECT tc.table_name::text, kcu.column_name::text, ccu.table_name::text, ccu.column_name::text \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage kcu \
           ON kcu.constraint_name = tc.constraint_name AND kcu.constraint_schema = tc.constraint_schema \
         LEFT JOIN information_schema.constraint_column_usage ccu \
           ON tc.constraint_type = 'FOREIGN KEY' AND ccu.constraint_name = tc.constraint_name \
          AND ccu.constraint_schema = tc.constraint_schema \
         WHERE tc.table_schema = {} AND tc.constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') \
         ORDER BY tc.table_name, kcu.ordinal_position",
        literal(&schema)
    );
    for r in c.conn.query(keys.as_str(), &[]).await.map_err(|e| e.to_string())? {
        let (t, col): (String, String) = (r.get(0), r.get(1));
        let to: (Option<String>, Option<String>) = (r.get(2), r.get(3));
        f.key(t, col, to.0.zip(to.1));
    }
    Ok(f)
}

/// SQLite keeps no row estimate: tables are counted, for a second at most
/// (a count still running then is interrupted).
fn sqlite(s: &Source) -> Result<Facts, String> {
    use rusqlite::OpenFlags;
    let path = s.sqlite_path()?;
    let c = rusqlite::Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let q = |e: rusqlite::Error| e.to_string();
    let started = std::time::Instant::now();
    // A count still running after a second is interrupted (and no other starts).
    let (handle, done) = (c.get_interrupt_handle(), std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let finished = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if !finished.load(std::sync::atomic::Ordering::SeqCst) {
            handle.interrupt();
        }
    });
    let mut names =
        c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").map_err(q)?;
    let tables: Vec<String> = names.query_map([], |r| r.get(0)).map_err(q)?.filter_map(Result::ok).collect();
    let mut f = Facts::default();
    for t in &tables {
        if started.elapsed() < std::time::Duration::from_secs(1) {
            let quoted = quarry_types::sql::quoted(t);
            if let Ok(n) = c.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get::<_, i64>(0)) {
                f.rows.insert(t.clone(), n.max(0) as u64);
            }
        }
        let mut cols = c.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid").map_err(q)?;
        let declared = cols.query_map([t], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(q)?;
        let declared = declared.filter_map(Result::ok).map(|(n, ty)| (n, sqlite_type(&ty))).collect();
        f.declared.insert(t.clone(), declared);
        let mut pk = c.prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk").map_err(q)?;
        for col in pk.query_map([t], |r| r.get::<_, String>(0)).map_err(q)?.filter_map(Result::ok) {
            f.key(t.clone(), col, None);
        }
        let mut fk = c.prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)").map_err(q)?;
        let refs =
            fk.query_map([t], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)));
        for (col, to_table, to_col) in refs.map_err(q)?.filter_map(Result::ok) {
            // No column named: the referred table's primary key.
            f.key(t.clone(), col, Some((to_table, to_col.unwrap_or_else(|| "rowid".into()))));
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(f)
}

/// A column's declared SQLite type as a column type, by SQLite's own
/// affinity rules (`INT` anywhere: integer; `CHAR`, `CLOB`, `TEXT`: text;
/// `REAL`, `FLOA`, `DOUB`: float), with dates and booleans by name.
fn sqlite_type(declared: &str) -> ColumnType {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        ColumnType::Integer
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|w| t.contains(w)) || t.is_empty() || t.contains("BLOB") {
        ColumnType::Text
    } else if t.contains("BOOL") {
        ColumnType::Boolean
    } else if t.contains("DATETIME") || t.contains("TIMESTAMP") {
        ColumnType::DateTime
    } else if t.contains("DATE") {
        ColumnType::Date
    } else {
        ColumnType::Float
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_sqlite_types_follow_its_affinity_rules() {
        for (declared, want) in [
            ("INTEGER", ColumnType::Integer),
            ("bigint", ColumnType::Integer),
            ("VARCHAR(20)", ColumnType::Text),
            ("", ColumnType::Text),
            ("REAL", ColumnType::Float),
            ("NUMERIC(10,2)", ColumnType::Float),
            ("BOOLEAN", ColumnType::Boolean),
            ("DATE", ColumnType::Date),
            ("DATETIME", ColumnType::DateTime),
        ] {
            assert_eq!(sqlite_type(declared), want, "{declared}");
        }
    }
}
