//! The pipeline: source → query → model → loss → sink, driven as streaming DataFusion plans.
//!
//! 1. the input files are checked from their footers and registered (`generations`);
//! 2. the job query (`queries/segment_scores.sql`, or `--query-file`) scores each row with
//!    `reward_model(input_ids, token_type_ids)` as it is read, then computes targets with a
//!    window function;
//! 3. for each shard not yet committed ([`crate::shard`]), DataFusion runs the query over
//!    that shard's generations as one streaming plan, one stream per partition, with the
//!    model inside the plan;
//! 4. each partition's batches are checked ([`crate::validate`]): with `--on-invalid fail`
//!    the first invalid row stops the run, with quarantine they are regrouped into whole
//!    generations and the invalid ones go to `rejected/`; the rest get their loss columns and
//!    are written to the partition's part files while the moments for the summary accumulate;
//!    the shard's record then commits it;
//! 5. the metrics queries run over the written segments, and the output directory is
//!    committed (see [`crate::sink`]).
//!
//! - [`config`]: the job's settings; [`mod@prepare`]: the planned job; [`plan`]: the output plan;
//! - [`shards`]: the shards' passes; [`partition`]: one partition's stream; [`order`]: the key
//!   order check;
//! - [`finish`]: the totals, the evaluation and the summary; [`fingerprint`]: what `--resume`
//!   compares; [`diagnose`]: naming the file or row at fault after a failure; [`progress`].

use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::evaluate::Summary;
use crate::sink::{Found, OutputDir};

pub mod config;
pub mod diagnose;
pub mod fingerprint;
pub mod finish;
mod loading;
pub mod order;
pub mod partition;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod score;
pub mod shards;
pub mod stop;

pub use config::{JobConfig, SEGMENT_SCORES_SQL, SEGMENT_SCORES_TEXT_SQL};
pub use fingerprint::JobFingerprint;
pub use prepare::{prepare, InputOrder, Prepared};
pub use stop::{Stop, StopSender};

/// Runs the whole job and commits the output directory, shard by shard (see
/// [`crate::shard`]); with `cfg.resume`, continues an interrupted run from its committed
/// shards. On an error nothing is committed under a final name; committed shards stay in the
/// work folder for `--resume`.
pub async fn run(cfg: &JobConfig) -> Result<Summary> {
    run_until(cfg, Stop::never()).await
}

/// [`run`], stopped cleanly when `stop` comes: the partitions are cancelled and their writers
/// joined, what is not committed is removed, and the error is [`Error::Interrupted`] with the
/// number of committed shards kept for `--resume`.
pub async fn run_until(cfg: &JobConfig, mut stop: Stop) -> Result<Summary> {
    let started = Instant::now();
    let mut prepared = tokio::select! {
        p = prepare(cfg) => p?,
        signal = stop.wait() => return Err(Error::Interrupted { signal, committed: 0 }),
    };
    let (mut out, mut found) = OutputDir::prepare(&cfg.output, cfg.overwrite, cfg.resume)?;
    let job_json = serde_json::to_vec_pretty(&prepared.fingerprint)?;
    let job_sha256 = hex::encode(Sha256::digest(&job_json));
    let read_summary = || crate::evaluate::summary::read_summary(&cfg.output);
    if found == Found::Complete && cfg.overwrite && read_summary()?.job_sha256 != job_sha256 {
        // --resume --overwrite over another job's complete output: start this one.
        (out, found) = OutputDir::prepare(&cfg.output, true, false)?;
    }
    match found {
        Found::Complete => {
            let done = read_summary()?;
            if done.job_sha256 != job_sha256 {
                return Err(Error::Output {
                    path: cfg.output.clone(),
                    reason: "holds the complete output of another job (other inputs, model or settings); nothing to resume. Pass --overwrite to replace it".into(),
                });
            }
            tracing::info!(output = %cfg.output.display(), "--resume: the output is already complete");
            return Ok(done);
        }
        Found::Interrupted => match out.read(crate::sink::JOB_FILE)? {
            Some(old) => {
                let old: JobFingerprint = serde_json::from_slice(&old).map_err(|e| Error::Output {
                    path: cfg.output.clone(),
                    reason: format!(
                        "the interrupted run's {} is unreadable ({e}); pass --overwrite to start again",
                        crate::sink::JOB_FILE
                    ),
                })?;
                if let Some(diff) = old.difference(&prepared.fingerprint) {
                    return Err(Error::Usage(format!(
                        "cannot resume {}: the interrupted run had {diff}. Resume with the same inputs, model and settings, or pass --overwrite to start again",
                        cfg.output.display()
                    )));
                }
                if out.committing() {
                    tracing::info!("--resume: finishing the interrupted commit");
                    out.finish_commit()?;
                    return read_summary();
                }
            }
            None => out.write(crate::sink::JOB_FILE, &job_json)?,
        },
        Found::Fresh => out.write(crate::sink::JOB_FILE, &job_json)?,
    }
    let outcome = async {
        let (records, resumed, early) = shards::run_pending(cfg, &mut prepared, &out, &stop).await?;
        // The evaluation writes from this task alone: stopping it mid-way leaves no writer.
        let mut stop = stop.clone();
        tokio::select! {
            // Out of --memory-limit here is the same clear error as in the shards' passes.
            done = finish::finish(cfg, &prepared, &out, &records, resumed, started, job_sha256, early) => {
                done.map_err(|e| crate::engine::memory_error(e, cfg.memory_limit))
            }
            signal = stop.wait() => Err(Error::Interrupted { signal, committed: 0 }),
        }
    };
    match outcome.await {
        Ok((summary, files)) => {
            releasing_free_memory(|| out.commit(&files))?;
            Ok(summary)
        }
        Err(e) => {
            let kept = out.abort();
            crate::faults::point("aborted");
            if kept > 0 {
                tracing::warn!(
                    committed_shards = kept,
                    shards = prepared.shards,
                    "the committed shards are kept: --resume finishes the run with the same inputs and settings (after a failure that passes: the disk, memory, a signal); --overwrite starts again"
                );
            }
            Err(match e {
                Error::Interrupted { signal, .. } => Error::Interrupted {
                    signal,
                    committed: kept,
                },
                e => match &cfg.cluster {
                    #[cfg(feature = "cluster")]
                    Some(url) => crate::cluster::client::job_error(url, e),
                    _ => e,
                },
            })
        }
    }
}

/// Runs `commit` while a thread hands the allocator's free memory back to the kernel (glibc's
/// `malloc_trim`): the commit mostly waits (fsyncs, the file system freeing a replaced
/// output's blocks), and the exit that follows has that much less to unmap. 0.981x the run's time
/// at `--threads 2` and 0.976x at 1 (1M segments, `benches/ab.py`, 10 runs each, 2026-12-05).
fn releasing_free_memory<T>(commit: impl FnOnce() -> T) -> T {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free memory to the kernel, under the arenas' locks.
        // A thread that cannot be started leaves the memory to the exit.
        let trim = std::thread::Builder::new()
            .name("segscore-trim".into())
            .spawn(|| unsafe { libc::malloc_trim(0) });
        let done = commit();
        if let Ok(trim) = trim {
            let _ = trim.join();
        }
        done
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    commit()
}
