//! Where a workspace's SQL runs ([`EngineTarget`]) and, on a cluster, where
//! its executors read the catalog's files ([`ClusterStore`]). Named once:
//! the CLI's `--engine`, `quarry.toml`'s `engine`, the SQL workers' own
//! flag and the page read and show these.

use serde::{Deserialize, Serialize};

/// Where a workspace's SQL runs: DataFusion in Quarry's own workers on this
/// machine, or an Apache Ballista cluster whose scheduler the workers
/// submit plans to.
///
/// Written `local`, `ballista://HOST:PORT` (the executors read the data
/// directory at the same path: a shared filesystem), or
/// `ballista://HOST:PORT?store=s3://BUCKET/PREFIX` (the tables a query
/// reads are copied to an S3-compatible object store, and the executors
/// read them there).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum EngineTarget {
    #[default]
    Local,
    /// The scheduler's `HOST:PORT`, and the object store if one is used.
    Ballista { scheduler: String, store: Option<ClusterStore> },
}

/// An S3-compatible bucket (and a key prefix in it) that every executor
/// reads. Endpoint, region and credentials are not part of it: each process
/// takes them from its own environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`),
/// so no secret travels with a plan or sits in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStore {
    pub bucket: String,
    /// No leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl ClusterStore {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub fn parse(s: &str) -> Result<ClusterStore, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| {
            format!("'{s}' is not an object store: write s3://BUCKET/PREFIX (any S3-compatible store)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!("'{s}': a bucket name is 3 to 63 lowercase letters, digits, '-' or '.'"));
        }
        let prefix = prefix.trim_matches('/');
        let prefix_ok = prefix.split('/').all(|part| {
            prefix.is_empty()
                || (!part.is_empty()
                    && part != "."
                    && part != ".."
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        });
        if !prefix_ok {
            return Err(format!("'{s}': a prefix is '/'-separated names of letters, digits, '-', '_' or '.'"));
        }
        Ok(ClusterStore { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl EngineTarget {
    /// `local`, or `ballista://HOST:PORT[?store=s3://BUCKET/PREFIX]` (the
    /// port defaults to 50050).
    pub fn parse(s: &str) -> Result<EngineTarget, String> {
        let s = s.trim();
        if s.is_empty() || s == "local" {
            return Ok(EngineTarget::Local);
        }
        let Some(rest) = s.strip_prefix("ballista://") else {
            return Err(format!("'{s}' is not an engine: local, or ballista://HOST:PORT (a Ballista scheduler)"));
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let store = match query {
            "" => None,
            q => match q.strip_prefix("store=") {
                Some(url) => Some(ClusterStore::parse(url)?),
                None => return Err(format!("'{s}': the only setting after '?' is store=s3://BUCKET/PREFIX")),
            },
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(format!("'{s}': name the scheduler as ballista://HOST:PORT"));
        }
        let scheduler = if rest.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            rest.to_string()
        } else {
            format!("{rest}:50050")
        };
        Ok(EngineTarget::Ballista { scheduler, store })
    }

    /// As written in configuration.
    pub fn as_url(&self) -> String {
        match self {
            EngineTarget::Local => "local".into(),
            EngineTarget::Ballista { scheduler, store: None } => format!("ballista://{scheduler}"),
            EngineTarget::Ballista { scheduler, store: Some(s) } => format!("ballista://{scheduler}?store={}", s.url()),
        }
    }

    /// The object store a cluster's executors read, if it has one.
    pub fn store(&self) -> Option<&ClusterStore> {
        match self {
            EngineTarget::Ballista { store, .. } => store.as_ref(),
            EngineTarget::Local => None,
        }
    }

    /// For people (the page, provenance).
    pub fn describe(&self) -> String {
        match self {
            EngineTarget::Local => "DataFusion on this machine".into(),
            EngineTarget::Ballista { scheduler, store: None } => format!("Ballista cluster at {scheduler}"),
            EngineTarget::Ballista { scheduler, store: Some(s) } => {
                format!("Ballista cluster at {scheduler}, data in {}", s.url())
            }
        }
    }
}

impl From<EngineTarget> for String {
    fn from(t: EngineTarget) -> String {
        t.as_url()
    }
}

impl TryFrom<String> for EngineTarget {
    type Error = String;
    fn try_from(s: String) -> Result<EngineTarget, String> {
        EngineTarget::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_targets_read_and_write_as_urls() {
        assert_eq!(EngineTarget::parse("local").unwrap(), EngineTarget::Local);
        let b = EngineTarget::parse("ballista://10.0.0.5").unwrap();
        assert_eq!(b, EngineTarget::Ballista { scheduler: "10.0.0.5:50050".into(), store: None });
        assert_eq!(EngineTarget::parse(&b.as_url()).unwrap(), b);
        assert_eq!(serde_json::to_value(&b).unwrap(), "ballista://10.0.0.5:50050");
        let s = EngineTarget::parse("ballista://h:7?store=s3://quarry-data/team/a/").unwrap();
        let store = ClusterStore { bucket: "quarry-data".into(), prefix: "team/a".into() };
        assert_eq!(s, EngineTarget::Ballista { scheduler: "h:7".into(), store: Some(store) });
        assert_eq!(s.as_url(), "ballista://h:7?store=s3://quarry-data/team/a");
        assert_eq!(EngineTarget::parse(&s.as_url()).unwrap(), s);
        assert_eq!(EngineTarget::parse("ballista://h?store=s3://abc").unwrap().store().unwrap().prefix, "");
        for bad in [
            "spark://x",
            "ballista://",
            "ballista://u@h:1",
            "ballista://h:1/db",
            "ballista://h?store=gs://b/p",
            "ballista://h?store=s3://B/p",
            "ballista://h?store=s3://ab",
            "ballista://h?store=s3://abc/../x",
            "ballista://h?store=s3://abc/a b",
            "ballista://h?region=x",
        ] {
            assert!(EngineTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
