//! Live tables in the analyst's context: each connection's tables as they
//! were introspected (names and types, the database's row estimate and its
//! keys as a note; `quarry_ingest::sources`), shaped as catalog entries with
//! no statistics — nothing about their values, in any privacy mode. Their data version records that they were read live, and
//! when (`live@unix:…`), so answers say so and are never served from the
//! answer cache (its key holds the data versions).

use std::path::{Path, PathBuf};

use quarry_ingest::catalog::TableEntry;
use quarry_ingest::stats::{ColumnStats, TableStats};
use quarry_ingest::table::ColumnMeta;

/// The `format` of a live table's entry.
pub const LIVE: &str = "live";

/// Every live table of the workspace at `data`, as entries.
pub fn entries(data: &Path) -> Vec<TableEntry> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut out = Vec::new();
    for (source, tables) in quarry_ingest::sources::live_tables(data) {
        for t in tables {
            let columns: Vec<ColumnMeta> =
                t.columns.iter().map(|(n, d)| ColumnMeta { name: n.clone(), label: n.clone(), dtype: *d }).collect();
            let stats = columns
                .iter()
                .map(|c| ColumnStats {
                    name: c.name.clone(),
                    label: c.label.clone(),
                    dtype: c.dtype,
                    nulls: 0,
                    distinct: 0,
                    distinct_exact: false,
                    min: None,
                    max: None,
                    mean: None,
                    sum: None,
                    top: Vec::new(),
                })
                .collect();
            let notes = keys_note(&t).into_iter().collect();
            out.push(TableEntry {
                name: t.name,
                source: format!("connection {} ({})", source.name, source.kind.as_str()),
                sheet: None,
                format: LIVE.into(),
                version: 0,
                content_hash: format!("live@unix:{secs}"),
                rows: t.rows_estimate.unwrap_or(0),
                parquet: PathBuf::new(),
                columns,
                notes,
                excluded: Vec::new(),
                stats: TableStats { rows: 0, columns: stats, notes: Vec::new() },
                loaded_at: format!("unix:{secs}"),
                part: None,
                layout: None,
            });
        }
    }
    out
}

/// The table's keys as its database declares them, in one note (names only).
fn keys_note(t: &quarry_types::LiveTable) -> Option<quarry_ingest::table::Note> {
    let mut parts = Vec::new();
    if !t.primary_key.is_empty() {
        parts.push(format!("primary key ({})", t.primary_key.join(", ")));
    }
    let source = t.name.split_once('.').map_or("", |(s, _)| s);
    for (col, to) in &t.references {
        parts.push(format!("{col} refers to {source}.{to}"));
    }
    (!parts.is_empty())
        .then(|| quarry_ingest::table::Note::table(quarry_ingest::table::NoteKind::Keys, parts.join("; ")))
}
