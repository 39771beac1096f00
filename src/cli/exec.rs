//! Running a command: the thread pools (rayon for the model, tokio for the streams), signal
//! handling around a job, the allocator setting the process starts with, and its end.

use crate::error::Error;
use crate::evaluate::Summary;
use crate::pipeline::{self, JobConfig, Stop};

/// The most worker threads a command takes (`--threads`, `--vcores`).
pub(crate) const MAX_THREADS: u64 = 1024;

/// The parser of a thread count: 1 to [`MAX_THREADS`]. Each thread drives a partition and holds
/// a model session; a count far past the machine only makes a run slower (1024 on 2 cores took
/// 9 s for 2,000 rows, 100000 still ran after a minute), and no machine segscore runs on needs
/// more.
pub(crate) fn threads_parser() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=MAX_THREADS)
}

/// The parser of a number that must be positive and finite (`--huber-delta`): "0", "-1",
/// "nan" and "inf" are usage errors that say so.
pub(crate) fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err(format!("must be a positive number, got {text}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The parser of a number of seconds: positive and finite, and no more than a
/// [`std::time::Duration`] holds (`--progress-interval 1e300` panicked in the run).
pub(crate) fn seconds_parser(text: &str) -> Result<f64, String> {
    let x = positive_number(text)?;
    std::time::Duration::try_from_secs_f64(x)
        .map(|_| x)
        .map_err(|_| format!("{text} seconds is more than a duration can hold"))
}

/// Sizes the process's thread pools for `threads` workers: glibc malloc's arenas
/// ([`malloc_arenas`]) and rayon's global pool, which runs the model's batches and the sorts.
/// The pool has no more threads than the machine has cores
/// ([`crate::engine::default_threads`]): its idle threads look for work in every other one's
/// queue, so past the cores they only spin (at `--threads 1024` on 2 cores, 80% of the run's
/// CPU time). With more partitions streaming than the pool has threads, each partition runs
/// its model calls on its own thread ([`crate::model::RewardModel::runs_on_caller`]), so every
/// session still runs at once. Only the first call builds the pool.
pub(crate) fn thread_pools(threads: usize) {
    malloc_arenas(threads);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.min(crate::engine::default_threads()))
        .build_global();
}

/// The pools for `threads` workers ([`thread_pools`]) and a Tokio runtime of as many worker
/// threads, which drives DataFusion's streams and the writers.
pub(crate) fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    thread_pools(threads);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the async runtime: {e}")))
}

/// Runs the job; SIGINT or SIGTERM stops it cleanly ([`pipeline::run_until`]): its partitions
/// are cancelled and their writer tasks joined, what is not committed is removed, so nothing
/// half-written is left and no `_SUCCESS` appears; committed shards stay for `--resume`. A
/// second signal ends the process at once.
pub(crate) fn run_job(cfg: JobConfig) -> Result<Summary, Error> {
    let rt = runtime(cfg.threads)?;
    rt.block_on(async {
        let (sender, stop) = Stop::channel();
        let signals = tokio::spawn(async move {
            let first = stop_signal().await;
            sender.stop(first);
            tracing::warn!(
                signal = first,
                "stopping: cancelling the run (a second signal ends it at once)"
            );
            let second = stop_signal().await;
            std::process::exit(if second == "SIGINT" { 130 } else { 143 });
        });
        let result = pipeline::run_until(&cfg, stop).await;
        signals.abort();
        result
    })
}

/// Waits for SIGINT or SIGTERM and returns its name.
pub(crate) async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// ONNX Runtime 1.29 and later, on Linux, record telemetry from the moment the library starts:
/// a device id and an event store under `$HOME/.cache/Microsoft/DeveloperTools/.onnxruntime`
/// (the process's path, the OS, the models' metadata), and an uploader that sends them to
/// Microsoft when the machine can reach it. `with_telemetry(false)` on the environment only
/// quiets later events; `ORT_DISABLE_TELEMETRY=1` before the library starts turns all of it
/// off. Set unless the environment already says otherwise.
pub(crate) fn disable_onnxruntime_telemetry() {
    if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
        // Called first thing in main, before any other thread exists (no concurrent getenv).
        std::env::set_var("ORT_DISABLE_TELEMETRY", "1");
    }
}

/// glibc gives each thread that allocates a heap arena of its own, up to 8 per core. Batches
/// allocated on one thread and freed on another then fragment them, and a long run's memory
/// creeps up (+30% from 1M to 10M rows on 2 cores with glibc's default). Too few arenas are
/// worse: the threads queue on their locks. Capped at 2, `--threads 16` on 16 cores took
/// 7.65-8.87 s for 4M segments, half its CPU time in the kernel, against 1.82 s with 16
/// arenas (2026-12-04, a 16-core H200 machine). So one arena per worker thread, at least 2
/// (flat memory on 2 cores, no queue on 16); `MALLOC_ARENA_MAX` in the environment still wins.
fn malloc_arenas(threads: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let arenas = libc::c_int::try_from(threads.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter, under the main arena's lock, so
        // threads already running are no hazard (the arenas they hold stay). Called before the
        // pools' threads start, so they are all under the cap.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = threads;
}

/// Ends the process with exit status `code` once the command has returned: stdout flushed
/// (Rust's and C's streams), then `_exit`, which skips the C and C++ exit handlers. Those are
/// ONNX Runtime's static destructors (its kernel registry, allocators, thread pools, freed one
/// by one): 8 ms of a job's serial end on 2 cores, for memory the kernel takes back anyway.
/// Everything a command writes is written, synced and closed before it returns; Rust runs no
/// destructors at exit either way. A coverage build (`LLVM_PROFILE_FILE` set) writes its
/// profile from an exit handler, so it exits normally.
pub(crate) fn end_process(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().lock().flush();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("LLVM_PROFILE_FILE").is_none() {
        // SAFETY: fflush(NULL) flushes every C stream; _exit ends the process without running
        // exit handlers, which nothing after this point needs.
        unsafe {
            libc::fflush(std::ptr::null_mut());
            libc::_exit(code.into());
        }
    }
    std::process::exit(code.into())
}
