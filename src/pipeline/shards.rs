//! Running the shards: each shard not yet committed is one streaming pass of the job's plan,
//! one task per partition, and is committed by its record once its files are in place.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::evaluate::overall::{overall_of_parts, SamplePart};
use crate::evaluate::stream::{read_all, sample_paths, StreamEval};
use crate::faults;
use crate::model::RewardModel;
use crate::pipeline::config::JobConfig;
use crate::pipeline::diagnose;
use crate::pipeline::partition::{run_partition, RejectLimit, Writers};
use crate::pipeline::plan::OutputPlan;
use crate::pipeline::prepare::Prepared;
use crate::pipeline::progress::Progress;
use crate::pipeline::score::GenerationStage;
use crate::pipeline::stop::Stop;
use crate::shard::{ShardRecord, Tally};
use crate::sink::{OutputDir, RollingWriter};

/// Runs the shards not yet committed (those of an interrupted run are kept, with `--resume`)
/// and returns every shard's record, in shard order, with how many were kept, and the overall
/// metrics of the evaluation in the pass where the last shard started them as its partitions
/// finished ([`EarlyOverall`]). A failure is explained ([`diagnose::explain`]) before it is
/// returned.
///
/// When the plan streams input that only seemed sorted ([`crate::pipeline::InputOrder::falls_back`]) and a
/// row comes out of order, the shard's files are removed and `p` is planned again with a sort
/// for this shard and the ones after it.
pub async fn run_pending(
    cfg: &JobConfig,
    p: &mut Prepared,
    out: &OutputDir,
    stop: &Stop,
) -> Result<(BTreeMap<usize, ShardRecord>, usize, Option<EarlyOverall>)> {
    let mut records: BTreeMap<usize, ShardRecord> = BTreeMap::new();
    for (name, bytes) in out.shard_records()? {
        let r: ShardRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("shard record {name} is unreadable: {e}")))?;
        if r.shard < p.shards && crate::shard::record_shard(&name) == Some(r.shard) {
            if r.tally.sample_unsaved {
                // The interrupted run's last shard: its overall sample was in memory only.
                tracing::debug!(
                    shard = r.shard,
                    "the shard's overall sample was not saved: it runs again"
                );
                continue;
            }
            records.insert(r.shard, r);
        }
    }
    let resumed_shards = records.len();
    let prefixes: Vec<String> = records.keys().map(|&k| crate::shard::part_prefix(k)).collect();
    out.keep_only(&prefixes)?;
    if resumed_shards > 0 {
        tracing::info!(
            committed = resumed_shards,
            shards = p.shards,
            "--resume: keeping the committed shards"
        );
    }
    let input_rows = p.inputs.total_rows();
    let interval = std::time::Duration::from_secs_f64(cfg.progress_interval.max(0.01));
    let progress = Progress::start(input_rows, cfg.progress, interval);
    let done_rows: u64 = records
        .values()
        .map(|r| r.tally.moments.n + r.tally.rejections.rows)
        .sum();
    progress.counter().fetch_add(done_rows, Ordering::Relaxed);
    let limit = Arc::new(RejectLimit {
        rows: AtomicU64::new(records.values().map(|r| r.tally.rejections.rows).sum()),
        max_rows: cfg
            .max_invalid_fraction
            .map(|f| (f * input_rows as f64).floor() as u64),
        input_rows,
        max_fraction: cfg.max_invalid_fraction.unwrap_or(1.0),
    });
    // The last shard to run keeps its overall sample in memory only: the evaluation follows at
    // once (an interruption before the commit runs it again on `--resume`). The others write
    // theirs, read back at the end (memory stays flat however many shards run).
    let last = (0..p.shards).rev().find(|k| !records.contains_key(k));
    let mut early = None;
    let mut failure = None;
    let mut k = 0;
    while k < p.shards {
        if records.contains_key(&k) {
            k += 1;
            continue;
        }
        if let Some(signal) = stop.requested() {
            failure = Some(Error::Interrupted { signal, committed: 0 });
            break;
        }
        if p.shards > 1 {
            tracing::debug!(shard = k, shards = p.shards, "shard started");
        }
        let (rows_before, rejected_before) = (
            progress.counter().load(Ordering::Relaxed),
            limit.rows.load(Ordering::Relaxed),
        );
        // The last shard's partitions hand their samples over as they finish, and the overall
        // metrics start then, over the other shards' sample files too, in shard order.
        let around = (Some(k) == last).then(|| SampleAround {
            before: sample_paths(out.staging(), records.range(..k).map(|(_, r)| r)),
            after: sample_paths(out.staging(), records.range(k + 1..).map(|(_, r)| r)),
        });
        let record = async {
            let df = p.shard_frame(cfg, k).await?;
            let planned = p.first_plan.take();
            let st = p.model.stats();
            let before = (
                st.tokens.load(Ordering::Relaxed),
                st.positions.load(Ordering::Relaxed),
                st.run_nanos.load(Ordering::Relaxed),
            );
            let (ex, started) = execute(
                df,
                planned,
                out,
                Arc::clone(&p.plan),
                Arc::clone(&p.metadata),
                cfg.max_rows_per_file,
                progress.counter(),
                Arc::clone(&limit),
                crate::shard::part_prefix(k),
                stop.clone(),
                p.stage.clone(),
                p.eval.clone(),
                Arc::clone(&p.model),
                around,
            )
            .await?;
            let record = ShardRecord {
                shard: k,
                tally: Tally {
                    model_tokens: st.tokens.load(Ordering::Relaxed) - before.0,
                    model_positions: st.positions.load(Ordering::Relaxed) - before.1,
                    model_nanos: st.run_nanos.load(Ordering::Relaxed) - before.2,
                    ..ex
                },
            };
            // The rename of the record commits the shard; its files are already in place.
            out.commit_shard(k, &serde_json::to_vec(&record)?)?;
            // A test may hold the run here; a stop still ends it.
            let mut stop = stop.clone();
            tokio::select! {
                _ = faults::point_async("shard-committed") => {}
                signal = stop.wait() => return Err(Error::Interrupted { signal, committed: 0 }),
            }
            Ok::<_, Error>((record, started))
        }
        .await;
        match record {
            Ok((r, started)) => {
                early = started.or(early);
                records.insert(k, r);
                k += 1;
            }
            Err(e @ (Error::NotSorted { .. } | Error::OutsideKeyRange { .. })) if p.order.falls_back() => {
                let why = match e {
                    Error::NotSorted {
                        generation_id,
                        segment_index,
                        prev_generation_id,
                        prev_segment_index,
                    } => format!("generation_id={generation_id}, segment_index={segment_index} comes after generation_id={prev_generation_id}, segment_index={prev_segment_index}: the input is not sorted"),
                    e => format!("{e}"),
                };
                tracing::info!(shard = k, "{why}, so the shard runs again with a sort");
                progress.counter().store(rows_before, Ordering::Relaxed);
                limit.rows.store(rejected_before, Ordering::Relaxed);
                let committed: Vec<String> = records.keys().map(|&s| crate::shard::part_prefix(s)).collect();
                let replanned = async {
                    out.keep_only(&committed)?;
                    p.with_sort(cfg).await
                };
                match replanned.await {
                    Ok(sorting) => *p = sorting,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    progress.finish().await;
    match failure {
        Some(e) => Err(diagnose::explain(e, cfg, p).await),
        None => Ok((records, resumed_shards, early)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    df: datafusion::dataframe::DataFrame,
    planned: Option<Arc<dyn ExecutionPlan>>,
    out: &OutputDir,
    plan: Arc<OutputPlan>,
    metadata: Arc<Vec<(String, String)>>,
    max_rows_per_file: u64,
    rows_done: Arc<AtomicU64>,
    limit: Arc<RejectLimit>,
    prefix: String,
    mut stop: Stop,
    stage: Option<Arc<GenerationStage>>,
    eval: Option<Arc<StreamEval>>,
    model: Arc<RewardModel>,
    around: Option<SampleAround>,
) -> Result<(Tally, Option<EarlyOverall>)> {
    // The last shard keeps its sample in memory (and starts the overall metrics early); the
    // others write theirs.
    let sample_files = around.is_none();
    let dir = out.staged("segments")?;
    let rejected_dir = match &plan.rejected {
        Some(_) => Some(out.staged("rejected")?),
        None => None,
    };
    let rejected_counter = Arc::new(AtomicUsize::new(0));
    let task_ctx = Arc::new(df.task_ctx());
    let physical = match planned {
        Some(physical) => physical,
        None => segscore_plan::physical_plan(df)
            .await
            .map_err(Error::from_datafusion)?,
    };
    let streams = datafusion::physical_plan::execute_stream_partitioned(Arc::clone(&physical), task_ctx)
        .map_err(Error::from_datafusion)?;
    tracing::debug!(partitions = streams.len(), "partitions streaming");
    // Each partition checks key order and counts generations on its own: right only when each
    // generation's rows are in one partition (a replacement query without the window may not
    // keep them together). Otherwise the keys are checked and counted over all rows, by SQL.
    let keyed = keyed_by_generation(physical.as_ref(), plan.gid);
    if !keyed {
        tracing::debug!(
            "the job query's plan spreads generations over partitions: keys are checked and counted by SQL"
        );
    }
    if !keyed && (plan.rejected.is_some() || stage.is_some()) {
        return Err(Error::Usage(format!(
            "{} needs each generation's rows together in one partition, in (generation_id, segment_index) order, as the built-in query's window gives them; the replacement query's plan spreads them (add the window, or run with --threads 1)",
            if plan.rejected.is_some() { "--on-invalid quarantine" } else { "text input (or --prediction cumulative)" }
        )));
    }
    // The evaluation in the pass needs each generation whole in one partition.
    let eval = eval.filter(|_| keyed);
    let eval_dirs = match &eval {
        Some(_) => Some((
            out.staged("generations")?,
            if sample_files {
                Some(out.staged("sample")?)
            } else {
                None
            },
        )),
        None => None,
    };
    let (generation_counter, sample_counter) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counter = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Every partition's writers: rolling part files under the shard's prefix.
    let writer = |dir: &std::path::PathBuf, schema, sorting, counter: &Arc<AtomicUsize>| {
        RollingWriter::new(
            dir.clone(),
            schema,
            Arc::clone(&metadata),
            sorting,
            max_rows_per_file,
            Arc::clone(counter),
        )
        .with_prefix(prefix.clone())
        .on_close(out.on_part_closed())
    };
    // Each partition's generations come in key order: its files say so.
    let by_id = Some(vec![datafusion::parquet::file::metadata::SortingColumn {
        column_idx: 0,
        descending: false,
        nulls_first: false,
    }]);
    // The last shard's samples, handed over by each partition as it finishes its rows.
    let mut handover = match (&eval, around) {
        (Some(_), Some(around)) => Some((Vec::new(), around)),
        _ => None,
    };
    for (i, stream) in streams.into_iter().enumerate() {
        let sample_out = handover.as_mut().map(|(receivers, _)| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            receivers.push(rx);
            tx
        });
        let segments = writer(&dir, Arc::clone(&plan.schema), plan.sorting.clone(), &counter);
        let rejected = match (&plan.rejected, &rejected_dir) {
            (Some(layout), Some(d)) => Some(writer(d, Arc::clone(&layout.schema), None, &rejected_counter)),
            _ => None,
        };
        let (generations, sample) = match (&eval, &eval_dirs) {
            (Some(e), Some((g, s))) => (
                Some(writer(
                    g,
                    Arc::clone(&e.generations),
                    by_id.clone(),
                    &generation_counter,
                )),
                s.as_ref()
                    .map(|s| writer(s, Arc::clone(&e.sample), None, &sample_counter).scratch()),
            ),
            _ => (None, None),
        };
        let writers = Writers {
            segments,
            rejected,
            generations,
            sample,
        };
        let part = run_partition(
            stream,
            Arc::clone(&plan),
            writers,
            Arc::clone(&rows_done),
            Arc::clone(&limit),
            cancel.clone(),
            stage.clone(),
            eval.clone(),
            sample_out,
        );
        // Counted as one of the model's streaming partitions: while every thread drives one,
        // each scores its own batches on its own thread.
        let model = Arc::clone(&model);
        // Quiet: a panic (arrow's Parquet decoder's, on a corrupt page) prints nothing; the job
        // reports it, naming the file ([`diagnose::explain`]).
        tasks.spawn(crate::panics::Quiet(Box::pin(async move {
            model.partition(part).await.map(|r| (i, r))
        })));
    }
    let early = handover.map(|(receivers, around)| early_overall(receivers, around));
    // Every partition is joined, whatever happens: at the first error (or a stop) the others
    // are cancelled, and their writers exit before this returns.
    let mut parts = Vec::new();
    let mut failure = None;
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            signal = stop.wait(), if failure.is_none() => {
                failure = Some(Error::Interrupted { signal, committed: 0 });
                cancel.cancel();
                continue;
            }
        };
        let Some(joined) = joined else { break };
        match joined.map_err(|e| Error::from_join("a worker task", e)) {
            Ok(Ok((i, Some(part)))) => parts.push((i, part)),
            Ok(Ok((_, None))) => {} // cancelled
            Ok(Err(e)) | Err(e) => {
                if failure.is_none() {
                    // A test may hold the run here, at its first error, before it explains it.
                    faults::point_async("partition-failed").await;
                    failure = Some(e);
                    cancel.cancel();
                }
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // Merged in partition order: the same sums whatever order the partitions finished in.
    parts.sort_by_key(|(i, _)| *i);
    let mut executed = Tally {
        spilled_bytes: spilled_bytes(physical.as_ref()),
        plan_sorted: sorts(physical.as_ref()),
        ..Tally::default()
    };
    for (_, part) in &parts {
        executed.merge(part);
    }
    if !keyed {
        executed.generations = None;
        executed.eval = None;
    }
    if executed.eval.is_none() {
        // The evaluation runs by SQL over the written segments: no sample is read.
        executed.sample.clear();
    }
    executed.sample_unsaved = !sample_files && executed.eval.is_some();
    // Only an evaluation in the pass of every partition reads the sample.
    let early = early.filter(|_| executed.eval.is_some());
    Ok((executed, early))
}

/// The sample files of the shards before and after the last one run (in shard order), read
/// with its partitions' samples for the overall metrics.
#[derive(Debug)]
struct SampleAround {
    before: Vec<std::path::PathBuf>,
    after: Vec<std::path::PathBuf>,
}

/// The overall metrics over the whole sample ([`crate::evaluate::overall::overall_of_sample`],
/// without the means over generations), started as the last shard's partitions hand their
/// samples over: each partition's part is made ready ([`SamplePart`]: its rows sorted) as soon
/// as it arrives, so a partition that finished first has its part sorted while the others still
/// run, and the rest while their part files close and the shard commits. None when a partition
/// handed nothing over (it failed, was cancelled, or the evaluation gave up).
pub type EarlyOverall = tokio::task::JoinHandle<Option<Result<crate::evaluate::Evaluation>>>;

fn early_overall(
    receivers: Vec<tokio::sync::oneshot::Receiver<Vec<datafusion::arrow::record_batch::RecordBatch>>>,
    around: SampleAround,
) -> EarlyOverall {
    tokio::spawn(async move {
        // Each partition's part on the blocking pool as it arrives, on rayon's threads only for
        // the last to come (before it, they serve the model calls of the partitions still
        // streaming); None if one never does.
        let waiting = Arc::new(AtomicUsize::new(receivers.len()));
        let handed: Vec<_> = receivers
            .into_iter()
            .map(|r| {
                let waiting = Arc::clone(&waiting);
                tokio::spawn(async move {
                    let batches = r.await.ok()?;
                    let last = waiting.fetch_sub(1, Ordering::SeqCst) == 1;
                    Some(blocking(move || SamplePart::new(batches, last)).await)
                })
            })
            .collect();
        let mut parts = Vec::with_capacity(handed.len() + 2);
        for h in handed {
            match h.await {
                Ok(Some(part)) => parts.push(part),
                Ok(None) => return None,
                Err(e) => return Some(Err(Error::Internal(format!("the overall metrics failed: {e}")))),
            }
        }
        let started = std::time::Instant::now();
        // The other shards' sample files once the pass is over (their rows are not held while
        // it runs), side by side.
        let before = blocking(move || SamplePart::new(read_all(&around.before)?, true));
        let after = blocking(move || SamplePart::new(read_all(&around.after)?, true));
        let (before, after) = tokio::join!(before, after);
        parts.insert(0, before);
        parts.push(after);
        let parts = match parts.into_iter().collect::<Result<Vec<_>>>() {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let work = move || {
            let evaluation = overall_of_parts(parts);
            tracing::debug!(
                seconds = started.elapsed().as_secs_f64(),
                "overall metrics from the sample, after the last partition's part"
            );
            evaluation
        };
        Some(blocking(work).await)
    })
}

/// `work`, a step of the overall metrics, on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("the overall metrics failed: {e}")))
        .and_then(|r| r)
}

/// Bytes the plan's operators (the sort of unsorted input) spilled to disk.
fn spilled_bytes(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> u64 {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0) as u64;
    own + plan
        .children()
        .iter()
        .map(|c| spilled_bytes(c.as_ref()))
        .sum::<u64>()
}

/// Whether the plan has a sort.
fn sorts(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
    plan.name() == "SortExec" || plan.children().iter().any(|c| sorts(c.as_ref()))
}

/// Whether every generation's rows come out of one partition of `plan`: a single partition,
/// or hash or range partitioning (key ranges, [`crate::engine::ranges`]) on the generation id
/// alone (column `gid` of the output).
fn keyed_by_generation(plan: &dyn datafusion::physical_plan::ExecutionPlan, gid: usize) -> bool {
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_plan::Partitioning;
    let on_gid = |exprs: &[&std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>]| {
        exprs.len() == 1
            && exprs[0]
                .downcast_ref::<Column>()
                .is_some_and(|c| c.index() == gid)
    };
    match plan.properties().output_partitioning() {
        p if p.partition_count() <= 1 => true,
        Partitioning::Hash(exprs, _) => on_gid(&exprs.iter().collect::<Vec<_>>()),
        Partitioning::Range(range) => on_gid(&range.ordering().iter().map(|s| &s.expr).collect::<Vec<_>>()),
        _ => false,
    }
}
