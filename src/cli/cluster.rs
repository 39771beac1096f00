//! `segscore cluster scheduler|executor`: a Ballista cluster's processes, with segscore's
//! functions, in this one binary. Ballista has no authentication: both bind to 127.0.0.1
//! unless told another address. They come with the `cluster` Cargo feature (default); a
//! build without it says how to get them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

#[cfg(feature = "cluster")]
use crate::cli::exec::runtime;
#[cfg(feature = "cluster")]
use crate::cluster::serve::{self, ExecutorSettings, SchedulerSettings};
use crate::error::Error;
use crate::model::Provider;

/// The cluster's processes.
#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// A Ballista scheduler: plans the jobs `segscore run --cluster df://HOST:PORT` sends and
    /// hands their tasks to the executors.
    Scheduler {
        /// Where it listens (HOST:PORT). Anyone who reaches it can run queries.
        #[arg(long, default_value = "127.0.0.1:50050", value_name = "HOST:PORT")]
        bind: SocketAddr,
        /// Seconds without an executor's heartbeat before its tasks run elsewhere.
        #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        executor_timeout: u64,
    },
    /// A Ballista executor: runs the scan, the model and the window of the scheduler's jobs.
    /// The inputs and the model must be at the same paths as on the client.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Where it serves its results to the other executors and the client (HOST:PORT).
        #[arg(long, default_value = "127.0.0.1:50051", value_name = "HOST:PORT")]
        bind: SocketAddr,
        /// Its gRPC port, on the bind host.
        #[arg(long, default_value_t = 50052, value_name = "PORT")]
        grpc_port: u16,
        /// The host the scheduler, the other executors and the client reach it at (default:
        /// the bind host).
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Its folder for shuffle files and spills.
        #[arg(long, value_name = "DIR", value_parser = crate::cli::path_arg())]
        work_dir: PathBuf,
        /// Tasks at once, and model sessions (default: all cores).
        #[arg(long, value_name = "N", value_parser = crate::cli::exec::threads_parser())]
        vcores: Option<usize>,
        /// Memory its tasks may hold, e.g. 8GiB (default: Ballista's share of the machine's).
        #[arg(long, value_name = "SIZE")]
        memory_pool_size: Option<bytesize::ByteSize>,
        /// The models' execution provider: cpu, cuda or auto.
        #[arg(long, default_value = "auto")]
        provider: Provider,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        heartbeat: u64,
    },
}

/// In a segscore built without the `cluster` feature: the error saying how to build one.
#[cfg(not(feature = "cluster"))]
pub(crate) fn cluster(_: ClusterCommand) -> Result<(), Error> {
    Err(crate::cluster::not_built("segscore cluster"))
}

/// Runs a cluster process until SIGTERM or SIGINT.
#[cfg(feature = "cluster")]
pub(crate) fn cluster(cmd: ClusterCommand) -> Result<(), Error> {
    match cmd {
        ClusterCommand::Scheduler {
            bind,
            executor_timeout,
        } => runtime(crate::engine::default_threads())?.block_on(serve::scheduler(SchedulerSettings {
            bind,
            executor_timeout_secs: executor_timeout,
        })),
        ClusterCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            external_host,
            work_dir,
            vcores,
            memory_pool_size,
            provider,
            heartbeat,
        } => runtime(vcores.unwrap_or_else(crate::engine::default_threads))?.block_on(serve::executor(
            ExecutorSettings {
                scheduler,
                bind,
                grpc_port,
                external_host,
                work_dir,
                vcores,
                memory_pool_size: memory_pool_size.map(|m| m.as_u64()),
                provider,
                heartbeat_secs: heartbeat,
            },
        )),
    }
}
