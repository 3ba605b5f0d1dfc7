//! Live sources in the session: each connection of the workspace
//! (`quarry_ingest::sources`) is a schema named after it, its tables
//! `TableProvider`s from `datafusion-table-providers` that push projection,
//! filters and limits down to the database as SQL (DataFusion's unparser),
//! so `SELECT state, sum(x) FROM dhis.t WHERE y = 1` fetches only what it
//! needs. Read-only by construction: the guard admits one read-only query;
//! PostgreSQL sessions start with `default_transaction_read_only=on` and a
//! `statement_timeout`; SQLite files are opened read-only (`mode=ro`, and
//! none of the provider's own setup, which would switch the file to WAL).
//! Only DataFusion's functions plan, so the database's own escape hatches
//! (`pg_read_file`, `lo_export`, `load_extension`, …) cannot be named.
//! A source that cannot be reached is a schema whose tables say so.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::prelude::SessionContext;
use datafusion_table_providers::common::DatabaseSchemaProvider;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::sqlitepool::SqliteConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::{JoinPushDown, Mode};
use datafusion_table_providers::util::secrets::to_secret_map;
use quarry_types::{ColumnType, Limits, LiveTable, Source, SourceKind, TableInfo};

/// Why a source could not be used, for people: what failed, never the password.
fn explain(s: &Source, e: &str) -> String {
    let mut msg = e.to_string();
    if let Ok(Some(pw)) = s.server().map(|a| a.password) {
        if !pw.is_empty() {
            msg = msg.replace(&pw, "***");
        }
    }
    let low = msg.to_lowercase();
    let at = s.server().map(|a| format!("{}:{}", a.host, a.port.unwrap_or(5432))).unwrap_or_default();
    let what = if low.contains("password authentication failed") || low.contains("authentication failed") {
        let user = s.server().map(|a| a.user).unwrap_or_default();
        format!("authentication failed for user {user}: check the user and password")
    } else if low.contains("does not exist") && low.contains("database") {
        let db = s.server().map(|a| a.database).unwrap_or_default();
        format!("database {db} does not exist on {at}")
    } else if low.contains("no encryption") || low.contains("ssl") && low.contains("required") {
        format!("{at} requires TLS: add ?sslmode=require to the URL")
    } else if low.contains("connection refused")
        || low.contains("cannot connect")
        || low.contains("failed to connect")
        || low.contains("timed out")
        || low.contains("no route")
        || low.contains("failed to lookup")
        || low.contains("error connecting")
    {
        format!("host unreachable: {at} did not accept a connection")
    } else if low.contains("unable to open database file") {
        format!("cannot open {} (read-only): check that the file exists", s.sqlite_path().unwrap_or_default())
    } else {
        msg.clone()
    };
    format!("connection {}: {what}", s.name)
}

/// An error with every cause under it (drivers put the server's words in
/// the causes: "db error" → "password authentication failed for user …").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let m = c.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cause = c.source();
    }
    out
}

/// The file as an SQLite URI that opens it read-only.
fn read_only_uri(path: &str) -> String {
    let escaped: String = path
        .chars()
        .map(|c| match c {
            '%' => "%25".to_string(),
            '?' => "%3f".to_string(),
            '#' => "%23".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("file:{escaped}?mode=ro")
}

/// How long reaching a source may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The source's tables as a schema provider (connecting, listing tables).
async fn connect(s: &Source, limits: &Limits) -> Result<Arc<dyn SchemaProvider>, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect_now(s, limits)).await {
        Ok(r) => r,
        Err(_) => Err(format!("connection {}: host unreachable: no answer in {} s", s.name, CONNECT_TIMEOUT.as_secs())),
    }
}

async fn connect_now(s: &Source, limits: &Limits) -> Result<Arc<dyn SchemaProvider>, String> {
    match s.kind {
        SourceKind::Postgres => {
            let a = s.server()?;
            let mut params = std::collections::HashMap::from([
                ("host".to_string(), a.host.clone()),
                ("port".to_string(), a.port.unwrap_or(5432).to_string()),
                ("user".to_string(), a.user.clone()),
                ("db".to_string(), a.database.clone()),
                ("sslmode".to_string(), "prefer".to_string()),
                (
                    "options".to_string(),
                    format!(
                        "-c default_transaction_read_only=on -c statement_timeout={}",
                        limits.time.as_millis().max(1)
                    ),
                ),
            ]);
            if let Some(p) = &a.password {
                params.insert("pass".into(), p.clone());
            }
            let mut schema = "public".to_string();
            for (k, v) in &a.options {
                match k.as_str() {
                    "sslmode" | "sslrootcert" => {
                        params.insert(k.clone(), v.clone());
                    }
                    "schema" => schema = v.clone(),
                    other => return Err(format!("connection {}: unknown URL option '{other}'", s.name)),
                }
            }
            let pool = PostgresConnectionPool::new(to_secret_map(params)).await.map_err(|e| explain(s, &chain(&e)))?;
            let p =
                DatabaseSchemaProvider::try_new(schema, Arc::new(pool)).await.map_err(|e| explain(s, &chain(&*e)))?;
            Ok(Arc::new(p))
        }
        SourceKind::Sqlite => {
            let path = s.sqlite_path()?;
            if !std::path::Path::new(&path).is_file() {
                return Err(format!("connection {}: no SQLite file at {path}", s.name));
            }
            let pool = SqliteConnectionPool::new(
                &read_only_uri(&path),
                Mode::File,
                JoinPushDown::Disallow,
                Vec::new(),
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| explain(s, &chain(&*e)))?;
            let p = DatabaseSchemaProvider::try_new("main".into(), Arc::new(pool))
                .await
                .map_err(|e| explain(s, &chain(&*e)))?;
            Ok(Arc::new(p))
        }
    }
}

/// Connect to `s` and describe its tables (what `quarry connect` checks
/// first, and keeps for the analyst's context).
pub async fn test(s: &Source, limits: &Limits) -> Result<Vec<LiveTable>, String> {
    let schema = connect(s, limits).await?;
    let mut names = schema.table_names();
    names.sort();
    let mut out = Vec::new();
    for t in names.into_iter().take(MAX_TABLES) {
        let Ok(Some(p)) = schema.table(&t).await else { continue };
        let columns = p
            .schema()
            .fields()
            .iter()
            .filter_map(|f| ColumnType::from_arrow(f.data_type()).map(|d| (f.name().clone(), d)))
            .collect();
        out.push(LiveTable { name: format!("{}.{t}", s.name), columns });
    }
    Ok(out)
}

/// Tables of one source described for the analyst, at most.
const MAX_TABLES: usize = 2000;

/// A source that could not be reached: its tables' lookups say why.
#[derive(Debug)]
struct Unavailable {
    why: String,
}

#[async_trait]
impl SchemaProvider for Unavailable {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, _name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(self.why.clone()))
    }

    fn table_exist(&self, _name: &str) -> bool {
        true
    }
}

/// Register each source as a schema of `ctx`; the tables of those reached.
pub async fn register(ctx: &SessionContext, sources: &[Source], limits: &Limits) -> Result<Vec<TableInfo>, String> {
    let catalog = ctx.catalog("datafusion").ok_or("the default catalog is missing")?;
    let mut tables = Vec::new();
    for s in sources {
        let schema: Arc<dyn SchemaProvider> = match connect(s, limits).await {
            Ok(p) => {
                tables.extend(
                    p.table_names()
                        .into_iter()
                        .map(|t| TableInfo { name: format!("{}.{t}", s.name), columns: Vec::new() }),
                );
                p
            }
            Err(why) => Arc::new(Unavailable { why }),
        };
        catalog.register_schema(&s.name, schema).map_err(|e| e.to_string())?;
    }
    Ok(tables)
}
