//! Apache Ballista: the same plans on a cluster (cargo feature `ballista`).
//!
//! - [`context`]: the session a SQL worker plans in when its workspace's
//!   engine is `ballista://HOST:PORT` — a Ballista remote context with
//!   Quarry's UDFs. The worker's guard and `SQLOptions` run before anything
//!   is submitted; the scheduler receives a physical plan, never SQL text.
//! - [`cancel`]: a query past its time limit is cancelled on the scheduler
//!   (found by the job name the engine gave it), so its tasks stop on every
//!   executor, not only the client's stream.
//! - [`run_scheduler`] / [`run_executor`]: `quarry cluster scheduler` and
//!   `quarry cluster executor`, Ballista's own processes built into the
//!   `quarry` binary so that they know the same UDFs (the scheduler's
//!   session builder and the executors' function registry register
//!   [`crate::udf::all`]) — one binary to deploy, and a UDF can never be
//!   known to the client but missing on an executor.
//!
//! Executors read the catalog's Parquet files at the paths the client
//! plans with — so every machine sees the data directory at the same path
//! (a shared filesystem) — or, with `?store=s3://BUCKET/PREFIX`, copies of
//! them in an S3-compatible object store ([`store`]). Every process of the
//! cluster resolves `s3://` URLs with [`store::Stores`], from its own
//! environment.

pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::EngineError;

fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista().with_information_schema(true)
}

/// A remote session on the cluster whose scheduler is `scheduler` (`HOST:PORT`),
/// reading object stores through `stores`; `Engine::open_on` registers
/// Quarry's UDFs in it, as in a local one.
pub async fn context(scheduler: &str, stores: Arc<store::Stores>) -> Result<SessionContext, EngineError> {
    let runtime = store::runtime(stores, None).map_err(|e| EngineError::internal(e.to_string()))?;
    let state = SessionStateBuilder::new()
        .with_config(session_config())
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    SessionContext::remote_with_state(&format!("df://{scheduler}"), state).await.map_err(|e| {
        EngineError::internal(format!(
            "the Ballista scheduler at {scheduler} did not answer ({e}): start it with `quarry cluster scheduler`, \
             or set engine = \"local\""
        ))
    })
}

/// Cancel, on the scheduler, the job named `name` (the engine names each of
/// its queries). Best effort: a job that already ended needs nothing.
pub async fn cancel(scheduler: &str, name: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build() else { return };
    let jobs: serde_json::Value = match client.get(format!("http://{scheduler}/api/jobs")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => return tracing::warn!("cancelling {name}: the scheduler at {scheduler} did not answer: {e}"),
    };
    for job in jobs.as_array().into_iter().flatten().filter(|j| j["job_name"] == name) {
        let Some(id) = job["job_id"].as_str() else { continue };
        match client.patch(format!("http://{scheduler}/api/job/{id}")).send().await {
            Ok(r) if r.status().is_success() => tracing::info!("cancelled job {id} ({name}) on {scheduler}"),
            Ok(r) => tracing::warn!("cancelling job {id} ({name}): the scheduler answered {}", r.status()),
            Err(e) => tracing::warn!("cancelling job {id} ({name}): {e}"),
        }
    }
}

/// Ballista's default functions and Quarry's.
fn registry() -> BallistaFunctionRegistry {
    let mut r = BallistaFunctionRegistry::default();
    for f in crate::udf::all() {
        r.scalar_functions.insert(f.name().to_string(), Arc::new(f));
    }
    r
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .map_err(|e| format!("the runtime could not start: {e}"))
}

/// `quarry cluster scheduler`: serve Ballista's scheduler on `bind` until killed.
pub fn run_scheduler(bind: SocketAddr) -> Result<(), String> {
    let stores = Arc::new(store::Stores::default());
    let runtime_env = store::runtime(stores, None).map_err(|e| format!("the scheduler's runtime: {e}"))?;
    runtime()?.block_on(async move {
        let config = ballista_scheduler::config::SchedulerConfig::default()
            .with_hostname(bind.ip().to_string())
            .with_port(bind.port())
            .with_override_config_producer(Arc::new(session_config))
            .with_override_session_builder(Arc::new(move |config: SessionConfig| {
                Ok(SessionStateBuilder::new()
                    .with_config(config)
                    .with_runtime_env(runtime_env.clone())
                    .with_default_features()
                    .with_scalar_functions(crate::udf::all().into_iter().map(Arc::new).collect())
                    .build())
            }));
        let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
            .await
            .map_err(|e| format!("the scheduler's state could not be made: {e}"))?;
        ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config))
            .await
            .map_err(|e| format!("the scheduler stopped: {e}"))
    })
}

/// What one executor is started with (`quarry cluster executor`).
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// Where it listens: the Flight port results are fetched from, and the
    /// gRPC port the scheduler talks to.
    pub bind: std::net::IpAddr,
    pub port: u16,
    pub grpc_port: u16,
    /// The address other machines reach it at (default: `bind`).
    pub external_host: Option<String>,
    /// Shuffle files between stages go here.
    pub work_dir: std::path::PathBuf,
    /// Tasks it runs at once.
    pub vcores: usize,
    /// Memory pool for its tasks' operators.
    pub memory_bytes: u64,
}

/// `quarry cluster executor`: run tasks for the scheduler until killed.
pub fn run_executor(o: ExecutorOptions) -> Result<(), String> {
    let (host, port) = o
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("'{}': name the scheduler as HOST:PORT", o.scheduler))?;
    std::fs::create_dir_all(&o.work_dir).map_err(|e| format!("{}: {e}", o.work_dir.display()))?;
    // Every task's runtime: spills in the work directory, `s3://` from this
    // process's environment (the executor adds its memory pool on top).
    let stores = Arc::new(store::Stores::default());
    let work_dir = o.work_dir.clone();
    let runtime_producer: ballista_core::RuntimeProducer =
        Arc::new(move |_: &SessionConfig| store::runtime(stores.clone(), Some(&work_dir)));
    let config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: o.bind.to_string(),
        external_host: o.external_host.clone(),
        port: o.port,
        grpc_port: o.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        vcores: o.vcores.max(1),
        work_dir: Some(o.work_dir.display().to_string()),
        memory_pool_size: Some(o.memory_bytes),
        override_function_registry: Some(Arc::new(registry())),
        override_config_producer: Some(Arc::new(session_config)),
        override_runtime_producer: Some(runtime_producer),
        // Keep trying a scheduler that is not up yet (started together, or restarting).
        scheduler_connect_timeout_seconds: 60,
        ..Default::default()
    };
    runtime()?.block_on(async move {
        ballista_executor::executor_process::start_executor_process(Arc::new(config))
            .await
            .map_err(|e| format!("the executor stopped: {e}"))
    })
}
