//! The flags of `quarry cluster` and `--engine`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ClusterCmd {
    /// The scheduler: plans jobs into stages and hands their tasks to executors.
    Scheduler {
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        #[arg(long, default_value_t = 50050)]
        port: u16,
    },
    /// An executor: runs tasks, with Quarry's SQL functions, under a memory pool.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// The Flight port results and shuffles are fetched from.
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// The gRPC port the scheduler reaches it at.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// The address other machines reach it at (default: --bind).
        #[arg(long)]
        external_host: Option<String>,
        /// Shuffle files between stages (default: a directory under the system's temporary one).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks run at once (default: the machine's cores).
        #[arg(long)]
        vcores: Option<usize>,
        /// Memory pool of its tasks, in MiB; the process's address space is capped 2 GiB above it.
        #[arg(long, default_value_t = 4096)]
        memory_limit: u64,
    },
}

/// Where SQL runs (`quarry sql`, `quarry serve`).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct EngineArgs {
    /// `local` (DataFusion on this machine) or `ballista://HOST:PORT` (an
    /// Apache Ballista cluster's scheduler; needs a build with
    /// `--features ballista`). Default: `engine = …` in quarry.toml, else local.
    #[arg(long, env = "QUARRY_ENGINE", value_name = "ENGINE")]
    pub engine: Option<String>,
}

impl EngineArgs {
    /// The flag, else `engine` in the configuration file `config`, else local.
    pub fn target(&self, config: &std::path::Path) -> Result<quarry_engine::EngineTarget, String> {
        crate::engine::target(self.engine.clone(), config)
    }
}
