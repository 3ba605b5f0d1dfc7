//! [`Limits`]: the one documented set of resource limits every kernel (SQL,
//! ingest, Python) runs under; the sandbox enforces them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Resource limits for one piece of generated work, shared by every kernel.
/// Documented here and nowhere else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Memory pool for a query's operators (default 2 GiB). Exceeding it
    /// fails the query cleanly; nothing spills to disk.
    pub memory_bytes: usize,
    /// Address space of the whole worker process (default memory_bytes + 2 GiB).
    /// Allocations the pool does not track (a string doubled in a recursive
    /// CTE, `repeat('x', 4e9)`) hit this wall and end the worker, not Quarry.
    pub address_space_bytes: u64,
    /// Wall-clock limit (default 30 s): the engine cancels the plan, and the
    /// parent kills the worker a few seconds later if it has not returned.
    #[serde(with = "secs")]
    pub time: Duration,
    /// Rows returned for display (default 10 000); `truncated` says when more existed.
    pub max_rows: usize,
    /// Bytes of results returned from the worker (default 256 MiB).
    pub max_result_bytes: usize,
    /// Largest file the worker may write (RLIMIT_FSIZE; default 0: query
    /// workers write nothing). Ingest workers, which write Parquet into the
    /// catalog, get [`Limits::for_ingest`].
    #[serde(default)]
    pub file_size_bytes: u64,
    /// Rows one query may read from one live database table (default 20
    /// million). Sent to the database as the scan's `LIMIT` (one row more,
    /// to tell that there were more), so a runaway scan stops there; a scan
    /// that reaches it fails the query — it never answers from part of a
    /// table. Snapshot the table to work on more rows.
    #[serde(default = "default_live_rows")]
    pub max_live_rows: usize,
}

fn default_live_rows() -> usize {
    20_000_000
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 << 30,
            address_space_bytes: 4 << 30,
            time: Duration::from_secs(30),
            max_rows: 10_000,
            max_result_bytes: 256 << 20,
            file_size_bytes: 0,
            max_live_rows: default_live_rows(),
        }
    }
}

impl Limits {
    /// Limits for one run of Python code: 30 s, 4 GiB of address space
    /// (pandas, numpy and scipy loaded reserve about 1 GiB of it), files up
    /// to the scratch tmpfs's size, 64 MiB of results.
    pub fn for_python() -> Limits {
        Limits {
            memory_bytes: 2 << 30,
            address_space_bytes: 4 << 30,
            file_size_bytes: 256 << 20,
            max_result_bytes: 64 << 20,
            ..Limits::default()
        }
    }

    /// Limits for parsing an uploaded file in an ingest worker: an hour, 8 GiB
    /// of address space, Parquet files up to 64 GiB.
    pub fn for_ingest() -> Limits {
        Limits {
            memory_bytes: 6 << 30,
            address_space_bytes: 8 << 30,
            time: Duration::from_secs(3600),
            file_size_bytes: 64 << 30,
            ..Limits::default()
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
    }
}
