//! Evaluation: per-generation metrics (`generations/part-*.parquet`) and the run's overall
//! metrics (summary.json), computed by the queries in `queries/` over the segment rows a run
//! wrote, with segscore's aggregate functions ([`crate::udaf`]).
//!
//! The same registration serves `segscore sql`, `report` and `compare`: an output directory
//! gives the tables `segments` (with `base_score` 0.0 when the run had no `--base-score-col`),
//! `generations` and, where written, `rejected`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::catalog::{MemorySchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::prelude::{ident, lit, SessionContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sink::RollingWriter;
use crate::source;

/// `queries/generations.sql`: one row per generation.
pub const GENERATIONS_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/generations.sql"));
/// `queries/overall_metrics.sql`: rank metrics and loss concentration over all segments (or
/// an even sample of [`SAMPLE_SEGMENTS`]).
pub const OVERALL_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/overall_metrics.sql"
));
/// `queries/generation_means.sql`: per-generation metrics averaged over generations.
pub const GENERATION_MEANS_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/generation_means.sql"
));
/// `queries/residual_histogram.sql`: 40 equal-width bins of residuals.
pub const HISTOGRAM_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/residual_histogram.sql"
));
/// `queries/calibration.sql`: mean prediction and target per decile of prediction (over
/// `segments_sample`).
pub const CALIBRATION_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/calibration.sql"));

/// Segments in `segments_sample`, at most: the overall rank metrics, loss shares and
/// calibration are exact up to this many segments and computed on an even sample (every k-th
/// segment in key order) above it, so that their memory does not grow with the input.
pub const SAMPLE_SEGMENTS: u64 = 1_000_000;

/// The evaluation part of summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Segments the overall rank metrics, loss shares and calibration were computed over:
    /// all of them up to [`SAMPLE_SEGMENTS`], an even sample above.
    pub overall_sample_segments: u64,
    /// Spearman's rank correlation over all segments.
    pub spearman: Option<f64>,
    /// Kendall's tau-b over all segments.
    pub kendall_tau: Option<f64>,
    /// Share of all segment pairs that prediction and target order alike (ties excluded).
    pub pairwise_order_accuracy: Option<f64>,
    /// Share of the total loss carried by the 1% of segments with the largest loss.
    pub loss_share_top_1pct: Option<f64>,
    /// Share of the total loss carried by the 10% of segments with the largest loss.
    pub loss_share_top_10pct: Option<f64>,
    /// Per-generation metrics averaged over generations.
    pub generation_means: GenerationMeans,
    /// Generations whose targets do not add up to final cumulative score minus baseline.
    pub targets_sum_mismatches: u64,
    /// Residual histogram: non-empty bins of 40 equal-width bins over [min, max].
    pub residual_histogram: Vec<HistogramBin>,
    /// Mean prediction and mean target per decile of prediction.
    pub calibration: Vec<CalibrationRow>,
}

/// Per-generation metrics averaged over the generations where each is defined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationMeans {
    /// Mean of per-generation MSE.
    pub mse: Option<f64>,
    /// Mean of per-generation MAE.
    pub mae: Option<f64>,
    /// Mean of per-generation bias.
    pub bias: Option<f64>,
    /// Mean of per-generation Pearson correlation.
    pub pearson: Option<f64>,
    /// Mean of per-generation Spearman correlation.
    pub spearman: Option<f64>,
    /// Mean of per-generation Kendall tau-b.
    pub kendall_tau: Option<f64>,
    /// Mean of per-generation pairwise order accuracy.
    pub pairwise_order_accuracy: Option<f64>,
    /// Share of generations whose top-target segment has the top prediction.
    pub top_segment_match: Option<f64>,
    /// Generations with a defined Spearman correlation.
    pub spearman_defined: u64,
    /// Generations with a defined Kendall tau.
    pub kendall_tau_defined: u64,
    /// Generations with a defined pairwise order accuracy.
    pub pairwise_order_accuracy_defined: u64,
    /// Generations with a defined top_segment_match (two or more segments).
    pub top_segment_match_defined: u64,
}

/// One histogram bin: `count` residuals in `[lower, upper)` (the last bin is closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Residuals in the bin.
    pub count: u64,
}

/// One decile of prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRow {
    /// 1 to 10, by increasing prediction.
    pub decile: u64,
    /// Segments in the decile.
    pub n: u64,
    /// Smallest prediction in the decile.
    pub min_predicted: f64,
    /// Largest prediction in the decile.
    pub max_predicted: f64,
    /// Mean prediction.
    pub mean_predicted: f64,
    /// Mean target.
    pub mean_target: f64,
}

/// A column of a query result as DOUBLE, by name (NULL as None).
pub fn f64_col(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("query result lacks column {name}")))?;
    let col = cast(col, &DataType::Float64)?;
    Ok(col.as_primitive::<Float64Type>().iter().collect())
}

fn u64_col(batch: &RecordBatch, name: &str) -> Result<Vec<u64>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("query result lacks column {name}")))?;
    let col = cast(col, &DataType::Int64)?;
    Ok(col
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0).max(0) as u64)
        .collect())
}

/// Runs a query and concatenates its result into one batch.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(datafusion::arrow::compute::concat_batches(&schema, &batches)?)
}

/// Parquet part files under `dir`, sorted; empty when `dir` does not exist.
fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    source::expand_inputs(&[dir.display().to_string()]).or_else(|e| match e {
        Error::EmptyInput { .. } => Ok(Vec::new()),
        e => Err(e),
    })
}

/// A listing table over Parquet `files`, declared sorted by `sort_keys` (ascending) if given.
/// `trusted` names the float columns known to hold no NaN (`"*"`: all), see
/// [`crate::source::float_stats_constant`].
pub async fn parquet_table(
    ctx: &SessionContext,
    files: &[PathBuf],
    sort_keys: &[&str],
    trusted: &[&str],
) -> Result<Arc<dyn TableProvider>> {
    let footers = crate::source::read_footers(files)?;
    parquet_table_read(ctx, files, &footers, sort_keys, trusted).await
}

/// [`parquet_table`] over files whose footers (`footers`, one per file) are already read.
async fn parquet_table_read(
    ctx: &SessionContext,
    files: &[PathBuf],
    footers: &[ArrowReaderMetadata],
    sort_keys: &[&str],
    trusted: &[&str],
) -> Result<Arc<dyn TableProvider>> {
    // Footers were read first, so an unreadable one is an error naming the file (DataFusion's
    // schema inference could panic on some).
    let statistics_safe = !footers
        .iter()
        .any(|m| source::float_stats_constant(m.metadata(), trusted));
    let table = source::listing_table(
        ctx,
        files.iter().map(PathBuf::as_path),
        sort_keys,
        statistics_safe,
    )
    .await?;
    Ok(Arc::new(table))
}

/// Registers a segscore output directory's tables: `segments`, and `generations` and
/// `rejected` where present; under the schema `schema` (`schema.segments`) if given. Returns
/// the names registered.
pub async fn register_output(ctx: &SessionContext, dir: &Path, schema: Option<&str>) -> Result<Vec<String>> {
    let segments = part_files(&dir.join("segments"))?;
    if segments.is_empty() {
        return Err(Error::Usage(format!(
            "{}: not a segscore output directory (no segments/part-*.parquet)",
            dir.display()
        )));
    }
    if let Some(s) = schema {
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| Error::Internal("no default catalog".into()))?;
        catalog.register_schema(s, Arc::new(MemorySchemaProvider::new()))?;
    }
    let name = |t: &str| match schema {
        Some(s) => TableReference::partial(s.to_string(), t.to_string()),
        None => TableReference::bare(t.to_string()),
    };
    let mut registered = Vec::new();
    // Part files a run wrote in key order say so in their footers; the aggregation by
    // generation then streams instead of holding every generation at once.
    let footers = source::read_footers(&segments)?;
    let sorted = footers
        .iter()
        .all(|m| source::metadata_declares_order(m.metadata(), &["generation_id", "segment_index"]));
    let rows: u64 = footers
        .iter()
        .map(|m| m.metadata().file_metadata().num_rows().max(0) as u64)
        .sum();
    if sorted {
        // Sorted files can only be read in order if every chain of non-overlapping files gets
        // its own partition; with fewer partitions DataFusion drops the order, and grouping by
        // generation then holds every generation at once.
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        options.execution.target_partitions = options.execution.target_partitions.max(segments.len());
    }
    let keys: &[&str] = if sorted {
        &["generation_id", "segment_index"]
    } else {
        &[]
    };
    // The result columns, scores and targets of a run are checked finite before they are written.
    let mut trusted: Vec<&str> = crate::loss::OUTPUT_COLUMNS.to_vec();
    trusted.extend(["cumulative_score", "base_score"]);
    let table = parquet_table_read(ctx, &segments, &footers, keys, &trusted).await?;
    let mut df = ctx.read_table(Arc::clone(&table))?;
    if table.schema().index_of("base_score").is_err() {
        df = df.with_column("base_score", lit(0.0f64))?;
    }
    ctx.register_table(name("segments"), df.clone().into_view())?;
    registered.push(name("segments").to_string());
    // Every k-th segment in key order, at most SAMPLE_SEGMENTS of them (all when fewer): the
    // metrics that must hold every value at once read this, so memory stays bounded.
    let stride = rows.div_ceil(SAMPLE_SEGMENTS).max(1) as i64;
    let sample = df
        .window(vec![datafusion::functions_window::expr_fn::row_number()
            .order_by(vec![
                ident("generation_id").sort(true, false),
                ident("segment_index").sort(true, false),
            ])
            .build()?
            .alias("sample_row")])?
        .filter(((ident("sample_row") - lit(1u64)) % lit(stride as u64)).eq(lit(0u64)))?
        .drop_columns(&["sample_row"])?;
    ctx.register_table(name("segments_sample"), sample.into_view())?;
    registered.push(name("segments_sample").to_string());
    // Per-generation metrics are finite or NULL; rejected rows may hold NaN.
    for (t, trusted) in [("generations", &["*"][..]), ("rejected", &[][..])] {
        let files = part_files(&dir.join(t))?;
        if !files.is_empty() {
            ctx.register_table(name(t), parquet_table(ctx, &files, &[], trusted).await?)?;
            registered.push(name(t).to_string());
        }
    }
    Ok(registered)
}

/// Computes and writes `generations/` into `staging` from `staging/segments`, then the
/// summary's evaluation metrics. Returns them with the number of generation files written.
pub async fn evaluate(
    ctx: &SessionContext,
    staging: &Path,
    metadata: Arc<Vec<(String, String)>>,
    max_rows_per_file: u64,
) -> Result<(Evaluation, usize)> {
    register_output(ctx, staging, None).await?;
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
    let df = ctx.sql(GENERATIONS_SQL).await?;
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
    let mut stream = df.execute_stream().await?;
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
