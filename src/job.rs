//! The job: source → query → model → loss → sink, driven as streaming DataFusion plans.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::evaluate::Evaluation;
use crate::loss::{loss_columns, Loss, Moments, RegressionMetrics, OUTPUT_COLUMNS};
use crate::model::{ModelOptions, RewardModel};
use crate::progress::{Progress, ProgressMode};
use crate::runtime::Provider;
use crate::shard::{ShardRecord, Tally};
use crate::sink::{Found, OutputDir, RollingWriter};
use crate::source::{self, ColumnNames};
use crate::validate::{self, Grouper, OnInvalid, Reason, RejectedLayout, Rejections, RowChecks};

/// The job query shipped with segscore (`queries/segment_scores.sql`).
pub const SEGMENT_SCORES_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/segment_scores.sql"));

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Input files, directories or globs.
    pub inputs: Vec<String>,
    /// The ONNX model.
    pub model: PathBuf,
    /// The output directory.
    pub output: PathBuf,
    /// Input column names.
    pub columns: ColumnNames,
    /// A replacement for the job query.
    pub query_file: Option<PathBuf>,
    /// The model output holding the score (default: the first).
    pub model_output: Option<String>,
    /// Execution provider.
    pub provider: Provider,
    /// Rows per model call.
    pub batch_size: usize,
    /// The regression loss.
    pub loss: Loss,
    /// Model-input columns to keep in the output.
    pub keep: Vec<String>,
    /// Carried columns to leave out of the output.
    pub drop: Vec<String>,
    /// Replace segscore's outputs in a non-empty output directory.
    pub overwrite: bool,
    /// Worker threads (DataFusion partitions, model sessions).
    pub threads: usize,
    /// Treat every input file as sorted by (generation id, segment index); checked as rows
    /// flow. Also assumed when every file's footer declares that order (`sorting_columns`).
    pub sorted: bool,
    /// Memory for DataFusion's operators (the sort of unsorted input spills past it).
    pub memory_limit: u64,
    /// Where sorts spill (default: the system's temp dir).
    pub spill_dir: Option<PathBuf>,
    /// Padded positions per model call, at most.
    pub max_tokens_per_batch: usize,
    /// Rows per output part file, at most.
    pub max_rows_per_file: u64,
    /// Progress reporting.
    pub progress: ProgressMode,
    /// Seconds between progress log lines when stderr is not a terminal.
    pub progress_interval: f64,
    /// Write `report.html` with the outputs.
    pub report: bool,
    /// What to do with invalid rows.
    pub on_invalid: OnInvalid,
    /// With quarantine: fail (exit 3) when more than this fraction of the input rows is
    /// rejected.
    pub max_invalid_fraction: Option<f64>,
    /// Shards (units of commitment); None: one per 4M input rows.
    pub shards: Option<usize>,
    /// Continue an interrupted run in the output directory.
    pub resume: bool,
}

impl JobConfig {
    /// A configuration with defaults for everything but inputs, model and output.
    pub fn new(inputs: Vec<String>, model: PathBuf, output: PathBuf) -> Self {
        JobConfig {
            inputs,
            model,
            output,
            columns: ColumnNames::default(),
            query_file: None,
            model_output: None,
            provider: Provider::Auto,
            batch_size: 256,
            loss: Loss::Squared,
            keep: Vec::new(),
            drop: Vec::new(),
            overwrite: false,
            threads: default_threads(),
            sorted: false,
            memory_limit: default_memory_limit(),
            spill_dir: None,
            max_tokens_per_batch: 8192,
            max_rows_per_file: 1_000_000,
            progress: ProgressMode::Auto,
            progress_interval: 10.0,
            report: false,
            on_invalid: OnInvalid::Fail,
            max_invalid_fraction: None,
            shards: None,
            resume: false,
        }
    }
}

/// The machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A quarter of physical memory (from /proc/meminfo), at least 256 MiB; 2 GiB when unknown.
pub fn default_memory_limit() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match total_kib {
        Some(kib) => (kib * 1024 / 4).max(256 << 20),
        None => 2 << 30,
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// segscore's version.
    pub segscore_version: String,
    /// Generations scored.
    pub n_generations: u64,
    /// Segments (rows) scored.
    pub n_segments: u64,
    /// Regression metrics over all segments.
    #[serde(flatten)]
    pub metrics: RegressionMetrics,
    /// mse = bias_squared + residual_variance: the part of the error a constant shift of the
    /// predictions would remove, and the rest.
    pub mse_decomposition: MseDecomposition,
    /// What the row checks rejected (`rejected/`).
    #[serde(default)]
    pub rejected: RejectedSummary,
    /// Rank metrics, loss concentration, per-generation means, histogram and calibration.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The loss's name.
    pub loss: String,
    /// The Huber delta, when the loss is huber.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub huber_delta: Option<f64>,
    /// The model file.
    pub model: String,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The model output read as the score.
    pub model_output: String,
    /// ONNX Runtime's version.
    pub onnxruntime_version: String,
    /// The provider used: cpu or cuda.
    pub provider: String,
    /// sha256 of the job query's text.
    pub query_sha256: String,
    /// sha256 of the job's description (inputs, model, settings): `--resume` of a complete
    /// output checks it.
    #[serde(default)]
    pub job_sha256: String,
    /// Input files read.
    pub input_files: usize,
    /// Whether the input was taken as sorted (streaming window, no sort).
    pub input_sorted: bool,
    /// Shards (units of commitment) the run was cut into.
    #[serde(default)]
    pub shards: usize,
    /// Shards an interrupted run had committed, kept by `--resume`.
    #[serde(default)]
    pub resumed_shards: usize,
    /// Segment part files written (`segments/`).
    pub output_files: usize,
    /// Generation part files written (`generations/`).
    pub generation_files: usize,
    /// Bytes DataFusion spilled to disk (sorting unsorted input under --memory-limit).
    pub spilled_bytes: u64,
    /// Share of the model's input positions that were padding.
    pub padding_share: Option<f64>,
    /// Seconds inside ONNX Runtime, summed over sessions.
    pub model_seconds: f64,
    /// Wall-clock seconds of the evaluation stage (generations/ and the summary's metrics),
    /// included in `elapsed_seconds`.
    #[serde(default)]
    pub evaluation_seconds: f64,
    /// Wall-clock seconds of the run.
    pub elapsed_seconds: f64,
    /// Segments per second of wall-clock time.
    pub rows_per_second: f64,
}

/// The checks' outcome in `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectedSummary {
    /// fail or quarantine.
    pub on_invalid: OnInvalid,
    /// The threshold, when given.
    pub max_invalid_fraction: Option<f64>,
    /// Rows in the input files.
    pub input_rows: u64,
    /// Rejected rows and generations, by reason.
    #[serde(flatten)]
    pub counts: Rejections,
    /// Rejected rows / input rows.
    pub fraction: f64,
    /// Part files in `rejected/`.
    pub files: usize,
}

/// The MSE split into bias² and the residuals' variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MseDecomposition {
    /// Mean squared error.
    pub mse: Option<f64>,
    /// The squared mean residual.
    pub bias_squared: Option<f64>,
    /// The residuals' population variance.
    pub residual_variance: Option<f64>,
}

impl From<&RegressionMetrics> for MseDecomposition {
    fn from(m: &RegressionMetrics) -> Self {
        MseDecomposition {
            mse: m.mse,
            bias_squared: m.bias.map(|b| b * b),
            residual_variance: m.residual_variance,
        }
    }
}

/// Builds a DataFusion context with segscore's settings: `threads` partitions, a fair
/// spilling memory pool of `memory_limit` bytes, spills to `spill_dir` (or the temp dir).
///
/// With `sorted` input the optimizer keeps the files' order (order-preserving repartitioning,
/// file groups split by min/max statistics) instead of sorting, so the window streams.
pub fn session_context(
    threads: usize,
    memory_limit: u64,
    spill_dir: Option<&Path>,
    sorted: bool,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true);
    if sorted {
        config.options_mut().optimizer.prefer_existing_sort = true;
        config.options_mut().execution.split_file_groups_by_statistics = true;
    }
    // Whole files per scan partition: byte-range splits would lose a sorted file's order, and
    // would make the model's batches (cut from the scan's batches) depend on the thread count.
    config.options_mut().optimizer.repartition_file_scans = false;
    // Likewise no round-robin between the scan and the model: batches must reach the model as
    // the scan cut them. (The model spreads each batch over every core itself.)
    config.options_mut().optimizer.enable_round_robin_repartition = false;
    // Each sort keeps this much back for merging its spills; DataFusion's 10 MB default would
    // not fit small limits.
    let reservation = (memory_limit / (8 * threads.max(1) as u64)).clamp(256 << 10, 10 << 20);
    config.options_mut().execution.sort_spill_reservation_bytes = reservation as usize;
    // Keep string columns' types as they are in the files, so carried columns come out unchanged.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    let mut disk = DiskManagerBuilder::default();
    if let Some(dir) = spill_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.to_path_buf()]));
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit as usize)))
        .with_disk_manager_builder(disk)
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

fn read_query(cfg: &JobConfig) -> Result<String> {
    match &cfg.query_file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Error::io(p, e)),
        None => Ok(SEGMENT_SCORES_SQL.to_string()),
    }
}

/// Where each output column comes from, and the checks each batch gets.
#[derive(Debug)]
struct OutputPlan {
    gid: usize,
    seg: usize,
    cum: usize,
    target: usize,
    pred: usize,
    passthrough: Vec<usize>,
    schema: SchemaRef,
    /// The output files' sort order claim: (generation id, segment index) ascending.
    sorting: Option<Vec<SortingColumn>>,
    /// Whether the input order was declared (then an out-of-order row is an error).
    sorted_declared: bool,
    loss: Loss,
    names: ColumnNames,
    model_output: String,
    checks: RowChecks,
    /// The layout of `rejected/` (quarantine runs only).
    rejected: Option<RejectedLayout>,
}

/// The column `reward_model_input_problem(...)` fills in the job query.
const INPUT_PROBLEM: &str = "input_problem";

impl OutputPlan {
    fn new(
        input: &Schema,
        cfg: &JobConfig,
        model_output: &str,
        sorted_declared: bool,
        files: &Schema,
    ) -> Result<Self> {
        let find = |name: &str, why: &str| {
            input.index_of(name).map_err(|_| {
                Error::Usage(format!(
                    "the job query must produce a column `{name}` ({why}); it produced: {}",
                    input
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let gid = find("generation_id", "the generation key")?;
        let seg = find("segment_index", "the segment key")?;
        let cum = find("cumulative_score", "the cumulative score")?;
        let target = find("target_score", "the segment's target")?;
        let pred = find("predicted_score", "the model's score")?;
        if !matches!(
            input.field(target).data_type(),
            DataType::Float64 | DataType::Float32
        ) {
            return Err(Error::Usage(format!(
                "the job query's target_score has type {}, expected a float",
                input.field(target).data_type()
            )));
        }
        let model_inputs = ["input_ids", "token_type_ids"];
        for k in &cfg.keep {
            if !model_inputs.contains(&k.as_str()) {
                return Err(Error::Usage(format!(
                    "--keep {k}: only the model-input columns (input_ids, token_type_ids) are left out by default, so only they can be kept"
                )));
            }
            if input.index_of(k).is_err() {
                return Err(Error::Usage(format!(
                    "--keep {k}: no such column in the query's output"
                )));
            }
        }
        for d in &cfg.drop {
            if ["generation_id", "segment_index", "cumulative_score"].contains(&d.as_str())
                || OUTPUT_COLUMNS.contains(&d.as_str())
            {
                return Err(Error::Usage(format!(
                    "--drop {d}: key, score and result columns cannot be dropped"
                )));
            }
            let in_input = input.index_of(d).is_ok()
                || [Some(&cfg.columns.input_ids), cfg.columns.token_type_ids.as_ref()].contains(&Some(d));
            if !in_input {
                return Err(Error::Usage(format!("--drop {d}: no such column")));
            }
        }
        let mut passthrough = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        for (i, f) in input.fields().iter().enumerate() {
            let name = f.name().as_str();
            let skip = i == target
                || i == pred
                || name == INPUT_PROBLEM
                || (name == "base_score" && cfg.columns.base_score.is_none())
                || (model_inputs.contains(&name) && !cfg.keep.iter().any(|k| k == name))
                || cfg.drop.iter().any(|d| d == name);
            if !skip {
                passthrough.push(i);
                fields.push(f.as_ref().clone());
            }
        }
        fields.extend(
            OUTPUT_COLUMNS
                .iter()
                .map(|c| Field::new(*c, DataType::Float64, false)),
        );
        let schema = Arc::new(Schema::new(fields));
        let descr = ArrowSchemaConverter::new().convert(&schema)?;
        let leaf = |name: &str| {
            descr
                .columns()
                .iter()
                .position(|c| c.path().parts().len() == 1 && c.path().parts()[0] == name)
        };
        let sorting = match (leaf("generation_id"), leaf("segment_index")) {
            (Some(g), Some(s)) => Some(
                [g, s]
                    .iter()
                    .map(|&i| SortingColumn {
                        column_idx: i as i32,
                        descending: false,
                        nulls_first: false,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let checks = RowChecks {
            gid,
            seg,
            cum,
            base: cfg
                .columns
                .base_score
                .as_ref()
                .and_then(|_| input.index_of("base_score").ok()),
            target,
            pred,
            problem: input.index_of(INPUT_PROBLEM).ok(),
        };
        let rejected = (cfg.on_invalid == OnInvalid::Quarantine)
            .then(|| RejectedLayout::new(files, input, |n| cfg.columns.canonical(n)));
        Ok(OutputPlan {
            gid,
            seg,
            cum,
            target,
            pred,
            checks,
            rejected,
            passthrough,
            schema,
            sorting,
            sorted_declared,
            loss: cfg.loss,
            names: cfg.columns.clone(),
            model_output: model_output.to_string(),
        })
    }

    /// The input columns this plan reads, in input order: with quarantine, all of them (the
    /// rejected rows keep every column).
    fn needed_columns(&self, input: &Schema) -> Vec<String> {
        if self.rejected.is_some() {
            return input.fields().iter().map(|f| f.name().clone()).collect();
        }
        let mut idx: Vec<usize> = self.passthrough.clone();
        idx.extend([self.gid, self.seg, self.cum, self.target, self.pred]);
        idx.extend(self.checks.problem);
        idx.extend(self.checks.base);
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| input.field(i).name().clone()).collect()
    }

    fn invalid(&self, batch: &RecordBatch, row: usize, column: &str, problem: impl Into<String>) -> Error {
        Error::InvalidValue {
            column: column.to_string(),
            problem: problem.into(),
            generation_id: cell(batch.column(self.gid), row),
            segment_index: cell(batch.column(self.seg), row),
        }
    }

    /// The error `--on-invalid fail` stops with: the row's column, value and key.
    fn invalid_row(&self, batch: &RecordBatch, row: usize, reason: Reason) -> Error {
        let n = &self.names;
        let value = |i: usize| cell(batch.column(i), row);
        let base = n.base_score.as_deref().unwrap_or("base_score");
        match reason {
            Reason::DuplicateSegment => Error::DuplicateSegment {
                generation_id: value(self.gid),
                segment_index: value(self.seg),
            },
            Reason::NullGenerationId => self.invalid(batch, row, &n.generation_id, "null"),
            Reason::NullSegmentIndex => self.invalid(batch, row, &n.segment_index, "null"),
            Reason::NullCumulativeScore => self.invalid(batch, row, &n.cumulative_score, "null"),
            Reason::NonFiniteCumulativeScore => self.invalid(
                batch,
                row,
                &n.cumulative_score,
                format!("non-finite ({})", value(self.cum)),
            ),
            Reason::NullBaseScore => self.invalid(batch, row, base, "null"),
            Reason::NonFiniteBaseScore => {
                let v = self.checks.base.map(value).unwrap_or_default();
                self.invalid(batch, row, base, format!("non-finite ({v})"))
            }
            Reason::NonFinitePrediction => self.invalid(
                batch,
                row,
                &format!("predicted_score (model output `{}`)", self.model_output),
                format!("{} (the model returned a non-finite score)", value(self.pred)),
            ),
            Reason::NonFiniteTarget => self.invalid(
                batch,
                row,
                "target_score",
                format!(
                    "{} (made from the cumulative scores{})",
                    value(self.target),
                    if n.base_score.is_some() {
                        " and the base score"
                    } else {
                        ""
                    }
                ),
            ),
            Reason::TokenTypeIdsLengthMismatch => {
                let col = n.token_type_ids.as_deref().unwrap_or("token_type_ids");
                self.invalid(batch, row, col, self.problem_detail(batch, row))
            }
            Reason::UnscorableInput => self.invalid(
                batch,
                row,
                &n.input_ids,
                "null, empty or holding a token id the model cannot take, so the model gave no score",
            ),
            _ => self.invalid(batch, row, &n.input_ids, self.problem_detail(batch, row)),
        }
    }

    /// The detail `reward_model_input_problem` gave for a row (after its `code: `).
    fn problem_detail(&self, batch: &RecordBatch, row: usize) -> String {
        let text = self
            .checks
            .problem
            .map(|p| cell(batch.column(p), row))
            .unwrap_or_default();
        validate::parse_problem(&text).1.to_string()
    }

    /// Adds the loss columns to a batch of valid rows and returns the output batch with its
    /// moments.
    fn finish(&self, batch: &RecordBatch) -> Result<(RecordBatch, Moments)> {
        let target = cast(batch.column(self.target), &DataType::Float64)?;
        let target = target.as_primitive::<Float64Type>();
        let pred = batch.column(self.pred).as_primitive::<Float64Type>();
        let lc = loss_columns(self.loss, pred, target);
        let mut moments = Moments::default();
        moments.push_arrays(target, pred, &lc.loss);
        let mut columns: Vec<ArrayRef> = self
            .passthrough
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let target_arr: ArrayRef = Arc::new(Float64Array::new(target.values().clone(), None));
        let pred_arr: ArrayRef = Arc::new(Float64Array::new(pred.values().clone(), None));
        columns.extend([
            target_arr,
            pred_arr,
            Arc::new(lc.residual) as ArrayRef,
            Arc::new(lc.squared_error),
            Arc::new(lc.abs_error),
            Arc::new(lc.loss),
            Arc::new(lc.loss_grad),
        ]);
        let out = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok((out, moments))
    }
}

fn cell(a: &ArrayRef, row: usize) -> String {
    array_value_to_string(a, row).unwrap_or_else(|_| "?".into())
}

/// Checks that rows come in (generation id, segment index) order, across batches, and counts
/// the generations (each starts where the generation id changes).
struct KeyOrder {
    converter: RowConverter,
    last: Option<(OwnedRow, String, String)>,
    last_gid: Option<ArrayRef>,
    generations: u64,
}

enum OrderCheck {
    InOrder,
    /// The first row that comes before its predecessor, and that predecessor's key as text.
    OutOfOrder {
        row: usize,
        prev_gid: String,
        prev_seg: String,
    },
    /// The first row equal to its predecessor.
    Duplicate {
        row: usize,
    },
}

impl KeyOrder {
    fn new(schema: &Schema, gid: usize, seg: usize) -> Result<Self> {
        // Ascending, nulls last: the order the files declare and the window's sort gives.
        let options = datafusion::arrow::compute::SortOptions {
            descending: false,
            nulls_first: false,
        };
        let fields =
            [gid, seg].map(|i| SortField::new_with_options(schema.field(i).data_type().clone(), options));
        Ok(KeyOrder {
            converter: RowConverter::new(fields.to_vec())?,
            last: None,
            last_gid: None,
            generations: 0,
        })
    }

    fn check(&mut self, batch: &RecordBatch, gid: usize, seg: usize) -> Result<OrderCheck> {
        let cols = [Arc::clone(batch.column(gid)), Arc::clone(batch.column(seg))];
        let rows = self.converter.convert_columns(&cols)?;
        let mut verdict = OrderCheck::InOrder;
        for i in 0..rows.num_rows() {
            let ord = match (i, &self.last) {
                (0, None) => continue,
                (0, Some((last, _, _))) => last.row().cmp(&rows.row(0)),
                _ => rows.row(i - 1).cmp(&rows.row(i)),
            };
            match ord {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    verdict = OrderCheck::Duplicate { row: i };
                    break;
                }
                std::cmp::Ordering::Greater => {
                    let (prev_gid, prev_seg) = match (i, &self.last) {
                        (0, Some((_, g, s))) => (g.clone(), s.clone()),
                        _ => (cell(&cols[0], i - 1), cell(&cols[1], i - 1)),
                    };
                    verdict = OrderCheck::OutOfOrder {
                        row: i,
                        prev_gid,
                        prev_seg,
                    };
                    break;
                }
            }
        }
        let n = rows.num_rows();
        if n > 0 {
            let gid = &cols[0];
            let changes = distinct(&gid.slice(1, n - 1), &gid.slice(0, n - 1))?.true_count() as u64;
            let first = match &self.last_gid {
                Some(last) => distinct(last, &gid.slice(0, 1))?.value(0),
                None => true,
            };
            self.generations += changes + u64::from(first);
            self.last_gid = Some(gid.slice(n - 1, 1));
            self.last = Some((
                rows.row(n - 1).owned(),
                cell(&cols[0], n - 1),
                cell(&cols[1], n - 1),
            ));
        }
        Ok(verdict)
    }
}

/// The rejected rows of all partitions, and the most a run may reject.
struct RejectLimit {
    rows: AtomicU64,
    max_rows: Option<u64>,
    input_rows: u64,
    max_fraction: f64,
}

/// Drives one partition: pulls batches, checks order, validates and adds losses, and hands
/// the output batches over a bounded channel to a blocking writer thread, so that a slow
/// writer slows the reader instead of filling memory. With quarantine, batches are regrouped
/// into whole generations first, and invalid generations go to the rejected writer.
async fn run_partition(
    mut stream: SendableRecordBatchStream,
    plan: Arc<OutputPlan>,
    mut writer: RollingWriter,
    mut rejected_writer: Option<RollingWriter>,
    rows_done: Arc<AtomicU64>,
    limit: Arc<RejectLimit>,
) -> Result<Tally> {
    let mut moments = Moments::default();
    let mut rejections = Rejections::default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<WriterMsg>(2);
    let writer_task = tokio::task::spawn_blocking(move || -> Result<(Vec<String>, Vec<String>)> {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                WriterMsg::Batch(b) => writer.write(&b)?,
                WriterMsg::Rejected(b) => match &mut rejected_writer {
                    Some(w) => w.write(&b)?,
                    None => return Err(Error::Internal("rejected rows without a rejected writer".into())),
                },
                WriterMsg::Unsorted => writer.mark_unsorted()?,
            }
        }
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        };
        let rejected = rejected_writer.map(|w| w.finish()).transpose()?;
        Ok((names(writer.finish()?), rejected.map(names).unwrap_or_default()))
    });
    let quarantine = plan.rejected.is_some();
    let mut order = Some(KeyOrder::new(stream.schema().as_ref(), plan.gid, plan.seg)?);
    let mut grouper = quarantine.then(|| Grouper::new(plan.gid));
    // Checks one batch (of whole generations, with quarantine) and sends its rows on.
    let mut process = |batch: RecordBatch| -> Result<Vec<WriterMsg>> {
        let mut msgs = Vec::new();
        let reasons = plan.checks.reasons(&batch)?;
        let good = match (reasons, &plan.rejected) {
            (None, _) => batch,
            (Some(reasons), None) => {
                let (row, reason) = reasons
                    .iter()
                    .enumerate()
                    .find_map(|(i, r)| r.map(|r| (i, r)))
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
            msgs.push(WriterMsg::Batch(out));
        }
        Ok(msgs)
    };
    let outcome: Result<()> = async {
        'batches: while let Some(batch) = stream.next().await {
            let batch = batch.map_err(Error::from_datafusion)?;
            if batch.num_rows() == 0 {
                continue;
            }
            // Order first: if declared-sorted input is not, every later check is moot.
            if let Some(o) = &mut order {
                match o.check(&batch, plan.gid, plan.seg)? {
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
                    } if plan.sorted_declared => {
                        return Err(Error::NotSorted {
                            generation_id: cell(batch.column(plan.gid), row),
                            segment_index: cell(batch.column(plan.seg), row),
                            prev_generation_id: prev_gid,
                            prev_segment_index: prev_seg,
                        })
                    }
                    OrderCheck::OutOfOrder { .. } if quarantine => {
                        return Err(Error::Usage(
                            "--on-invalid quarantine needs the job query's rows in (generation_id, segment_index) order, as the window of the built-in query gives them; the replacement query's are not".into(),
                        ))
                    }
                    OrderCheck::OutOfOrder { .. } => {
                        order = None;
                        if tx.send(WriterMsg::Unsorted).await.is_err() {
                            break;
                        }
                    }
                }
            }
            rows_done.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            let ready = match &mut grouper {
                Some(g) => g.push(batch)?,
                None => vec![batch],
            };
            for b in ready {
                for msg in process(b)? {
                    if tx.send(msg).await.is_err() {
                        break 'batches; // the writer failed; its error is reported below
                    }
                }
            }
        }
        if let Some(last) = grouper.take().and_then(Grouper::finish) {
            for msg in process(last)? {
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let written = writer_task
        .await
        .map_err(|e| Error::Internal(format!("the writer thread failed: {e}")))?;
    outcome?;
    let (files, rejected_files) = written?;
    Ok(Tally {
        moments,
        generations: order.map(|o| o.generations),
        rejections,
        files,
        rejected_files,
        ..Tally::default()
    })
}

enum WriterMsg {
    Batch(RecordBatch),
    Rejected(RecordBatch),
    Unsorted,
}

/// A planned job: inputs checked, model loaded, SQL planned; nothing written yet.
pub struct Prepared {
    ctx: SessionContext,
    df: datafusion::dataframe::DataFrame,
    model: Arc<RewardModel>,
    plan: Arc<OutputPlan>,
    inputs: source::Inputs,
    sorted: bool,
    query_sha256: String,
    metadata: Arc<Vec<(String, String)>>,
    targets_sql: String,
    carried: Vec<String>,
    needed: Vec<String>,
    shards: usize,
    fingerprint: JobFingerprint,
}

/// What decides a run's rows and values: `--resume` continues only the same job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFingerprint {
    /// segscore's version.
    pub segscore_version: String,
    /// Each input file: path, bytes, modification time (ns since the epoch).
    pub inputs: Vec<(String, u64, u128)>,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The model output read.
    pub model_output: String,
    /// The provider used.
    pub provider: String,
    /// sha256 of the job query.
    pub query_sha256: String,
    /// The loss.
    pub loss: String,
    /// Input column names.
    pub columns: ColumnNames,
    /// --keep.
    pub keep: Vec<String>,
    /// --drop.
    pub drop: Vec<String>,
    /// --on-invalid.
    pub on_invalid: OnInvalid,
    /// --max-invalid-fraction.
    pub max_invalid_fraction: Option<f64>,
    /// Shards.
    pub shards: usize,
    /// Whether the input was taken as sorted.
    pub sorted: bool,
    /// --max-rows-per-file.
    pub max_rows_per_file: u64,
}

impl JobFingerprint {
    /// The first setting in which `self` (the interrupted run) differs from `now`.
    fn difference(&self, now: &JobFingerprint) -> Option<String> {
        let (a, b) = (serde_json::to_value(self).ok()?, serde_json::to_value(now).ok()?);
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find(|(k, v)| b.get(*k) != Some(*v)).map(|(k, v)| {
            let short = |v: Option<&serde_json::Value>| {
                let t = v.map(|v| v.to_string()).unwrap_or_else(|| "nothing".into());
                if t.len() > 200 {
                    format!("{}...", &t[..t.floor_char_boundary(200)])
                } else {
                    t
                }
            };
            format!("{k} {} (now {})", short(Some(v)), short(b.get(k)))
        })
    }
}

fn input_stamps(inputs: &source::Inputs) -> Result<Vec<(String, u64, u128)>> {
    inputs
        .files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(&f.path).map_err(|e| Error::io(&f.path, e))?;
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Ok((f.path.display().to_string(), m.len(), modified))
        })
        .collect()
}

/// Checks the inputs, loads the model and plans the job's SQL.
pub async fn prepare(cfg: &JobConfig) -> Result<Prepared> {
    let files = source::expand_inputs(&cfg.inputs)?;
    let inputs = source::check_inputs(&files, &cfg.columns, cfg.on_invalid == OnInvalid::Fail)?;
    let targets_sql = read_query(cfg)?;
    let model = Arc::new(RewardModel::load(
        &cfg.model,
        &ModelOptions {
            provider: cfg.provider,
            batch_size: cfg.batch_size,
            max_tokens: cfg.max_tokens_per_batch,
            sessions: cfg.threads.max(1),
            intra_threads: 1,
            output: cfg.model_output.clone(),
        },
    )?);
    let sorted = cfg.sorted || inputs.all_sorted();
    let shards = cfg
        .shards
        .unwrap_or_else(|| crate::shard::auto_shards(inputs.total_rows()))
        .max(1);
    let ctx = session_context(cfg.threads, cfg.memory_limit, cfg.spill_dir.as_deref(), sorted)?;
    model.register(&ctx);
    crate::udaf::register(&ctx);
    if shards > 1 {
        // Each shard's pass decodes the other columns only for its own rows.
        ctx.sql("SET datafusion.execution.parquet.pushdown_filters = true")
            .await?
            .collect()
            .await?;
    }
    if sorted && !cfg.sorted {
        tracing::info!("every input file declares sorting_columns (generation_id, segment_index): the window runs without a sort");
    }
    let carried = source::register(&ctx, &inputs, &cfg.columns, sorted).await?;
    let targets = plan_query(&ctx, cfg, &targets_sql).await?;
    // Only what the output needs travels on: DataFusion pushes this projection down through
    // the window, so the token lists are dropped as soon as the model has read them.
    let files_schema = ctx.table("input_files").await?.schema().as_arrow().clone();
    let full = OutputPlan::new(
        targets.schema().as_arrow(),
        cfg,
        model.output_name(),
        sorted,
        &files_schema,
    )?;
    let needed = full.needed_columns(targets.schema().as_arrow());
    let df = targets.select_columns(&needed.iter().map(String::as_str).collect::<Vec<_>>())?;
    let plan = Arc::new(OutputPlan::new(
        df.schema().as_arrow(),
        cfg,
        model.output_name(),
        sorted,
        &files_schema,
    )?);
    let query_sha256 = hex::encode(Sha256::digest(targets_sql.as_bytes()));
    let metadata = Arc::new(vec![
        (
            "segscore.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("segscore.model_sha256".to_string(), model.sha256().to_string()),
        (
            "segscore.model_output".to_string(),
            model.output_name().to_string(),
        ),
        ("segscore.query_sha256".to_string(), query_sha256.clone()),
        ("segscore.query".to_string(), targets_sql.clone()),
        ("segscore.loss".to_string(), cfg.loss.describe()),
        (
            "segscore.provider".to_string(),
            model.provider().as_str().to_string(),
        ),
    ]);
    let fingerprint = JobFingerprint {
        segscore_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs: input_stamps(&inputs)?,
        model_sha256: model.sha256().to_string(),
        model_output: model.output_name().to_string(),
        provider: model.provider().as_str().to_string(),
        query_sha256: query_sha256.clone(),
        loss: cfg.loss.describe(),
        columns: cfg.columns.clone(),
        keep: cfg.keep.clone(),
        drop: cfg.drop.clone(),
        on_invalid: cfg.on_invalid,
        max_invalid_fraction: cfg.max_invalid_fraction,
        shards,
        sorted,
        max_rows_per_file: cfg.max_rows_per_file,
    };
    Ok(Prepared {
        ctx,
        df,
        model,
        plan,
        inputs,
        sorted,
        query_sha256,
        metadata,
        targets_sql,
        carried,
        needed,
        shards,
        fingerprint,
    })
}

async fn plan_query(
    ctx: &SessionContext,
    cfg: &JobConfig,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    ctx.sql(sql).await.map_err(|e| {
        Error::Usage(format!(
            "job query{}: {e}",
            cfg.query_file
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default()
        ))
    })
}

impl Prepared {
    /// The physical plan, indented, as DataFusion's EXPLAIN shows it (of the first shard,
    /// when there are several).
    pub async fn physical_plan(&self, cfg: &JobConfig) -> Result<String> {
        let plan = self.shard_frame(cfg, 0).await?.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        Ok(text)
    }

    /// The job's DataFrame for shard `k`.
    async fn shard_frame(&self, cfg: &JobConfig, k: usize) -> Result<datafusion::dataframe::DataFrame> {
        if self.shards == 1 {
            return Ok(self.df.clone());
        }
        source::register_view(&self.ctx, &cfg.columns, &self.carried, Some((k, self.shards))).await?;
        let df = plan_query(&self.ctx, cfg, &self.targets_sql).await?;
        Ok(df.select_columns(&self.needed.iter().map(String::as_str).collect::<Vec<_>>())?)
    }
}

/// Runs the whole job and commits the output directory, shard by shard (see
/// [`crate::shard`]); with `cfg.resume`, continues an interrupted run from its committed
/// shards. On an error nothing is committed under a final name; committed shards stay in the
/// work folder for `--resume`.
pub async fn run(cfg: &JobConfig) -> Result<Summary> {
    let started = Instant::now();
    let prepared = prepare(cfg).await?;
    let (mut out, mut found) = OutputDir::prepare(&cfg.output, cfg.overwrite, cfg.resume)?;
    let job_json = serde_json::to_vec_pretty(&prepared.fingerprint)?;
    let job_sha256 = hex::encode(Sha256::digest(&job_json));
    let read_summary = || -> Result<Summary> {
        let p = cfg.output.join("summary.json");
        Ok(serde_json::from_slice(
            &std::fs::read(&p).map_err(|e| Error::io(&p, e))?,
        )?)
    };
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
    match run_shards(cfg, &prepared, &out, started, job_sha256).await {
        Ok((summary, files)) => {
            out.commit(&files)?;
            Ok(summary)
        }
        Err(e) => {
            let kept = out.abort();
            if kept > 0 {
                tracing::warn!(
                    committed_shards = kept,
                    shards = prepared.shards,
                    "the committed shards are kept: rerun with --resume to finish the run"
                );
            }
            Err(e)
        }
    }
}

/// Runs the shards not yet committed, then the evaluation; returns the summary and the files
/// to commit with the outputs.
async fn run_shards(
    cfg: &JobConfig,
    p: &Prepared,
    out: &OutputDir,
    started: Instant,
    job_sha256: String,
) -> Result<(Summary, Vec<(&'static str, Vec<u8>)>)> {
    let mut records: std::collections::BTreeMap<usize, ShardRecord> = Default::default();
    for (name, bytes) in out.shard_records()? {
        let r: ShardRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("shard record {name} is unreadable: {e}")))?;
        if r.shard < p.shards && crate::shard::record_shard(&name) == Some(r.shard) {
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
    let mut failure = None;
    for k in 0..p.shards {
        if records.contains_key(&k) {
            continue;
        }
        if p.shards > 1 {
            tracing::debug!(shard = k, shards = p.shards, "shard started");
        }
        let record = async {
            let df = p.shard_frame(cfg, k).await?;
            let st = p.model.stats();
            let before = (
                st.tokens.load(Ordering::Relaxed),
                st.positions.load(Ordering::Relaxed),
                st.run_nanos.load(Ordering::Relaxed),
            );
            let ex = execute(
                df,
                out,
                Arc::clone(&p.plan),
                Arc::clone(&p.metadata),
                cfg.max_rows_per_file,
                progress.counter(),
                Arc::clone(&limit),
                crate::shard::part_prefix(k),
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
            out.write(
                &format!("{}/{}", crate::sink::SHARDS_DIR, crate::shard::record_name(k)),
                &serde_json::to_vec(&record)?,
            )?;
            crate::sink::crash_point("shard-committed");
            Ok::<_, Error>(record)
        }
        .await;
        match record {
            Ok(r) => {
                records.insert(k, r);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    progress.finish().await;
    if let Some(e) = failure {
        return Err(match e {
            Error::DataFusion(df) if df.find_root().to_string().contains("Resources exhausted") => {
                Error::MemoryLimit {
                    limit: bytesize::ByteSize::b(cfg.memory_limit).to_string(),
                    detail: df.find_root().to_string(),
                }
            }
            // The readers' errors do not say which file: find it.
            e @ (Error::Arrow(_) | Error::Parquet(_) | Error::DataFusion(_)) => {
                match find_unreadable(p).await {
                    Some((path, reason)) => Error::NotParquet { path, reason },
                    None => e,
                }
            }
            // A model-output error came from a batch of rows: name the first row that gives it.
            Error::ModelBinding { model, reason } => {
                let at = first_row_failing_the_model(p, cfg).await;
                Error::ModelBinding {
                    model,
                    reason: match at {
                        Some((g, s)) => format!("{reason} (first at generation_id={g}, segment_index={s})"),
                        None => reason,
                    },
                }
            }
            other => other,
        });
    }
    if p.shards > 1 {
        source::register_view(&p.ctx, &cfg.columns, &p.carried, None).await?;
    }
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
        ..
    } = total;
    let (mut output_files, rejected_files) = (total.files.len(), total.rejected_files.len());
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
    // Rows that came out of the query in key order were checked and counted on the way; if
    // they did not (a replacement query without the window, say), check and count with SQL.
    let n_generations = match generations {
        Some(g) => g - rejections.generations,
        None => check_keys_by_sql(&p.ctx).await?,
    };
    // Per-generation and overall metrics, by the queries in queries/ over the staged segments.
    let evaluation_started = Instant::now();
    let eval_ctx = session_context(cfg.threads, cfg.memory_limit, cfg.spill_dir.as_deref(), true)?;
    crate::udaf::register(&eval_ctx);
    let (evaluation, generation_files) = crate::evaluate::evaluate(
        &eval_ctx,
        out.staging(),
        Arc::clone(&p.metadata),
        cfg.max_rows_per_file,
    )
    .await?;
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
        onnxruntime_version: p.model.runtime().version.clone(),
        provider: p.model.provider().as_str().to_string(),
        query_sha256: p.query_sha256.clone(),
        job_sha256,
        input_files: p.inputs.files.len(),
        input_sorted: p.sorted,
        shards: p.shards,
        resumed_shards,
        output_files,
        generation_files,
        spilled_bytes,
        padding_share: (positions > 0).then(|| 1.0 - tokens as f64 / positions as f64),
        model_seconds: nanos as f64 / 1e9,
        evaluation_seconds,
        elapsed_seconds: elapsed,
        rows_per_second: if elapsed > 0.0 {
            moments.n as f64 / elapsed
        } else {
            0.0
        },
    };
    let mut files = vec![("summary.json", serde_json::to_vec_pretty(&summary)?)];
    if cfg.report {
        let title = cfg.output.display().to_string();
        let html = crate::report::render(&eval_ctx, &summary, &title).await?;
        files.push(("report.html", html.into_bytes()));
    }
    Ok((summary, files))
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    df: datafusion::dataframe::DataFrame,
    out: &OutputDir,
    plan: Arc<OutputPlan>,
    metadata: Arc<Vec<(String, String)>>,
    max_rows_per_file: u64,
    rows_done: Arc<AtomicU64>,
    limit: Arc<RejectLimit>,
    prefix: String,
) -> Result<Tally> {
    let dir = out.staged("segments")?;
    let rejected_dir = match &plan.rejected {
        Some(_) => Some(out.staged("rejected")?),
        None => None,
    };
    let rejected_counter = Arc::new(AtomicUsize::new(0));
    let task_ctx = Arc::new(df.task_ctx());
    let physical = df.create_physical_plan().await.map_err(Error::from_datafusion)?;
    let streams = datafusion::physical_plan::execute_stream_partitioned(Arc::clone(&physical), task_ctx)
        .map_err(Error::from_datafusion)?;
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let writer = RollingWriter::new(
            dir.clone(),
            Arc::clone(&plan.schema),
            Arc::clone(&metadata),
            plan.sorting.clone(),
            max_rows_per_file,
            Arc::clone(&counter),
        )
        .with_prefix(prefix.clone());
        let rejected_writer = match (&plan.rejected, &rejected_dir) {
            (Some(layout), Some(d)) => Some(
                RollingWriter::new(
                    d.clone(),
                    Arc::clone(&layout.schema),
                    Arc::clone(&metadata),
                    None,
                    max_rows_per_file,
                    Arc::clone(&rejected_counter),
                )
                .with_prefix(prefix.clone()),
            ),
            _ => None,
        };
        let part = run_partition(
            stream,
            Arc::clone(&plan),
            writer,
            rejected_writer,
            Arc::clone(&rows_done),
            Arc::clone(&limit),
        );
        tasks.spawn(async move { part.await.map(|r| (i, r)) });
    }
    let mut parts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        parts.push(joined.map_err(|e| Error::Internal(format!("a worker task failed: {e}")))??);
    }
    // Merged in partition order: the same sums whatever order the partitions finished in.
    parts.sort_by_key(|(i, _)| *i);
    let mut executed = Tally {
        spilled_bytes: spilled_bytes(physical.as_ref()),
        ..Tally::default()
    };
    for (_, part) in &parts {
        executed.merge(part);
    }
    Ok(executed)
}

/// The first input file that cannot be read whole, and why: each file scanned alone, as the
/// job scans it (only after a scan failed with an error that names no file).
async fn find_unreadable(p: &Prepared) -> Option<(PathBuf, String)> {
    for f in p.inputs.files.iter().map(|f| f.path.clone()) {
        let scan = async {
            let table = crate::evaluate::parquet_table(&p.ctx, std::slice::from_ref(&f), &[], &[]).await?;
            let mut stream = p.ctx.read_table(table)?.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                batch?;
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = scan.await {
            return Some((f, e.to_string()));
        }
    }
    None
}

/// Rows the model is run on one by one, at most, to name the row of a model-output error.
const MODEL_ERROR_SEARCH_ROWS: usize = 10_000;

/// The key of the first input row (in file order, among the first
/// [`MODEL_ERROR_SEARCH_ROWS`]) on which the model alone fails: after a model-output error
/// from a batch of rows.
async fn first_row_failing_the_model(p: &Prepared, cfg: &JobConfig) -> Option<(String, String)> {
    source::register_view(&p.ctx, &cfg.columns, &p.carried, None)
        .await
        .ok()?;
    let df = p
        .ctx
        .sql("SELECT generation_id, segment_index, input_ids, token_type_ids FROM generations")
        .await
        .ok()?;
    let mut stream = df.execute_stream().await.ok()?;
    let mut seen = 0;
    while let Some(Ok(batch)) = stream.next().await {
        for row in 0..batch.num_rows() {
            let ids = batch.column(2).slice(row, 1);
            let types = batch.column(3).slice(row, 1);
            let types = (types.data_type() != &DataType::Null).then_some(types);
            let failed = tokio::task::block_in_place(|| {
                matches!(
                    p.model.predict(ids.as_ref(), types.as_deref()),
                    Err(Error::ModelBinding { .. })
                )
            });
            if failed {
                return Some((cell(batch.column(0), row), cell(batch.column(1), row)));
            }
            seen += 1;
            if seen >= MODEL_ERROR_SEARCH_ROWS {
                return None;
            }
        }
    }
    None
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

/// Fails on a duplicate (generation_id, segment_index) and counts the generations, by SQL
/// over the input: for output that did not come out in key order.
async fn check_keys_by_sql(ctx: &SessionContext) -> Result<u64> {
    let dup = ctx
        .sql(
            "SELECT CAST(generation_id AS VARCHAR) AS g, CAST(segment_index AS VARCHAR) AS s FROM generations \
             GROUP BY generation_id, segment_index HAVING COUNT(*) > 1 LIMIT 1",
        )
        .await?
        .collect()
        .await?;
    if let Some(b) = dup.iter().find(|b| b.num_rows() > 0) {
        return Err(Error::DuplicateSegment {
            generation_id: cell(b.column(0), 0),
            segment_index: cell(b.column(1), 0),
        });
    }
    count_generations(ctx).await
}

async fn count_generations(ctx: &SessionContext) -> Result<u64> {
    let batches = ctx
        .sql("SELECT COUNT(DISTINCT generation_id) AS n FROM generations")
        .await?
        .collect()
        .await?;
    let n = batches
        .first()
        .map(|b| cast(b.column(0), &DataType::Int64))
        .transpose()?
        .map(|a| a.as_primitive::<Int64Type>().value(0))
        .unwrap_or(0);
    Ok(n as u64)
}
