//! Evaluation: per-generation metrics (`generations/part-*.parquet`) and the run's overall
//! metrics (summary.json). A run computes them in the pass that writes the segments
//! ([`stream`], then [`overall`] over the sample it kept); the queries in `queries/`
//! ([`queries`]) define them, and [`evaluate`] runs those queries over the segment rows a run
//! wrote ([`tables`]) when rows left the window out of key order, with segscore's aggregate
//! functions ([`crate::metrics::udaf`]). [`summary`] holds the types of `summary.json`.
//!
//! The same tables serve `segscore sql`, `report` and `compare`.

use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::engine::keys::first_duplicate;
use crate::engine::query::{f64_col, query, u64_col};
use crate::engine::tables::{parquet_table, part_files};
use crate::error::{Error, Result};
use crate::sink::RollingWriter;

pub mod overall;
pub mod queries;
pub mod stream;
pub mod summary;
pub mod tables;

pub use queries::*;
pub use summary::{
    CalibrationRow, Evaluation, GenerationMeans, HistogramBin, MseDecomposition, RejectedSummary, Summary,
};
pub use tables::register_output;

/// Computes and writes `generations/` into `staging` from `staging/segments`, then the
/// summary's evaluation metrics. Returns them with the number of generation files written.
pub async fn evaluate(
    ctx: &SessionContext,
    staging: &Path,
    metadata: Arc<Vec<(String, String)>>,
    max_rows_per_file: u64,
) -> Result<(Evaluation, usize)> {
    register_output(ctx, staging, None).await?;
    // Rows that came out of key order were checked for duplicates in the input; a replacement
    // query could still give a row twice (a UNION ALL, a join).
    if let Some((g, s)) = first_duplicate(ctx, "segments").await? {
        return Err(Error::Usage(format!(
            "the job query gave generation_id={g}, segment_index={s} more than once: it must give \
             each segment it keeps once"
        )));
    }
    // One query at a time: each gets the whole --memory-limit (run side by side, they fail
    // under limits that each alone fits in, for a gain of about 10% of this stage).
    let files = write_generations(ctx, staging, metadata, max_rows_per_file).await?;
    let overall = query(ctx, OVERALL_SQL).await?;
    let hist = query(ctx, HISTOGRAM_SQL).await?;
    let cal = query(ctx, CALIBRATION_SQL).await?;
    let means = query(ctx, GENERATION_MEANS_SQL).await?;
    let first =
        |b: &RecordBatch, c: &str| -> Result<Option<f64>> { Ok(f64_col(b, c)?.first().copied().flatten()) };
    let count =
        |b: &RecordBatch, c: &str| -> Result<u64> { Ok(u64_col(b, c)?.first().copied().unwrap_or(0)) };
    let generation_means = GenerationMeans {
        mse: first(&means, "mse")?,
        mae: first(&means, "mae")?,
        bias: first(&means, "bias")?,
        pearson: first(&means, "pearson")?,
        spearman: first(&means, "spearman")?,
        kendall_tau: first(&means, "kendall_tau")?,
        pairwise_order_accuracy: first(&means, "pairwise_order_accuracy")?,
        top_segment_match: first(&means, "top_segment_match")?,
        spearman_defined: count(&means, "spearman_defined")?,
        kendall_tau_defined: count(&means, "kendall_tau_defined")?,
        pairwise_order_accuracy_defined: count(&means, "pairwise_order_accuracy_defined")?,
        top_segment_match_defined: count(&means, "top_segment_match_defined")?,
    };
    let (lower, upper, n) = (
        f64_col(&hist, "lower_edge")?,
        f64_col(&hist, "upper_edge")?,
        u64_col(&hist, "n")?,
    );
    let residual_histogram = (0..hist.num_rows())
        .map(|i| HistogramBin {
            lower: lower[i].unwrap_or(f64::NAN),
            upper: upper[i].unwrap_or(f64::NAN),
            count: n[i],
        })
        .collect();
    let cols = ["min_predicted", "max_predicted", "mean_predicted", "mean_target"]
        .map(|c| f64_col(&cal, c))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let (decile, count_n) = (u64_col(&cal, "decile")?, u64_col(&cal, "n")?);
    let calibration = (0..cal.num_rows())
        .map(|i| CalibrationRow {
            decile: decile[i],
            n: count_n[i],
            min_predicted: cols[0][i].unwrap_or(f64::NAN),
            max_predicted: cols[1][i].unwrap_or(f64::NAN),
            mean_predicted: cols[2][i].unwrap_or(f64::NAN),
            mean_target: cols[3][i].unwrap_or(f64::NAN),
        })
        .collect();
    let evaluation = Evaluation {
        overall_sample_segments: count(&overall, "segments")?,
        spearman: first(&overall, "spearman")?,
        kendall_tau: first(&overall, "kendall_tau")?,
        pairwise_order_accuracy: first(&overall, "pairwise_order_accuracy")?,
        loss_share_top_1pct: first(&overall, "loss_share_top_1pct")?,
        loss_share_top_10pct: first(&overall, "loss_share_top_10pct")?,
        generation_means,
        targets_sum_mismatches: count(&means, "targets_sum_mismatches")?,
        residual_histogram,
        calibration,
    };
    Ok((evaluation, files))
}

/// Runs `queries/generations.sql` over the registered `segments` and writes its rows to
/// `staging/generations/`, then registers them as `generations`.
async fn write_generations(
    ctx: &SessionContext,
    staging: &Path,
    metadata: Arc<Vec<(String, String)>>,
    max_rows_per_file: u64,
) -> Result<usize> {
    let df = segscore_plan::sql(ctx, GENERATIONS_SQL).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let sorting = schema.index_of("generation_id").ok().map(|i| {
        vec![SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: false,
        }]
    });
    let dir = staging.join("generations");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut writer = RollingWriter::new(
        dir.clone(),
        Arc::clone(&schema),
        Arc::clone(&metadata),
        sorting,
        max_rows_per_file,
        Arc::new(AtomicUsize::new(0)),
    );
    let mut stream = segscore_plan::execute_stream(df).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        tokio::task::block_in_place(|| writer.write(&batch))?;
    }
    let mut files = tokio::task::block_in_place(|| writer.finish())?.len();
    if files == 0 {
        crate::sink::write_empty_part(&dir, "part-empty.parquet", Arc::clone(&schema), &metadata)?;
        files = 1;
    }
    let table = parquet_table(ctx, &part_files(&dir)?, &[], &["*"]).await?;
    ctx.register_table("generations", table)?;
    Ok(files)
}
