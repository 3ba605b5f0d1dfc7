//! Live sources in the session: each connection of the workspace
//! (`quarry_ingest::sources`) is a schema named after it, its tables
//! `TableProvider`s from `datafusion-table-providers` that push projection,
//! filters and limits down to the database as SQL (DataFusion's unparser),
//! so `SELECT state, sum(x) FROM dhis.t WHERE y = 1` fetches only what it
//! needs. Read-only by construction: the guard admits one read-only query;
//! PostgreSQL sessions start with `default_transaction_read_only=on` and a
//! `statement_timeout`, MySQL and MariaDB ones read-only with the server's
//! statement limit (`mysql`); SQLite files are opened read-only (`mode=ro`, and
//! none of the provider's own setup, which would switch the file to WAL).
//! Only DataFusion's functions plan, so the database's own escape hatches
//! (`pg_read_file`, `lo_export`, `load_extension`, …) cannot be named.
//! A source is connected on the first query that reads it; one that cannot
//! be reached fails that query with a clear error, and the next one tries again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::prelude::SessionContext;
use datafusion_table_providers::common::DatabaseSchemaProvider;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::sqlitepool::SqliteConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::{JoinPushDown, Mode};
use datafusion_table_providers::util::secrets::to_secret_map;
use quarry_types::{ColumnType, Limits, LiveTable, Source, SourceKind, TableInfo};

mod facts;
mod mysql;

/// Why a source could not be used, for people: what failed, never the password.
fn explain(s: &Source, e: &str) -> String {
    let mut msg = e.to_string();
    let server = s.server().ok();
    if let Some(pw) = server.as_ref().and_then(|a| a.password.as_deref()).filter(|p| !p.is_empty()) {
        msg = msg.replace(pw, "***");
    }
    let low = msg.to_lowercase();
    let (at, user, db) = match &server {
        Some(a) => {
            (format!("{}:{}", a.host, a.port.unwrap_or(s.kind.default_port())), a.user.clone(), a.database.clone())
        }
        None => Default::default(),
    };
    let tls = if s.kind == SourceKind::Mysql { "required" } else { "require" };
    let what = if low.contains("authentication failed") || low.contains("access denied for user") {
        format!("authentication failed for user {user}: check the user and password")
    } else if low.contains("does not exist") && low.contains("database") || low.contains("unknown database") {
        format!("database {db} does not exist on {at}")
    } else if low.contains("no encryption")
        || low.contains("insecure transport")
        || low.contains("ssl") && low.contains("required")
    {
        format!("{at} requires TLS: add ?sslmode={tls} to the URL")
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
            let (pool, schema) = postgres_pool(s, limits).await?;
            let p =
                DatabaseSchemaProvider::try_new(schema, Arc::new(pool)).await.map_err(|e| explain(s, &chain(&*e)))?;
            Ok(Arc::new(p))
        }
        SourceKind::Mysql => mysql::connect(s, limits).await,
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

/// The options every PostgreSQL session of a source starts with (libpq's
/// `options`): read-only transactions, and the kernel's time limit as the
/// server's statement timeout. Public so that a test can open a session
/// with exactly these and try what the guard would refuse.
pub fn postgres_session_options(limits: &Limits) -> String {
    format!("-c default_transaction_read_only=on -c statement_timeout={}", limits.time.as_millis().max(1))
}

/// A PostgreSQL pool whose sessions are read-only and time-limited, and the schema its tables are in.
async fn postgres_pool(s: &Source, limits: &Limits) -> Result<(PostgresConnectionPool, String), String> {
    let a = s.server()?;
    let mut params = std::collections::HashMap::from([
        ("host".to_string(), a.host.clone()),
        ("port".to_string(), a.port.unwrap_or(5432).to_string()),
        ("user".to_string(), a.user.clone()),
        ("db".to_string(), a.database.clone()),
        ("sslmode".to_string(), "prefer".to_string()),
        ("options".to_string(), postgres_session_options(limits)),
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
    Ok((pool, schema))
}

/// Connect to `s` and describe its tables (what `quarry connect` checks
/// first, and keeps for the analyst's context).
pub async fn test(s: &Source, limits: &Limits) -> Result<Vec<LiveTable>, String> {
    let schema = connect(s, limits).await?;
    let facts = facts::read(s, limits).await;
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
        let mut table = LiveTable { name: format!("{}.{t}", s.name), columns, ..Default::default() };
        facts.apply(&mut table, &t);
        out.push(table);
    }
    Ok(out)
}

/// Tables of one source described for the analyst, at most.
const MAX_TABLES: usize = 2000;

/// A live table as DataFusion scans it: the provider's own scan, except
/// that a scan needing no column (`count(*)`) reads one and keeps none —
/// the providers answer an empty projection with a one-column plan, which
/// DataFusion rejects — and that, where the provider deletes every `"`
/// from the SQL it sends (MySQL's does), a filter holding a text with `"`
/// runs in DataFusion instead of being sent changed.
#[derive(Debug)]
struct Scan {
    table: Arc<dyn TableProvider>,
    strips_quotes: bool,
    cap: RowCap,
    connected: Slot,
}

/// The rows one query may read from one live table, and the table's name
/// for the error: the scan asks the database for one row more than that
/// (`LIMIT`), and fails when that row arrives — so a runaway scan stops in
/// the database, and no answer is ever made from part of a table.
#[derive(Debug, Clone)]
struct RowCap {
    rows: usize,
    table: String,
}

impl RowCap {
    /// The limit to send: DataFusion's own, or one row past the cap.
    fn fetch(&self, limit: Option<usize>) -> Option<usize> {
        let past = self.rows.saturating_add(1);
        Some(limit.map_or(past, |l| l.min(past)))
    }
}

/// A live table's scan reached [`RowCap`]. Typed, so `error` can tell it
/// from other failures without reading words.
#[derive(Debug)]
pub struct RowCapReached {
    pub rows: usize,
    pub table: String,
}

impl std::fmt::Display for RowCapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the query read more than {} rows of the live table {} (its cap per query)", self.rows, self.table)
    }
}

impl std::error::Error for RowCapReached {}

/// Whether `e` holds a text literal with a `"` in it.
fn has_double_quote(e: &datafusion::logical_expr::Expr) -> bool {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::common::ScalarValue;
    e.exists(|x| {
        Ok(matches!(x, datafusion::logical_expr::Expr::Literal(
            ScalarValue::Utf8(Some(t)) | ScalarValue::LargeUtf8(Some(t)) | ScalarValue::Utf8View(Some(t)),
            _,
        ) if t.contains('"')))
    })
    .unwrap_or(true)
}

#[async_trait]
impl TableProvider for Scan {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.table.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> DfResult<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown::Unsupported;
        let mut how = self.table.supports_filters_pushdown(filters)?;
        if self.strips_quotes {
            how.iter_mut().zip(filters).filter(|(_, f)| has_double_quote(f)).for_each(|(h, _)| *h = Unsupported);
        }
        Ok(how)
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let fetch = self.cap.fetch(limit);
        match projection {
            Some(p) if p.is_empty() && !self.schema().fields().is_empty() => {
                let one = self.remote(self.table.scan(state, Some(&vec![0]), filters, fetch).await?);
                let none: Vec<datafusion::physical_plan::projection::ProjectionExpr> = Vec::new();
                Ok(Arc::new(datafusion::physical_plan::projection::ProjectionExec::try_new(none, one)?))
            }
            _ => Ok(self.remote(self.table.scan(state, projection, filters, fetch).await?)),
        }
    }
}

/// The provider's plan for a scan, run as it is: the SQL it was given, and
/// nothing added later — the provider would splice any filter DataFusion's
/// physical optimizer offers it into that SQL as text, past the check made
/// on the logical plan (and past [`Scan`]'s), so this node takes none. Its
/// batches carry the scan's schema even when there are none (the provider
/// answers no rows with an empty schema).
/// It counts the rows read in all its partitions and fails at [`RowCap`];
/// a failure while reading (the database gone mid-query) names the source.
#[derive(Debug)]
struct Remote {
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    tally: Arc<Tally>,
}

/// What a scan's streams share: the rows read so far against the cap, and
/// the source's connection, dropped when reading fails.
#[derive(Debug)]
struct Tally {
    cap: RowCap,
    read: std::sync::atomic::AtomicUsize,
    connected: Slot,
}

impl Scan {
    fn remote(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> Arc<dyn datafusion::physical_plan::ExecutionPlan> {
        let tally = Tally { cap: self.cap.clone(), read: Default::default(), connected: self.connected.clone() };
        Arc::new(Remote { plan, tally: Arc::new(tally) })
    }
}

impl Tally {
    /// A failure of the database while this scan read from it, naming the source.
    fn failed(&self, e: DataFusionError) -> DataFusionError {
        // The next query connects again rather than waiting on a dead pool.
        if let Ok(mut slot) = self.connected.try_lock() {
            *slot = None;
        }
        let source = self.cap.table.split('.').next().unwrap_or_default();
        let why = e.find_root().to_string();
        let why = if why.contains("connection closed") || why.contains("broken pipe") || why.contains("reset by peer") {
            format!("the database closed the connection while {} was read (stopped or restarted?)", self.cap.table)
        } else {
            format!("reading {} failed: {why}", self.cap.table)
        };
        DataFusionError::Execution(format!("connection {source}: {why}"))
    }

    /// Count `batch`'s rows; past the cap, the error instead.
    fn count(&self, batch: DfResult<RecordBatch>) -> DfResult<RecordBatch> {
        let batch = batch.map_err(|e| self.failed(e))?;
        let read = self.read.fetch_add(batch.num_rows(), std::sync::atomic::Ordering::Relaxed) + batch.num_rows();
        if read > self.cap.rows {
            let e = RowCapReached { rows: self.cap.rows, table: self.cap.table.clone() };
            return Err(DataFusionError::External(Box::new(e)));
        }
        Ok(batch)
    }
}

impl datafusion::physical_plan::DisplayAs for Remote {
    fn fmt_as(&self, t: datafusion::physical_plan::DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.plan.fmt_as(t, f)
    }
}

impl datafusion::physical_plan::ExecutionPlan for Remote {
    fn name(&self) -> &'static str {
        "RemoteScanExec"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        self.plan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> DfResult<datafusion::execution::SendableRecordBatchStream> {
        use futures_util::StreamExt;
        let stream = self.plan.execute(partition, context)?;
        let tally = self.tally.clone();
        let counted = stream.map(move |b| tally.count(b));
        Ok(Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(self.plan.schema(), counted)))
    }
}

/// A source's connection once made (none before the first query reads it,
/// or after a failure: the next query connects again).
type Slot = Arc<tokio::sync::Mutex<Option<Arc<dyn SchemaProvider>>>>;

/// A source in the session: its tables' names as introspected when it was
/// connected, and the connection made on the first query that reads one of
/// them — so queries over files never wait on a database, and one that was
/// down is tried again by the next query.
struct LiveSchema {
    source: Source,
    limits: Limits,
    names: Vec<String>,
    /// The columns each table had when connected, for a provider that
    /// learns them from rows (SQLite's) and so sees none in an empty table.
    columns: std::collections::HashMap<String, Vec<(String, ColumnType)>>,
    connected: Slot,
}

impl LiveSchema {
    /// `table` as the provider sees it, or — where it saw no columns, in a
    /// table that had some when connected — that table with no rows.
    fn or_declared(&self, name: &str, table: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        match self.columns.get(name).filter(|c| !c.is_empty() && table.schema().fields().is_empty()) {
            Some(cols) => {
                let fields: Vec<_> =
                    cols.iter().map(|(n, t)| datafusion::arrow::datatypes::Field::new(n, t.arrow(), true)).collect();
                let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
                Arc::new(datafusion::datasource::empty::EmptyTable::new(schema))
            }
            None => table,
        }
    }
}

impl std::fmt::Debug for LiveSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSchema").field("source", &self.source).field("tables", &self.names.len()).finish()
    }
}

#[async_trait]
impl SchemaProvider for LiveSchema {
    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let mut slot = self.connected.lock().await;
        if slot.is_none() {
            *slot = Some(connect(&self.source, &self.limits).await.map_err(DataFusionError::Plan)?);
        }
        match slot.as_ref() {
            Some(p) => {
                let strips_quotes = self.source.kind == SourceKind::Mysql;
                let cap = RowCap { rows: self.limits.max_live_rows, table: format!("{}.{name}", self.source.name) };
                let found = p.table(name).await.map_err(|e| {
                    // The database is gone or refused: connect again next time, quickly.
                    *slot = None;
                    DataFusionError::Plan(explain(&self.source, &e.to_string()))
                });
                match found? {
                    Some(table) => {
                        let table = self.or_declared(name, table);
                        let connected = self.connected.clone();
                        Ok(Some(Arc::new(Scan { table, strips_quotes, cap, connected })))
                    }
                    None if self.table_exist(name) => Err(DataFusionError::Plan(format!(
                        "connection {0}: table {0}.{name} is no longer in the database (dropped or renamed since it \
                         was connected); connect {0} again to refresh its tables",
                        self.source.name
                    ))),
                    None => Ok(None),
                }
            }
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// Register each live source of the workspace at `data` as a schema of
/// `ctx` (connecting only when a query reads it); the tables it had.
pub async fn register(
    ctx: &SessionContext,
    data: &std::path::Path,
    limits: &Limits,
    passwords: &quarry_types::sources::Passwords,
) -> Result<Vec<TableInfo>, String> {
    let catalog = ctx.catalog("datafusion").ok_or("the default catalog is missing")?;
    let mut tables = Vec::new();
    for (source, live) in quarry_ingest::sources::live_tables(data) {
        let prefix = format!("{}.", source.name);
        let local = |t: &LiveTable| t.name.strip_prefix(&prefix).unwrap_or(&t.name).to_string();
        let names: Vec<String> = live.iter().map(local).collect();
        let columns = live.iter().map(|t| (local(t), t.columns.clone())).collect();
        tables.extend(live.into_iter().map(|t| TableInfo { name: t.name, columns: Vec::new() }));
        let name = source.name.clone();
        let source = passwords.apply(source);
        let connected = Slot::default();
        let schema = LiveSchema { source, limits: limits.clone(), names, columns, connected };
        catalog.register_schema(&name, Arc::new(schema)).map_err(|e| e.to_string())?;
    }
    Ok(tables)
}
