//! `quarry cluster scheduler` and `quarry cluster executor`: Ballista's
//! processes with Quarry's SQL functions (`quarry_engine::cluster`), each
//! under the limits Quarry's own workers have: no core dumps, an address
//! space capped above the memory pool, a bounded number of open files.

use crate::args::ClusterCmd;
use crate::fail;

#[cfg(feature = "ballista")]
pub(crate) fn cmd_cluster(cmd: ClusterCmd) -> bool {
    use quarry_engine::cluster::{run_executor, run_scheduler, ExecutorOptions};
    let done = match cmd {
        ClusterCmd::Scheduler { bind, port } => {
            println!("Ballista scheduler listening on {bind}:{port}");
            run_scheduler(std::net::SocketAddr::new(bind, port))
        }
        ClusterCmd::Executor { scheduler, bind, port, grpc_port, external_host, work_dir, vcores, memory_limit } => {
            let memory_bytes = memory_limit << 20;
            if let Err(e) = quarry_sandbox::limit_this_process(memory_bytes + (2 << 30)) {
                return fail(format!("the executor's limits could not be set: {e}"));
            }
            let vcores = vcores.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let work_dir = work_dir
                .unwrap_or_else(|| std::env::temp_dir().join(format!("quarry-executor-{}", std::process::id())));
            println!("Ballista executor on {bind}:{port} (gRPC {grpc_port}), {vcores} task(s) at once, scheduler {scheduler}");
            run_executor(ExecutorOptions {
                scheduler,
                bind,
                port,
                grpc_port,
                external_host,
                work_dir,
                vcores,
                memory_bytes,
            })
        }
    };
    match done {
        Ok(()) => true,
        Err(e) => fail(e),
    }
}

#[cfg(not(feature = "ballista"))]
pub(crate) fn cmd_cluster(_: ClusterCmd) -> bool {
    fail("this quarry was built without Ballista: build it with `cargo build --release --features ballista`")
}
