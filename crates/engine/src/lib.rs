//! # quarry-engine: the SQL kernel
//!
//! Owns running generated SQL over the catalog's tables with Apache
//! DataFusion, and nothing else: no HTTP, no LLM, no process spawning.
//!
//! Where work happens:
//! - [`guard`] refuses anything but one read-only query, with typed reasons.
//! - [`Engine::open`] builds a DataFusion session holding exactly the
//!   catalog's tables (latest versions by name, every version as
//!   `versions.<name>_v<N>`) and the workspace's live [`sources`] (a schema
//!   each), with a bounded memory pool and no spill files.
//! - [`Engine::query`] plans with `SQLOptions` that disallow DDL, DML and
//!   statements, verifies the plan, runs it under [`Limits`], and returns
//!   capped results. Errors carry hints the model can act on ([`error`]).
//!
//! - [`cluster`] (cargo feature `ballista`): the same session planned on an
//!   Apache Ballista cluster when the workspace's engine is
//!   `ballista://HOST:PORT`, and the scheduler and executor processes;
//!   [`files`] says where a session reads the catalog's files (this disk, or
//!   a cluster's object store).
//!
//! Process isolation (running this inside a worker process under rlimits) is
//! the sandbox launcher's job; this crate is what runs inside the worker.

#[cfg(feature = "ballista")]
pub mod cluster;
pub mod error;
mod files;
pub mod guard;
pub mod sources;
pub mod udf;
pub mod worker;

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::ScalarValue;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures_util::StreamExt;
use quarry_ingest::catalog::Catalog;

pub use error::{EngineError, ErrorKind};
pub use guard::{Refusal, Rule};
pub use quarry_types::sql::{quoted, Param};
pub use quarry_types::{EngineTarget, Limits, QueryResult, SqlKernel, TableInfo};

/// A DataFusion session over one data directory's catalog.
pub struct Engine {
    ctx: SessionContext,
    limits: Limits,
    tables: Vec<TableInfo>,
    target: EngineTarget,
    files: files::Files,
}

fn sql_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

impl Engine {
    /// Register every table of the catalog, and nothing else.
    pub async fn open(catalog: &Catalog, limits: Limits) -> Result<Engine, EngineError> {
        Engine::open_with(catalog, limits, &quarry_types::sources::Passwords::default()).await
    }

    /// [`Engine::open`], with the passwords of live sources that keep theirs
    /// in the environment of the process that serves the user.
    pub async fn open_with(
        catalog: &Catalog,
        limits: Limits,
        passwords: &quarry_types::sources::Passwords,
    ) -> Result<Engine, EngineError> {
        Engine::open_on(&EngineTarget::Local, catalog, limits, passwords).await
    }

    /// [`Engine::open_with`], planning on `target`: this process's DataFusion,
    /// or a Ballista cluster (which reads the catalog's files, not the live
    /// databases: those stay on the local engine).
    pub async fn open_on(
        target: &EngineTarget,
        catalog: &Catalog,
        limits: Limits,
        passwords: &quarry_types::sources::Passwords,
    ) -> Result<Engine, EngineError> {
        let (ctx, files) = match target {
            EngineTarget::Local => (local_context(&limits)?, files::Files::Disk),
            EngineTarget::Ballista { scheduler, store } => {
                files::remote(scheduler, store.as_ref(), catalog.dir()).await?
            }
        };
        for f in udf::all() {
            ctx.register_udf(f);
        }
        let versions = Arc::new(MemorySchemaProvider::new());
        ctx.catalog("datafusion")
            .ok_or_else(|| EngineError::internal("the default catalog is missing"))?
            .register_schema("versions", versions)
            .map_err(|e| EngineError::internal(e.to_string()))?;
        let entries = catalog.tables().map_err(error::from_ingest)?;
        let mut tables = Vec::new();
        for t in entries {
            files.register(&ctx, &quoted(&t.name), &t).await?;
            for v in catalog.versions(&t.name).map_err(error::from_ingest)? {
                let old = catalog.entry(&t.name, Some(v)).map_err(error::from_ingest)?;
                files.register(&ctx, &format!("versions.{}", quoted(&format!("{}_v{v}", t.name))), &old).await?;
            }
            tables
                .push(TableInfo { name: t.name, columns: t.columns.into_iter().map(|c| (c.name, c.label)).collect() });
        }
        if *target == EngineTarget::Local {
            let live = sources::register(&ctx, catalog.dir(), &limits, passwords).await;
            tables.extend(live.map_err(EngineError::internal)?);
        }
        Ok(Engine { ctx, limits, tables, target: target.clone(), files })
    }

    /// Where this session's queries run.
    pub fn target(&self) -> &EngineTarget {
        &self.target
    }

    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Per-query limits for later queries. The memory pool is fixed when the
    /// session is built; everything else takes effect at once.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Check, plan, verify and run one query under the limits.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, EngineError> {
        self.query_with(sql, &[]).await
    }

    /// The same with values bound to its named placeholders (`$state`), as
    /// DataFusion parameter values: data, never SQL text.
    pub async fn query_with(&self, sql: &str, params: &[Param]) -> Result<QueryResult, EngineError> {
        guard::check(sql).map_err(EngineError::refused)?;
        let job = self.name_job()?;
        let opts = sql_options();
        let run = async {
            let df = self.ctx.sql_with_options(sql, opts).await.map_err(|e| error::from_datafusion(e, &self.tables))?;
            let df = if params.is_empty() {
                df
            } else {
                let values: Vec<(String, ScalarValue)> =
                    params.iter().map(|p| (p.name.clone(), scalar(&p.value))).collect();
                df.with_param_values(values).map_err(|e| error::from_datafusion(e, &self.tables))?
            };
            opts.verify_plan(df.logical_plan()).map_err(|e| {
                EngineError::refused(Refusal { rule: Rule::PlanNotReadOnly, message: e.to_string(), at: None })
            })?;
            self.files.ready(df.logical_plan()).await?;
            let schema: datafusion::arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(|e| error::from_datafusion(e, &self.tables))?;
            let mut batches = Vec::new();
            let (mut rows, mut bytes, mut truncated) = (0usize, 0usize, false);
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| error::from_datafusion(e, &self.tables))?;
                let room = self.limits.max_rows - rows;
                let b = if b.num_rows() > room {
                    truncated = true;
                    b.slice(0, room)
                } else {
                    b
                };
                bytes += b.get_array_memory_size();
                if bytes > self.limits.max_result_bytes {
                    truncated = true;
                    break;
                }
                rows += b.num_rows();
                batches.push(b);
                if rows >= self.limits.max_rows {
                    // Anything more is not shown; the stream is dropped, which cancels the plan.
                    truncated = truncated || stream.next().await.is_some();
                    break;
                }
            }
            Ok(QueryResult { schema, batches, rows, truncated })
        };
        match tokio::time::timeout(self.limits.time, run).await {
            Ok(r) => r,
            Err(_) => {
                self.cancel_job(job.as_deref()).await;
                Err(EngineError::timeout(self.limits.time))
            }
        }
    }

    /// On a cluster: a fresh job name for the next query, so that it can be
    /// found and cancelled there.
    fn name_job(&self) -> Result<Option<String>, EngineError> {
        if self.target == EngineTarget::Local {
            return Ok(None);
        }
        let name = format!("quarry-{}-{}", std::process::id(), JOBS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().set(JOB_NAME_KEY, &name).map_err(|e| EngineError::internal(e.to_string()))?;
        Ok(Some(name))
    }

    async fn cancel_job(&self, job: Option<&str>) {
        #[cfg(feature = "ballista")]
        if let (EngineTarget::Ballista { scheduler, .. }, Some(job)) = (&self.target, job) {
            cluster::cancel(scheduler, job).await;
        }
        #[cfg(not(feature = "ballista"))]
        let _ = job;
    }
}

/// Queries named on a cluster by this process, for [`Engine::name_job`].
static JOBS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The configuration key Ballista names a job by.
const JOB_NAME_KEY: &str = "ballista.job.name";

/// This process's session: a bounded memory pool and no spill files.
fn local_context(limits: &Limits) -> Result<SessionContext, EngineError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc()
        .map_err(|e| EngineError::internal(e.to_string()))?;
    let config = SessionConfig::new().with_information_schema(true).with_target_partitions(2);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// A parameter's JSON value as the scalar DataFusion binds.
fn scalar(v: &serde_json::Value) -> ScalarValue {
    match v {
        serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        serde_json::Value::Null => ScalarValue::Null,
        other => ScalarValue::Utf8(Some(other.to_string())),
    }
}
