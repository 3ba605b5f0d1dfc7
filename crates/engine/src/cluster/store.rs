//! A cluster whose executors read the catalog's files from an S3-compatible
//! object store (`ballista://HOST:PORT?store=s3://BUCKET/PREFIX`).
//!
//! - [`Stores`]: the object store registry of every process of a cluster
//!   (the SQL workers, the scheduler, the executors). An `s3://BUCKET` URL
//!   gets a client made from *that process's* environment (`AWS_*`:
//!   endpoint, region, credentials, `AWS_ALLOW_HTTP`), so no secret travels
//!   inside a plan or a session's settings; `file://` stays the local disk.
//! - [`Mirror`]: the SQL worker's side. Tables are registered at their
//!   object's URL (with the schema read from the local file), and before a
//!   query runs, the files its plan scans — and only those — are copied to
//!   the store if they are not there yet. A catalog version is never
//!   rewritten, so an object's key (workspace, table, version, the data
//!   version's hash) names its content; a key whose object has another size
//!   is written again. An upload is whole or absent: large files go up as
//!   one multipart upload, completed only at the end, so no executor ever
//!   sees part of a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::options::ReadOptions;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use quarry_ingest::catalog::TableEntry;
use quarry_types::ClusterStore;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::EngineError;

/// The object stores one process of a cluster reads: `s3://` buckets made
/// on first use from the environment, everything else as DataFusion's own
/// registry has it (the local filesystem).
#[derive(Debug, Default)]
pub struct Stores {
    inner: DefaultObjectStoreRegistry,
    buckets: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Stores {
    /// The client for `bucket`, made once from this process's `AWS_*` variables.
    pub fn bucket(&self, bucket: &str) -> DfResult<Arc<dyn ObjectStore>> {
        if let Some(s) = self.buckets.read().map_err(poisoned)?.get(bucket) {
            return Ok(s.clone());
        }
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        if (set("AWS_ENDPOINT") || set("AWS_ENDPOINT_URL")) && !set("AWS_ACCESS_KEY_ID") {
            // A store of one's own (MinIO, Ceph…) has no instance credentials to fall back on.
            return Err(DataFusionError::Configuration(format!(
                "no credentials for s3://{bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 in the environment of every Quarry process that uses the cluster"
            )));
        }
        let store: Arc<dyn ObjectStore> = Arc::new(AmazonS3Builder::from_env().with_bucket_name(bucket).build()?);
        self.buckets.write().map_err(poisoned)?.insert(bucket.to_string(), store.clone());
        Ok(store)
    }
}

fn poisoned<T>(_: T) -> DataFusionError {
    DataFusionError::Internal("the object store registry's lock was poisoned".into())
}

impl ObjectStoreRegistry for Stores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => self.bucket(bucket),
            ("s3", None) => Err(DataFusionError::Configuration(format!("{url}: no bucket"))),
            _ => self.inner.get_store(url),
        }
    }
}

/// A runtime whose object stores are `stores`, spilling to `temp` if given.
pub fn runtime(stores: Arc<Stores>, temp: Option<&Path>) -> DfResult<Arc<RuntimeEnv>> {
    let mut b = RuntimeEnvBuilder::new().with_object_store_registry(stores);
    if let Some(t) = temp {
        b = b.with_temp_file_path(t);
    }
    b.build_arc()
}

/// The SQL worker's copy of its workspace's files in the cluster's store.
pub struct Mirror {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    /// `PREFIX/WORKSPACE`: a workspace's own part of the bucket.
    base: String,
    /// Object URL → the local file it is a copy of, and whether this
    /// process has seen the copy in the store (found or written).
    files: Mutex<HashMap<String, (PathBuf, bool)>>,
}

impl Mirror {
    /// The mirror of the catalog in `data` (its absolute path names the
    /// workspace in the bucket), in `stores`' client for `cs`'s bucket.
    pub fn new(cs: &ClusterStore, stores: &Stores, data: &Path) -> Result<Mirror, EngineError> {
        let store = stores
            .bucket(&cs.bucket)
            .map_err(|e| EngineError::internal(format!("the object store {} could not be opened: {e}", cs.url())))?;
        let dir = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
        let workspace = short_hash(dir.as_os_str().as_encoded_bytes());
        let base = if cs.prefix.is_empty() { workspace } else { format!("{}/{workspace}", cs.prefix) };
        Ok(Mirror { store, bucket: cs.bucket.clone(), base, files: Mutex::default() })
    }

    /// The object key of version `version` of table `name`, whose data
    /// version is `hash`.
    fn key(&self, name: &str, version: u32, hash: &str) -> String {
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        // Two names made the same by the replacement stay apart.
        let safe = if safe == name { safe } else { format!("{safe}-{}", short_hash(name.as_bytes())) };
        let hash: String = hash.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
        format!("{}/{safe}/v{version}-{hash}.parquet", self.base)
    }

    /// Register the catalog's table version `entry` as `name` in `ctx`,
    /// read from the store. Nothing is copied yet.
    pub async fn register(&self, ctx: &SessionContext, name: &str, entry: &TableEntry) -> Result<(), EngineError> {
        let (key, local) = (self.key(&entry.name, entry.version, &entry.content_hash), &entry.parquet);
        let url = format!("s3://{}/{key}", self.bucket);
        let fail = |e: DataFusionError| EngineError::internal(format!("registering {name} at {url}: {e}"));
        let options =
            ParquetReadOptions::default().to_listing_options(&ctx.copied_config(), ctx.copied_table_options());
        let here = ListingTableUrl::parse(local.display().to_string()).map_err(fail)?;
        let schema = options.infer_schema(&ctx.state(), &here).await.map_err(fail)?;
        ctx.register_listing_table(name, &url, options, Some(schema), None).await.map_err(fail)?;
        self.files.lock().map_err(|_| lock())?.insert(url, (local.clone(), false));
        Ok(())
    }

    /// Copy to the store every file `plan` scans that is not there yet.
    pub async fn ensure(&self, plan: &LogicalPlan) -> Result<(), EngineError> {
        let mut wanted: Vec<String> = Vec::new();
        plan.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let listing = source_as_provider(&scan.source).ok();
                if let Some(t) = listing.as_ref().and_then(|p| p.downcast_ref::<ListingTable>()) {
                    wanted.extend(t.table_paths().iter().map(|u| u.as_str().to_string()));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| EngineError::internal(e.to_string()))?;
        for url in wanted {
            let local = match self.files.lock().map_err(|_| lock())?.get(&url) {
                Some((local, false)) => local.clone(),
                _ => continue,
            };
            self.put_if_absent(&url, &local).await?;
            if let Some(f) = self.files.lock().map_err(|_| lock())?.get_mut(&url) {
                f.1 = true;
            }
        }
        Ok(())
    }

    async fn put_if_absent(&self, url: &str, local: &Path) -> Result<(), EngineError> {
        let key = url.strip_prefix(&format!("s3://{}/", self.bucket)).unwrap_or(url);
        let path = ObjectPath::from(key);
        let size = std::fs::metadata(local).map_err(|e| EngineError::internal(format!("{}: {e}", local.display())))?;
        match self.store.head(&path).await {
            Ok(meta) if meta.size == size.len() => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(unreachable_store(url, e)),
        }
        tracing::info!("copying {} to {url}", local.display());
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| EngineError::internal(format!("{}: {e}", local.display())))?;
        let mut up = object_store::buffered::BufWriter::new(self.store.clone(), path);
        let copied = tokio::io::copy(&mut file, &mut up).await;
        match copied {
            Ok(_) => up.shutdown().await.map_err(|e| unreachable_store(url, e)),
            Err(e) => {
                let _ = up.abort().await;
                Err(unreachable_store(url, e))
            }
        }
    }
}

fn lock() -> EngineError {
    EngineError::internal("the object store mirror's lock was poisoned")
}

fn unreachable_store(url: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!(
        "the cluster's object store did not take {url} ({e}): check AWS_ENDPOINT, AWS_REGION and the \
         credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in the environment Quarry runs in"
    ))
}

/// 16 hex digits of BLAKE3: short, stable names for keys.
fn short_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_workspace_table_version_and_data_version() {
        let stores = Stores::default();
        let cs = ClusterStore { bucket: "quarry".into(), prefix: "team".into() };
        // Making a client reads the environment; it sends no request.
        let m = Mirror::new(&cs, &stores, Path::new("/srv/ws")).unwrap();
        let k = m.key("cases", 3, "ab12cd34ef56ab12cd34ef56");
        assert!(k.starts_with("team/") && k.ends_with("/cases/v3-ab12cd34ef56ab12.parquet"), "{k}");
        let (a, b) = (m.key("a b", 1, "h"), m.key("a_b", 1, "h"));
        assert_ne!(a, b);
        assert!(a.contains("/a_b-"), "{a}");
        let other = Mirror::new(&cs, &stores, Path::new("/srv/other")).unwrap();
        assert_ne!(other.key("cases", 3, "h"), m.key("cases", 3, "h"), "workspaces apart");
    }
}
