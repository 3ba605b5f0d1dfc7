//! MySQL and MariaDB sources: datafusion-table-providers' MySQL connection
//! (its queries and Arrow conversion) over a pool of our own, because the
//! provider's pool runs no statement of ours when a session opens. Ours
//! starts every session — and again after each reset, as the pool hands it
//! out — read-only (`SET SESSION TRANSACTION READ ONLY`) with the kernel's
//! time limit as the server's statement limit (MySQL `max_execution_time`,
//! MariaDB `max_statement_time`). Queries are unparsed in MySQL's dialect.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::sql::unparser::dialect::MySqlDialect;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{AsyncDbConnection, DbConnection};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown};
use datafusion_table_providers::sql::sql_provider_datafusion::SqlTable;
use datafusion_table_providers_mysql::conn::MySQLConnection;
use mysql_async::prelude::{Queryable, ToValue};
use quarry_types::sources::ServerAddress;
use quarry_types::{Limits, Source};

type Param = &'static (dyn ToValue + Sync);
type DynPool = Arc<dyn DbConnectionPool<mysql_async::Conn, Param> + Send + Sync>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every session runs first (the provider's own: UTC, UTF-8).
const SESSION: [&str; 5] = [
    "SET time_zone = '+00:00'",
    "SET character_set_results = 'utf8mb4'",
    "SET character_set_client = 'utf8mb4'",
    "SET character_set_connection = 'utf8mb4'",
    "SET SESSION TRANSACTION READ ONLY",
];

/// Connection options from the URL: host, port, user, password, database
/// and `sslmode` (`disabled`, the default; `required`, certificates
/// checked, `sslrootcert` naming the CA file; `preferred`, any certificate).
fn options(s: &Source, a: &ServerAddress) -> Result<mysql_async::OptsBuilder, String> {
    let mut b = mysql_async::OptsBuilder::default()
        .ip_or_hostname(a.host.clone())
        .tcp_port(a.port.unwrap_or(s.kind.default_port()))
        .user(Some(a.user.clone()))
        .pass(a.password.clone())
        .db_name(Some(a.database.clone()))
        .pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(mysql_async::PoolConstraints::new(0, 4).unwrap_or_default()),
        );
    let (mut mode, mut root) = ("disabled".to_string(), None);
    for (k, v) in &a.options {
        match k.as_str() {
            "sslmode" if ["disabled", "required", "preferred"].contains(&v.as_str()) => mode = v.clone(),
            "sslmode" => {
                return Err(format!("connection {}: sslmode={v}: use disabled, required or preferred", s.name))
            }
            "sslrootcert" => root = Some(std::path::PathBuf::from(v)),
            other => return Err(format!("connection {}: unknown URL option '{other}'", s.name)),
        }
    }
    if mode != "disabled" {
        let mut tls = mysql_async::SslOpts::default();
        if let Some(r) = root {
            tls = tls.with_root_certs(vec![r.into()]);
        }
        if mode == "preferred" {
            tls = tls.with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true);
        }
        b = b.ssl_opts(Some(tls));
    }
    Ok(b)
}

/// The statement that stops a query at `limits.time` on this server.
fn time_limit(version: &str, limits: &Limits) -> String {
    let ms = limits.time.as_millis().max(1);
    if version.to_ascii_lowercase().contains("mariadb") {
        format!("SET SESSION max_statement_time = {:.3}", ms as f64 / 1000.0)
    } else {
        format!("SET SESSION max_execution_time = {ms}")
    }
}

/// A pool whose sessions are read-only and time-limited.
struct Pool(mysql_async::Pool);

#[async_trait]
impl DbConnectionPool<mysql_async::Conn, Param> for Pool {
    async fn connect(&self) -> Result<Box<dyn DbConnection<mysql_async::Conn, Param>>, BoxError> {
        let conn = self.0.get_conn().await?;
        Ok(Box::new(<MySQLConnection as AsyncDbConnection<_, Param>>::new(conn)))
    }

    fn join_push_down(&self) -> JoinPushDown {
        JoinPushDown::Disallow
    }
}

/// Connect to the source's database (once to learn which server it is,
/// then through the pool) and list its tables.
pub(super) async fn connect(s: &Source, limits: &Limits) -> Result<Arc<dyn SchemaProvider>, String> {
    let a = s.server()?;
    let opts = options(s, &a)?;
    let fail = |e: &(dyn std::error::Error + 'static)| super::explain(s, &super::chain(e));
    let mut probe = mysql_async::Conn::new(opts.clone()).await.map_err(|e| fail(&e))?;
    let version: Option<String> = probe.query_first("SELECT VERSION()").await.map_err(|e| fail(&e))?;
    let _ = probe.disconnect().await;
    let mut setup: Vec<String> = SESSION.iter().map(|q| q.to_string()).collect();
    setup.push(time_limit(&version.unwrap_or_default(), limits));
    let pool: DynPool = Arc::new(Pool(mysql_async::Pool::new(opts.setup(setup))));
    let conn = pool.connect().await.map_err(|e| fail(&*e))?;
    let tables = conn
        .as_any()
        .downcast_ref::<MySQLConnection>()
        .ok_or("the MySQL connection is not the provider's")?
        .tables(&a.database)
        .await
        .map_err(|e| fail(&e))?;
    Ok(Arc::new(Schema { pool, database: a.database, tables }))
}

/// A database's tables, scanned in MySQL's dialect.
struct Schema {
    pool: DynPool,
    database: String,
    tables: Vec<String>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlSchema").field("database", &self.database).field("tables", &self.tables.len()).finish()
    }
}

#[async_trait]
impl SchemaProvider for Schema {
    fn table_names(&self) -> Vec<String> {
        self.tables.clone()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !self.table_exist(name) {
            return Ok(None);
        }
        let at = TableReference::partial(self.database.clone(), name.to_string());
        let t = SqlTable::new("mysql", &self.pool, at).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(Arc::new(t.with_dialect(Arc::new(MySqlDialect {})))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}

/// A row of `KEY_COLUMN_USAGE`: table, column, constraint, and what a foreign key refers to.
type KeyRow = (String, String, String, Option<String>, Option<String>);

/// Row estimates and keys from the server's `information_schema`.
pub(super) async fn facts(s: &Source) -> Result<super::facts::Facts, String> {
    let a = s.server()?;
    let mut c = mysql_async::Conn::new(options(s, &a)?).await.map_err(|e| e.to_string())?;
    let mut f = super::facts::Facts::default();
    let rows: Vec<(String, Option<u64>)> = c
        .exec("SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (&a.database,))
        .await
        .map_err(|e| e.to_string())?;
    f.rows.extend(rows.into_iter().filter_map(|(t, n)| Some((t, n?))));
    let keys: Vec<KeyRow> = c
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME \
             FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (&a.database,),
        )
        .await
        .map_err(|e| e.to_string())?;
    for (t, col, constraint, to_table, to_col) in keys {
        match to_table.zip(to_col) {
            Some(to) => f.key(t, col, Some(to)),
            None if constraint == "PRIMARY" => f.key(t, col, None),
            None => {}
        }
    }
    let _ = c.disconnect().await;
    Ok(f)
}
