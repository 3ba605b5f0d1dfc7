//! Where a session reads the catalog's Parquet files: this machine's disk
//! (the local engine, or a cluster whose machines share the data
//! directory's filesystem), or a cluster's object store
//! ([`crate::cluster::store::Mirror`], cargo feature `ballista`).

use std::path::Path;

use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use quarry_ingest::catalog::TableEntry;

use crate::error::EngineError;

pub(crate) enum Files {
    /// At the paths the catalog records.
    Disk,
    /// Copies in an S3-compatible store, made as queries need them.
    #[cfg(feature = "ballista")]
    Store(crate::cluster::store::Mirror),
}

impl Files {
    /// Register `entry`'s Parquet file as the table `name` in `ctx`.
    pub async fn register(&self, ctx: &SessionContext, name: &str, entry: &TableEntry) -> Result<(), EngineError> {
        let fail = |e: String| EngineError::internal(format!("registering {name}: {e}"));
        match self {
            Files::Disk => ctx
                .register_parquet(name, entry.parquet.display().to_string(), ParquetReadOptions::default())
                .await
                .map_err(|e| fail(e.to_string())),
            #[cfg(feature = "ballista")]
            Files::Store(m) => m.register(ctx, name, entry).await,
        }
    }

    /// Make the files `plan` reads readable where it runs (a no-op on disk).
    pub async fn ready(&self, plan: &LogicalPlan) -> Result<(), EngineError> {
        match self {
            Files::Disk => {
                let _ = plan;
                Ok(())
            }
            #[cfg(feature = "ballista")]
            Files::Store(m) => m.ensure(plan).await,
        }
    }
}

/// A session on the cluster at `scheduler`, and where it reads files.
#[cfg(feature = "ballista")]
pub(crate) async fn remote(
    scheduler: &str,
    store: Option<&quarry_types::ClusterStore>,
    data: &Path,
) -> Result<(SessionContext, Files), EngineError> {
    let stores = std::sync::Arc::new(crate::cluster::store::Stores::default());
    let files = match store {
        Some(s) => Files::Store(crate::cluster::store::Mirror::new(s, &stores, data)?),
        None => Files::Disk,
    };
    Ok((crate::cluster::context(scheduler, stores).await?, files))
}

#[cfg(not(feature = "ballista"))]
pub(crate) async fn remote(
    scheduler: &str,
    _store: Option<&quarry_types::ClusterStore>,
    _data: &Path,
) -> Result<(SessionContext, Files), EngineError> {
    Err(EngineError::internal(format!(
        "this quarry was built without Ballista, so it cannot use the cluster at {scheduler}: \
         build it with `cargo build --features ballista`, or set engine = \"local\""
    )))
}
