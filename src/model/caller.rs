//! Where a model call's batches run: on the thread of the job partition that makes it, while
//! every core drives a partition of its own, else spread over the rayon pool.

use std::cell::Cell;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use super::RewardModel;
use crate::error::Result;

tokio::task_local! {
    /// Inside [`RewardModel::partition`]: the model (its address) whose partition the task drives.
    static PARTITION_OF: usize;
    /// Inside [`RewardModel::partition`]: the partition's place in the count of those streaming.
    static STREAMING: Arc<Streaming>;
}

thread_local! {
    /// Inside [`RewardModel::partition_work`]: the model whose partition's work this thread
    /// does for the partition's task (0: none).
    static WORK_OF: Cell<usize> = const { Cell::new(0) };
}

/// Restores the thread's [`WORK_OF`] when the work ends, also by a panic.
struct WorkOf(usize);

impl Drop for WorkOf {
    fn drop(&mut self) {
        WORK_OF.set(self.0);
    }
}

/// One streaming partition, counted until its last row is processed ([`streaming_ended`]) or
/// its future is dropped (also unfinished).
struct Streaming {
    model: Arc<RewardModel>,
    counted: AtomicBool,
}

impl Streaming {
    fn end(&self) {
        if self.counted.swap(false, Ordering::SeqCst) {
            self.model.partitions.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.end();
    }
}

/// Called from a partition's task ([`RewardModel::partition`]) once it has processed its last
/// row: it no longer counts as streaming, so the model calls of the partitions still streaming
/// spread over the pool while its files close (a partition that finishes first leaves a core
/// free); elsewhere, nothing.
pub fn streaming_ended() {
    let _ = STREAMING.try_with(|s| s.end());
}

impl RewardModel {
    /// Runs `partition`, the future that drives one partition of a job, counted as one of the
    /// job's streaming partitions until it calls [`streaming_ended`]. While at least as many
    /// stream as the rayon pool has threads, the model calls a partition's task makes itself
    /// run their batches in sequence on its thread: every core already drives a partition, and
    /// handing the batches to the pool would only add wake-ups and idle cores. With fewer
    /// partitions streaming (one finished early, a plan with fewer partitions than threads)
    /// and for calls made elsewhere (a repartition's input tasks, `segscore sql`, the blocking
    /// pool unless the partition handed the work over with [`RewardModel::partition_work`]),
    /// they go to the pool.
    pub async fn partition<F: Future>(self: &Arc<Self>, partition: F) -> F::Output {
        self.partitions.fetch_add(1, Ordering::SeqCst);
        let streaming = Arc::new(Streaming {
            model: Arc::clone(self),
            counted: AtomicBool::new(true),
        });
        STREAMING
            .scope(streaming, PARTITION_OF.scope(self.key(), partition))
            .await
    }

    /// `work` made into a closure to run on another thread (the blocking pool) for the
    /// partition whose task calls this: while it runs, its model calls count as that task's
    /// own (see [`RewardModel::runs_on_caller`]). Called outside a partition,
    /// `work` runs as it is.
    pub fn partition_work<R>(&self, work: impl FnOnce() -> R) -> impl FnOnce() -> R {
        let of = PARTITION_OF.try_with(|&m| m).unwrap_or(0);
        move || {
            let _restore = WorkOf(WORK_OF.replace(of));
            work()
        }
    }

    /// Whether a model call made here would run its batches on this thread, in sequence (see
    /// [`RewardModel::partition`]); false means spread over the rayon pool.
    pub fn runs_on_caller(&self) -> bool {
        let key = self.key();
        (PARTITION_OF.try_with(|&m| m == key).unwrap_or(false) || WORK_OF.get() == key)
            && self.partitions.load(Ordering::SeqCst) >= rayon::current_num_threads()
    }

    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// `f` over each range of rows (a model batch, a generation), here or over the pool as
    /// [`RewardModel::runs_on_caller`] says; the results in order either way.
    pub(crate) fn map_batches<T: Send>(
        &self,
        ranges: &[Range<usize>],
        f: impl Fn(&Range<usize>) -> Result<T> + Sync + Send,
    ) -> Result<Vec<T>> {
        if self.runs_on_caller() {
            ranges.iter().map(f).collect()
        } else {
            ranges.par_iter().map(f).collect()
        }
    }
}
