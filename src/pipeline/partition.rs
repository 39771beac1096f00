//! The partition driver: pulls one partition's batches from the plan, checks their order,
//! validates them (regrouping whole generations with quarantine), adds the loss columns, and
//! hands the output over a bounded channel to the partition's writer task, so that a slow
//! writer slows the reader instead of filling memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::engine::keys::cell;
use crate::error::{Error, Result};
use crate::evaluate::stream::StreamEval;
use crate::faults;
use crate::loss::Moments;
use crate::metrics::EvalSums;
use crate::pipeline::order::{KeyOrder, OrderCheck};
use crate::pipeline::plan::OutputPlan;
use crate::pipeline::score::{GenerationStage, PartitionState, Tokenized};
use crate::shard::Tally;
use crate::sink::RollingWriter;
use crate::validate::{self, Grouper, Rejections};

/// The rejected rows of all partitions, and the most a run may reject.
pub(crate) struct RejectLimit {
    pub(crate) rows: AtomicU64,
    pub(crate) max_rows: Option<u64>,
    pub(crate) input_rows: u64,
    pub(crate) max_fraction: f64,
}

/// Drives one partition: pulls batches, checks order, validates and adds losses, and hands
/// the output batches over a bounded channel to its writer task (on the same runtime), so
/// that a slow writer slows the reader instead of filling memory. With quarantine, batches are regrouped
/// into whole generations first, and invalid generations go to the rejected writer.
///
/// Returns None when `cancel` stopped it (another partition failed, or the run was stopped);
/// whatever happens, its writer task has ended when it returns.
///
/// With `sample_out`, the overall sample it kept in memory also goes there once its last row
/// is processed, before its files are closed (nothing goes when the evaluation gave up).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_partition(
    mut stream: SendableRecordBatchStream,
    plan: Arc<OutputPlan>,
    mut writers: Writers,
    rows_done: Arc<AtomicU64>,
    limit: Arc<RejectLimit>,
    cancel: CancellationToken,
    stage: Option<Arc<GenerationStage>>,
    eval: Option<Arc<StreamEval>>,
    sample_out: Option<tokio::sync::oneshot::Sender<Vec<RecordBatch>>>,
) -> Result<Option<Tally>> {
    let mut moments = Moments::default();
    let mut executors = std::collections::BTreeMap::new();
    let mut rejections = Rejections::default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<WriterMsg>(2);
    let sample_files = writers.sample.is_some();
    // Set when the partition is cancelled: a writer held at a fault point lets go.
    let writer_cancelled = Arc::new(AtomicBool::new(false));
    let cancelled = Arc::clone(&writer_cancelled);
    // A task on the job's runtime, not a thread of its own: the Parquet encoding takes its
    // turns on the `--threads` worker threads, so a job keeps at most that many cores busy.
    // Closing the files (a sync each) waits on the disk, on the blocking pool.
    let writer_task = tokio::spawn(async move {
        faults::point("writer-started");
        let written = async {
            let mut finished = false;
            let optional = |w: &mut Option<RollingWriter>, b: &RecordBatch, what: &str| match w {
                Some(w) => w.write(b),
                None => Err(Error::Internal(format!("{what} rows without their writer"))),
            };
            while let Some(msg) = rx.recv().await {
                match msg {
                    WriterMsg::Batch(b) => {
                        writers.segments.write(&b)?;
                        faults::point_async_until("batch-written", &cancelled).await;
                    }
                    WriterMsg::Rejected(b) => optional(&mut writers.rejected, &b, "rejected")?,
                    WriterMsg::Generations(b) => optional(&mut writers.generations, &b, "generation")?,
                    WriterMsg::Sample(b) => optional(&mut writers.sample, &b, "sample")?,
                    WriterMsg::Unsorted => writers.segments.mark_unsorted()?,
                    WriterMsg::Finish => finished = true,
                }
            }
            if !finished || cancelled.load(Ordering::SeqCst) {
                // Cancelled, or the partition failed: the open parts are dropped unwritten.
                return Ok(None);
            }
            let closing = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let written = writers.finish();
                tracing::debug!(seconds = started.elapsed().as_secs_f64(), "part files closed");
                written
            });
            let closed = closing.await;
            closed
                .map_err(|e| Error::Internal(format!("closing the part files failed: {e}")))?
                .map(Some)
        }
        .await;
        faults::point("writer-exited");
        written
    });
    // Sends a message to the writer; false when the writer has stopped or the partition is
    // cancelled (a writer that is slow, or held, must not keep a cancelled partition waiting).
    let send = |msg: WriterMsg| {
        let (tx, cancel) = (&tx, &cancel);
        async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => false,
                sent = tx.send(msg) => sent.is_ok(),
            }
        }
    };
    let quarantine = plan.rejected.is_some();
    let mut order = Some(KeyOrder::new(stream.schema().as_ref(), plan.gid, plan.seg)?);
    // Whole generations: for quarantine, the generation stage, and the evaluation in the pass
    // (which gives up, and leaves the evaluation to SQL, if rows come out of key order).
    let eval_ok = AtomicBool::new(eval.is_some());
    let mut sums = EvalSums::default();
    let grouped = quarantine || stage.is_some() || eval.is_some();
    let mut grouper = grouped.then(|| Grouper::new(plan.gid));
    let mut scoring = stage.clone().map(Scoring::new);
    // The overall sample's rows go to the writer where a later shard or `--resume` needs them
    // from files; in the last shard a run runs they stay in memory for the evaluation.
    let mut sample_rows: Vec<RecordBatch> = Vec::new();
    // Checks one batch (of whole generations, with quarantine) and sends its rows on.
    let mut process = |batch: RecordBatch| -> Result<Vec<WriterMsg>> {
        let mut msgs = Vec::new();
        let reasons = plan.checks.reasons(&batch)?;
        let good = match (reasons, &plan.rejected) {
            (None, _) => batch,
            (Some(reasons), None) => {
                // The first row with a reason of its own, else the first invalid one.
                let first = |own: bool| {
                    reasons
                        .iter()
                        .enumerate()
                        .find_map(|(i, r)| r.filter(|r| !own || !r.derived()).map(|r| (i, r)))
                };
                let (row, reason) = first(true)
                    .or_else(|| first(false))
                    .ok_or_else(|| Error::Internal("a batch with no invalid row was rejected".into()))?;
                return Err(plan.invalid_row(&batch, row, reason));
            }
            (Some(reasons), Some(layout)) => {
                let before = rejections.rows;
                let (good, bad) = validate::split(&batch, plan.gid, &reasons, &mut rejections)?;
                if let Some((bad, why)) = bad {
                    msgs.push(WriterMsg::Rejected(layout.batch(&bad, &why)?));
                }
                let added = rejections.rows - before;
                let total = limit.rows.fetch_add(added, Ordering::Relaxed) + added;
                if limit.max_rows.is_some_and(|m| total > m) {
                    let mut seen = rejections.clone();
                    seen.rows = total;
                    return Err(validate::too_many(&seen, limit.input_rows, limit.max_fraction));
                }
                good
            }
        };
        if good.num_rows() > 0 {
            let (out, batch_moments) = plan.finish(&good)?;
            moments.merge(&batch_moments);
            if let (Some(e), true) = (&eval, eval_ok.load(Ordering::Relaxed)) {
                let (rows, batch_sums) = e.generations(&out)?;
                sums.merge(&batch_sums);
                msgs.push(WriterMsg::Generations(rows));
                let sample = e.sample(&out)?;
                if sample.num_rows() > 0 {
                    if sample_files {
                        msgs.push(WriterMsg::Sample(sample));
                    } else {
                        sample_rows.push(sample);
                    }
                }
            }
            msgs.push(WriterMsg::Batch(out));
        }
        Ok(msgs)
    };
    // When the first row came: on a cluster, the rows come once the job is done, so the time
    // from here to the files' close is what the client alone takes.
    let mut first_row: Option<std::time::Instant> = None;
    let mut rows_read = 0u64;
    let outcome: Result<()> = async {
        'batches: loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                next = stream.next() => next,
            };
            let Some(batch) = next else { break };
            let batch = batch.map_err(Error::from_datafusion)?;
            if batch.num_rows() == 0 {
                continue;
            }
            first_row.get_or_insert_with(std::time::Instant::now);
            rows_read += batch.num_rows() as u64;
            // Order first: if declared-sorted input is not, every later check is moot.
            if let Some(o) = &mut order {
                // Quarantine finds duplicates among a generation's rows itself; otherwise a
                // duplicate before a row out of order is the first problem.
                let check = match o.check(&batch, plan.gid, plan.seg)? {
                    OrderCheck::OutOfOrder {
                        duplicate_before: Some(row),
                        ..
                    } if !quarantine => OrderCheck::Duplicate { row },
                    c => c,
                };
                match check {
                    OrderCheck::InOrder => {}
                    // Quarantine finds duplicates among a generation's rows.
                    OrderCheck::Duplicate { .. } if quarantine => {}
                    OrderCheck::Duplicate { row } => {
                        return Err(Error::DuplicateSegment {
                            generation_id: cell(batch.column(plan.gid), row),
                            segment_index: cell(batch.column(plan.seg), row),
                        })
                    }
                    OrderCheck::OutOfOrder {
                        row,
                        prev_gid,
                        prev_seg,
                        ..
                    } if plan.sorted_declared => {
                        return Err(Error::NotSorted {
                            generation_id: cell(batch.column(plan.gid), row),
                            segment_index: cell(batch.column(plan.seg), row),
                            prev_generation_id: prev_gid,
                            prev_segment_index: prev_seg,
                        })
                    }
                    OrderCheck::OutOfOrder { .. } if !quarantine && stage.is_none() => {
                        // Only the evaluation grouped the rows: it is left to SQL, and the
                        // rows held back go on as they are.
                        eval_ok.store(false, Ordering::Relaxed);
                        order = None;
                        if let Some(held) = grouper.take().and_then(Grouper::finish) {
                            for msg in process(held)? {
                                if !send(msg).await {
                                    break 'batches;
                                }
                            }
                        }
                        if !send(WriterMsg::Unsorted).await {
                            break;
                        }
                    }
                    OrderCheck::OutOfOrder {
                        row,
                        prev_gid,
                        prev_seg,
                        ..
                    } if grouped => {
                        return Err(Error::Usage(format!(
                            "{} needs the job query's rows in (generation_id, segment_index) order, as the window of the built-in query gives them; the replacement query's are not (generation_id={}, segment_index={} came after generation_id={prev_gid}, segment_index={prev_seg})",
                            if quarantine { "--on-invalid quarantine" } else { "text input (or --prediction cumulative)" },
                            cell(batch.column(plan.gid), row),
                            cell(batch.column(plan.seg), row),
                        )))
                    }
                    OrderCheck::OutOfOrder { .. } => {
                        order = None;
                        if !send(WriterMsg::Unsorted).await {
                            break;
                        }
                    }
                }
            }
            rows_done.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            if let Some(i) = plan.executor {
                count_executors(batch.column(i), &mut executors)?;
            }
            let ready = match &mut grouper {
                Some(g) => g.push(batch)?,
                None => vec![batch],
            };
            for b in ready {
                let b = match &mut scoring {
                    // Tokenizes this batch while the model scores the one before.
                    Some(s) => match s.push(b).await? {
                        Some(scored) => scored,
                        None => continue,
                    },
                    None => b,
                };
                for msg in process(b)? {
                    if !send(msg).await {
                        break 'batches; // cancelled, or the writer failed (its error is below)
                    }
                }
            }
        }
        if cancel.is_cancelled() {
            return Ok(());
        }
        tracing::debug!(
            rows = rows_read,
            seconds = first_row.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            "partition's rows all read"
        );
        let mut last = grouper.take().and_then(Grouper::finish);
        if let Some(s) = &mut scoring {
            let mut rest = Vec::new();
            if let Some(b) = last.take() {
                rest.extend(s.push(b).await?);
            }
            rest.extend(s.flush().await?);
            for b in rest {
                for msg in process(b)? {
                    if !send(msg).await {
                        return Ok(());
                    }
                }
            }
        } else if let Some(b) = last {
            for msg in process(b)? {
                if !send(msg).await {
                    return Ok(());
                }
            }
        }
        // Everything was sent: the writer may close its files under their final names.
        send(WriterMsg::Finish).await;
        Ok(())
    }
    .await;
    // No more model calls: the partitions still streaming may spread theirs over the pool.
    crate::model::streaming_ended();
    // Every row is processed: the overall metrics may start while the files close.
    let all_rows = outcome.is_ok() && !cancel.is_cancelled() && eval_ok.load(Ordering::Relaxed);
    if let Some(out) = sample_out.filter(|_| all_rows) {
        let _ = out.send(sample_rows.clone());
    }
    if outcome.is_err() || cancel.is_cancelled() {
        writer_cancelled.store(true, Ordering::SeqCst);
    }
    drop(tx);
    // The writer task is always joined: none is left to write after the run gives up. A
    // cancellation while it finishes its files tells it to let go of them.
    let mut writer_task = writer_task;
    let joined = tokio::select! {
        joined = &mut writer_task => joined,
        _ = cancel.cancelled() => {
            writer_cancelled.store(true, Ordering::SeqCst);
            writer_task.await
        }
    };
    let written = joined.map_err(|e| Error::Internal(format!("the writer task failed: {e}")))?;
    outcome?;
    let Some(written) = written? else {
        return Ok(None);
    };
    Ok(Some(Tally {
        moments,
        generations: order.map(|o| o.generations),
        rejections,
        files: written.segments,
        rejected_files: written.rejected,
        eval: eval_ok.load(Ordering::Relaxed).then_some(sums),
        generation_files: written.generations,
        sample_files: written.sample,
        sample: sample_rows,
        executors,
        receive_nanos: first_row.map_or(0, |t| t.elapsed().as_nanos() as u64),
        ..Tally::default()
    }))
}

/// Adds a batch's rows to the count of the executor named in `names`, run by run.
fn count_executors(names: &ArrayRef, counts: &mut std::collections::BTreeMap<String, u64>) -> Result<()> {
    use datafusion::arrow::array::{Array, AsArray};
    let Some(values) = names.as_string_opt::<i32>() else {
        return Err(Error::Internal(format!(
            "{} is not a string column",
            crate::contract::EXECUTOR_COLUMN
        )));
    };
    for run in datafusion::arrow::compute::partition(&[Arc::clone(names)])?.ranges() {
        if values.is_valid(run.start) {
            *counts.entry(values.value(run.start).to_string()).or_default() += run.len() as u64;
        }
    }
    Ok(())
}

/// The generation stage in a partition, two batches deep: a batch is tokenized (on the
/// blocking pool, generations in parallel on rayon) while the one before is scored.
struct Scoring {
    stage: Arc<GenerationStage>,
    state: Option<PartitionState>,
    pending: Option<tokio::task::JoinHandle<Result<Tokenized>>>,
}

impl Scoring {
    fn new(stage: Arc<GenerationStage>) -> Self {
        Scoring {
            stage,
            state: Some(PartitionState::default()),
            pending: None,
        }
    }

    /// Starts tokenizing `batch`; returns the batch before it, scored.
    async fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let stage = Arc::clone(&self.stage);
        let work = self.stage.model().partition_work(move || stage.tokenize(batch));
        let next = tokio::task::spawn_blocking(work);
        match self.pending.replace(next) {
            Some(previous) => self.score(previous).await.map(Some),
            None => Ok(None),
        }
    }

    /// The last batch, scored.
    async fn flush(&mut self) -> Result<Option<RecordBatch>> {
        match self.pending.take() {
            Some(previous) => self.score(previous).await.map(Some),
            None => Ok(None),
        }
    }

    async fn score(&mut self, tokenized: tokio::task::JoinHandle<Result<Tokenized>>) -> Result<RecordBatch> {
        let failed = |e: tokio::task::JoinError| Error::from_join("the generation stage", e);
        let tokenized = tokenized.await.map_err(failed)??;
        let stage = Arc::clone(&self.stage);
        let mut state = self.state.take().unwrap_or_default();
        let work = self.stage.model().partition_work(move || {
            let scored = stage.score(tokenized, &mut state);
            (scored, state)
        });
        let (scored, state) = tokio::task::spawn_blocking(work).await.map_err(failed)?;
        self.state = Some(state);
        scored
    }
}

/// A partition's writers: its segments, and where asked its rejected rows, generation rows
/// and overall sample.
pub(crate) struct Writers {
    pub(crate) segments: RollingWriter,
    pub(crate) rejected: Option<RollingWriter>,
    pub(crate) generations: Option<RollingWriter>,
    pub(crate) sample: Option<RollingWriter>,
}

/// The part files each writer wrote (file names).
struct Written {
    segments: Vec<String>,
    rejected: Vec<String>,
    generations: Vec<String>,
    sample: Vec<String>,
}

impl Writers {
    fn finish(self) -> Result<Written> {
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        };
        let optional = |w: Option<RollingWriter>| -> Result<Vec<String>> {
            Ok(w.map(|w| w.finish()).transpose()?.map(names).unwrap_or_default())
        };
        Ok(Written {
            segments: names(self.segments.finish()?),
            rejected: optional(self.rejected)?,
            generations: optional(self.generations)?,
            sample: optional(self.sample)?,
        })
    }
}

/// What a partition sends its writer task.
pub(crate) enum WriterMsg {
    /// Output rows.
    Batch(RecordBatch),
    /// Rejected rows (quarantine).
    Rejected(RecordBatch),
    /// Per-generation metric rows (the evaluation in the pass).
    Generations(RecordBatch),
    /// Rows of the overall sample.
    Sample(RecordBatch),
    /// The rows from now on may be out of order.
    Unsorted,
    /// Every row was sent: close the files. A writer whose channel closes without it discards
    /// its open files.
    Finish,
}
