//! Finishing a run: the shards' tallies added up in shard order, the outputs that must exist
//! even when empty, the evaluation stage over the written segments, and the summary (and
//! report) to commit with the outputs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::session_context;
use crate::error::{Error, Result};
use crate::evaluate::stream::{read_all, sample_paths};
use crate::evaluate::summary::{ClusterSummary, TextSummary};
use crate::evaluate::{MseDecomposition, RejectedSummary, Summary};
use crate::loss::Loss;
use crate::pipeline::config::JobConfig;
use crate::pipeline::diagnose::{check_keys_by_sql, with_rows};
use crate::pipeline::prepare::Prepared;
use crate::pipeline::score::Pass;
use crate::pipeline::shards::EarlyOverall;
use crate::shard::{ShardRecord, Tally};
use crate::sink::OutputDir;
use crate::source;

/// The files a run commits beside its output folders (name, bytes).
pub type CommitFiles = Vec<(&'static str, Vec<u8>)>;

/// The overall metrics from the shards' samples, in shard order: the rows a shard kept in
/// memory, else its files.
fn overall_from_records(
    records: &BTreeMap<usize, ShardRecord>,
    staging: &std::path::Path,
    sums: &crate::metrics::EvalSums,
    started: Instant,
) -> Result<crate::evaluate::Evaluation> {
    let mut batches = Vec::new();
    for r in records.values() {
        if r.tally.sample.is_empty() {
            let files = sample_paths(staging, std::iter::once(r));
            batches.extend(tokio::task::block_in_place(|| read_all(&files))?);
        } else {
            batches.extend_from_slice(&r.tally.sample);
        }
    }
    let read = started.elapsed().as_secs_f64();
    let evaluation = crate::evaluate::stream::overall(&batches, sums)?;
    tracing::debug!(
        sample_read_seconds = read,
        overall_seconds = started.elapsed().as_secs_f64() - read,
        "overall metrics from the sample"
    );
    Ok(evaluation)
}

/// Adds up the shards' records, runs the evaluation over the staged segments, and returns the
/// summary with the files to commit (`summary.json`, and `report.html` with `--report`).
/// `early` holds the overall metrics where the last shard started them as it finished.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    cfg: &JobConfig,
    p: &Prepared,
    out: &OutputDir,
    records: &BTreeMap<usize, ShardRecord>,
    resumed_shards: usize,
    started: Instant,
    job_sha256: String,
    early: Option<EarlyOverall>,
) -> Result<(Summary, CommitFiles)> {
    if p.shards > 1 {
        source::register_view(&p.ctx, &cfg.columns, &p.carried, None).await?;
    }
    let input_rows = p.inputs.total_rows();
    // Merged in shard order, so a resumed run adds the same numbers in the same order.
    let mut total = Tally::default();
    for r in records.values() {
        total.merge(&r.tally);
    }
    let Tally {
        moments,
        generations,
        rejections,
        spilled_bytes,
        model_tokens: tokens,
        model_positions: positions,
        model_nanos: nanos,
        ref eval,
        plan_sorted,
        ..
    } = total;
    let (mut output_files, rejected_files) = (total.files.len(), total.rejected_files.len());
    let received_rows = moments.n + rejections.rows;
    // (--max-invalid-fraction was enforced as rows were rejected: the limit started from the
    // committed shards' rejections, and the fingerprint pins the threshold.)
    if rejected_files == 0 {
        let dir = out.staging().join("rejected");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
    }
    if output_files == 0 {
        // Every row was rejected: an empty part keeps the schema for readers.
        let dir = out.staging().join("segments");
        crate::sink::write_empty_part(
            &dir,
            "part-empty.parquet",
            Arc::clone(&p.plan.schema),
            &p.metadata,
        )?;
        output_files = 1;
    }
    // The evaluation stage: everything after the shards.
    crate::faults::point("evaluation-started");
    // Rows that came out of the query in key order were checked and counted on the way; if
    // they did not (a replacement query without the window, say), check and count with SQL.
    let n_generations = match generations {
        Some(g) => g - rejections.generations,
        None => match check_keys_by_sql(&p.ctx).await {
            Ok(n) => n,
            Err(e) => return Err(with_rows(e, cfg, p).await),
        },
    };
    // Per-generation and overall metrics: from the pass, else by the queries in queries/ over
    // the staged segments.
    let evaluation_started = Instant::now();
    // A session over the staged outputs, for the report and the queries of `queries/`: made
    // only where one of them runs (a session with every function takes milliseconds to make).
    let eval_context = || -> Result<_> {
        let ctx = session_context(cfg.threads, cfg.memory_limit, cfg.spill_dir.as_deref(), true)?;
        crate::functions::register(&ctx, None, None);
        Ok(ctx)
    };
    let eval_ctx = if cfg.report { Some(eval_context()?) } else { None };
    let staging = out.staging();
    let (evaluation, generation_files) = match (eval, &p.eval) {
        // Evaluated in the pass: the generation rows are written, the overall metrics come
        // from the sample.
        (Some(sums), Some(stream)) => {
            let mut generation_files = total.generation_files.len();
            if generation_files == 0 {
                let dir = staging.join("generations");
                crate::sink::write_empty_part(
                    &dir,
                    "part-empty.parquet",
                    Arc::clone(&stream.generations),
                    &p.metadata,
                )?;
                generation_files = 1;
            }
            let early = match early {
                Some(h) => h
                    .await
                    .map_err(|e| Error::Internal(format!("the overall metrics failed: {e}")))?,
                None => None,
            };
            let evaluation = match early {
                Some(evaluation) => {
                    tracing::debug!(
                        waited_seconds = evaluation_started.elapsed().as_secs_f64(),
                        "overall metrics started as the last shard finished"
                    );
                    crate::evaluate::stream::with_sums(evaluation?, sums)
                }
                None => overall_from_records(records, staging, sums, evaluation_started)?,
            };
            if let Some(ctx) = &eval_ctx {
                crate::evaluate::register_output(ctx, staging, None).await?;
            }
            (evaluation, generation_files)
        }
        // Rows came out of key order: the queries in queries/ over the staged segments.
        _ => {
            for d in ["generations", "sample"] {
                let dir = staging.join(d);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                }
            }
            let ctx = match &eval_ctx {
                Some(ctx) => ctx,
                None => &eval_context()?,
            };
            crate::evaluate::evaluate(ctx, staging, Arc::clone(&p.metadata), cfg.max_rows_per_file).await?
        }
    };
    let sample_dir = staging.join("sample");
    if sample_dir.exists() {
        std::fs::remove_dir_all(&sample_dir).map_err(|e| Error::io(&sample_dir, e))?;
    }
    let evaluation_seconds = evaluation_started.elapsed().as_secs_f64();
    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        segscore_version: env!("CARGO_PKG_VERSION").to_string(),
        n_generations,
        n_segments: moments.n,
        metrics: moments.metrics(),
        mse_decomposition: MseDecomposition::from(&moments.metrics()),
        rejected: RejectedSummary {
            on_invalid: cfg.on_invalid,
            max_invalid_fraction: cfg.max_invalid_fraction,
            input_rows,
            fraction: rejections.rows as f64 / input_rows.max(1) as f64,
            counts: rejections,
            files: rejected_files,
        },
        evaluation,
        loss: cfg.loss.name().to_string(),
        huber_delta: match cfg.loss {
            Loss::Huber { delta } => Some(delta),
            _ => None,
        },
        model: cfg.model.display().to_string(),
        model_sha256: p.model.sha256().to_string(),
        model_output: p.model.output_name().to_string(),
        score_output: p.model.output_kind().describe(),
        prediction: cfg.prediction.as_str().to_string(),
        max_length: p.model.max_length(),
        text: p.tokenizer.as_ref().map(|t| TextSummary {
            tokenizer: t.path().display().to_string(),
            tokenizer_sha256: t.sha256().to_string(),
            text_col: cfg.columns.text.clone().unwrap_or_default(),
            prompt_col: cfg.columns.prompt.clone(),
            segment_separator: cfg.segment_separator.clone().unwrap_or_default(),
            pass: p.pass.map(|x| x.as_str().to_string()).unwrap_or_default(),
            one_pass_check: match (p.pass, &p.stage) {
                (Some(Pass::Generation), Some(stage)) => Some(stage.one_pass_check()),
                _ => None,
            },
            tokenize_seconds: p.stage.as_ref().map_or(0.0, |s| s.tokenize_seconds()),
        }),
        onnxruntime_version: p.model.runtime().version.clone(),
        provider: p.model.provider().as_str().to_string(),
        query_sha256: p.query_sha256.clone(),
        job_sha256,
        overall_sample_stride: crate::evaluate::stream::sample_stride(input_rows),
        input_files: p.inputs.files.len(),
        input_files_empty: p.inputs.empty.len(),
        partition_cols: p
            .hive
            .as_ref()
            .map(|h| h.cols.iter().map(|c| c.0.clone()).collect())
            .unwrap_or_default(),
        input_sorted: !plan_sorted,
        input_order: if plan_sorted { "sorted" } else { p.order.as_str() }.to_string(),
        shards: p.shards,
        resumed_shards,
        output_files,
        generation_files,
        spilled_bytes,
        padding_share: (positions > 0).then(|| 1.0 - tokens as f64 / positions as f64),
        model_seconds: nanos as f64 / 1e9,
        evaluation_seconds,
        cluster: cfg.cluster.as_ref().map(|url| {
            let client_seconds = total.receive_nanos as f64 / 1e9;
            ClusterSummary {
                scheduler: url.clone(),
                executors: total.executors.clone(),
                client_seconds,
                client_rows_per_second: received_rows as f64 / client_seconds.max(1e-9),
            }
        }),
        elapsed_seconds: elapsed,
        rows_per_second: if elapsed > 0.0 {
            moments.n as f64 / elapsed
        } else {
            0.0
        },
    };
    let mut files = vec![("summary.json", serde_json::to_vec_pretty(&summary)?)];
    if let Some(ctx) = &eval_ctx {
        let title = cfg.output.display().to_string();
        let html = crate::report::render(ctx, &summary, &title).await?;
        files.push(("report.html", html.into_bytes()));
    }
    Ok((summary, files))
}
