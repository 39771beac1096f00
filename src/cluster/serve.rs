//! The scheduler and executor processes (`segscore cluster scheduler|executor`): Ballista's,
//! with every segscore function registered ([`crate::functions::served`]) and segscore's
//! `segscore.*` settings known. Both stop cleanly on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::ExecutorProcessConfig;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use segscore_plan::cluster as process;

use crate::error::{Error, Result};
use crate::model::shared::{set_host, Host};
use crate::model::Provider;

/// A scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Where it listens (gRPC).
    pub bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor is taken for dead and its tasks
    /// run elsewhere.
    pub executor_timeout_secs: u64,
}

/// An executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// Where it serves its results (Arrow Flight).
    pub bind: SocketAddr,
    /// Its gRPC port (tasks pushed by the scheduler).
    pub grpc_port: u16,
    /// The host others reach it at (default: the bind address's).
    pub external_host: Option<String>,
    /// Its folder for shuffle files and spills.
    pub work_dir: PathBuf,
    /// Tasks at once (default: the machine's cores).
    pub vcores: Option<usize>,
    /// Bytes of memory its tasks may hold (default: Ballista's share of the machine's).
    pub memory_pool_size: Option<u64>,
    /// The models' execution provider.
    pub provider: Provider,
    /// Seconds between its heartbeats to the scheduler.
    pub heartbeat_secs: u64,
}

/// The session a scheduler plans a query in: Ballista's, with segscore's functions.
fn session_state(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    use ballista_core::extension::{
        ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
    };
    let mut state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(super::runtime(None)?)
        .with_optimizer_rules(segscore_plan::unnest::guarded(
            ballista_core::optimizer::ballista_default_optimizer_rules(),
        ))
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build();
    crate::functions::register_served(&mut state)?;
    Ok(state)
}

/// Ballista's functions and segscore's, for an executor.
fn registry() -> BallistaFunctionRegistry {
    let mut r = BallistaFunctionRegistry::default();
    let (scalar, aggregate) = crate::functions::served();
    for f in scalar {
        r.scalar_functions.insert(f.name().to_string(), Arc::new(f));
    }
    for f in aggregate {
        r.aggregate_functions.insert(f.name().to_string(), Arc::new(f));
    }
    r
}

fn cluster_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster {
        url: what.to_string(),
        reason: e.to_string(),
    }
}

/// Runs a scheduler until SIGTERM or SIGINT.
pub async fn scheduler(s: SchedulerSettings) -> Result<()> {
    let mut config = SchedulerConfig {
        bind_host: s.bind.ip().to_string(),
        bind_port: s.bind.port(),
        external_host: s.bind.ip().to_string(),
        executor_timeout_seconds: s.executor_timeout_secs,
        expire_dead_executor_interval_seconds: s.executor_timeout_secs.clamp(1, 15),
        no_executors_grace_period_seconds: s.executor_timeout_secs,
        ..SchedulerConfig::default()
    }
    .with_override_config_producer(Arc::new(super::config_producer))
    .with_override_session_builder(Arc::new(session_state));
    config.finished_job_data_clean_up_interval_seconds = 60;
    let name = format!("scheduler {}", s.bind);
    let listener = tokio::net::TcpListener::bind(s.bind)
        .await
        .map_err(|e| cluster_error(&name, format!("cannot listen: {e}")))?;
    // Port 0 takes a free port: the log and the scheduler's own address say which.
    let bound = listener.local_addr().unwrap_or(s.bind);
    config.bind_port = bound.port();
    let cluster = process::cluster_state(&config)
        .await
        .map_err(|e| cluster_error(&name, e))?;
    config.validate().map_err(|e| cluster_error(&name, e))?;
    let server = process::create_scheduler(cluster, Arc::new(config))
        .await
        .map_err(|e| cluster_error(&name, e))?;
    tracing::info!(bind = %bound, "scheduler listening");
    tokio::select! {
        served = process::serve_scheduler(listener, server) => served.map_err(|e| cluster_error(&name, e)),
        signal = terminated() => {
            tracing::info!(signal, "scheduler stopped");
            Ok(())
        }
    }
}

/// Runs an executor until SIGTERM or SIGINT (Ballista's own handling: it tells the
/// scheduler, then stops).
pub async fn executor(s: ExecutorSettings) -> Result<()> {
    let name = format!("executor {}", s.bind);
    let (scheduler_host, scheduler_port) = super::scheduler_address(&s.scheduler)?;
    ports_free(&s)?;
    crate::store::local_only(
        "--work-dir",
        &s.work_dir,
        "the executor's shuffle files and spills are local",
    )?;
    std::fs::create_dir_all(&s.work_dir).map_err(|e| Error::io(&s.work_dir, e))?;
    let work_dir = s
        .work_dir
        .to_str()
        .ok_or_else(|| Error::Usage(format!("--work-dir {}: not UTF-8", s.work_dir.display())))?
        .to_string();
    let vcores = s.vcores.unwrap_or_else(crate::engine::default_threads).max(1);
    set_host(Host {
        provider: s.provider,
        sessions: vcores,
        name: name.clone(),
        address: format!(
            "{}:{}",
            s.external_host
                .as_deref()
                .map_or_else(|| s.bind.ip().to_string(), str::to_string),
            s.bind.port()
        ),
    });
    let wd = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: s.bind.ip().to_string(),
        port: s.bind.port(),
        grpc_port: s.grpc_port,
        external_host: Some(s.external_host.clone().unwrap_or_else(|| s.bind.ip().to_string())),
        scheduler_host,
        scheduler_port,
        // An executor started before its scheduler waits for it this long.
        scheduler_connect_timeout_seconds: 30,
        vcores,
        work_dir: Some(work_dir),
        memory_pool_size: s.memory_pool_size,
        executor_heartbeat_interval_seconds: s.heartbeat_secs.max(1),
        print_thread_info: false,
        override_function_registry: Some(Arc::new(registry())),
        override_config_producer: Some(Arc::new(super::config_producer)),
        override_runtime_producer: Some(Arc::new(move |_| super::runtime(Some(&wd)))),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(bind = %s.bind, scheduler = %s.scheduler, vcores, "executor starting");
    process::run_executor(Arc::new(config))
        .await
        .map_err(|e| cluster_error(&name, e))
}

/// Whether the executor can listen where it is told to. Ballista's executor, unable to listen,
/// logs an error and returns as if stopped (a supervisor would take the exit for a clean
/// stop), and at port 0 it listens on a free port but tells the scheduler 0. So: no port 0, two
/// different ports, each free now (bound, then let go).
fn ports_free(s: &ExecutorSettings) -> Result<()> {
    let ports = [("--bind", s.bind.port()), ("--grpc-port", s.grpc_port)];
    for (flag, port) in ports {
        if port == 0 {
            return Err(Error::Usage(format!(
                "{flag}: give a port (the scheduler is told it): 0 would be any free one"
            )));
        }
    }
    if s.bind.port() == s.grpc_port {
        return Err(Error::Usage(format!(
            "--grpc-port {} is --bind's port: the executor serves two things, on two ports",
            s.grpc_port
        )));
    }
    for (_, port) in ports {
        let at = SocketAddr::new(s.bind.ip(), port);
        std::net::TcpListener::bind(at).map_err(|e| {
            cluster_error(
                &format!("executor {}", s.bind),
                format!("cannot listen on {at}: {e}"),
            )
        })?;
    }
    Ok(())
}

/// The first SIGTERM or SIGINT.
async fn terminated() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
