//! The job: source → query → model → loss → sink, driven as one streaming DataFusion plan.
//!
//! 1. the input files are checked from their footers and registered (`generations`);
//! 2. the targets query (`queries/segment_scores.sql`, or `--query-file`) becomes the view
//!    `segment_scores`;
//! 3. the job query `SELECT *, reward_model(input_ids) AS predicted_score FROM segment_scores`
//!    runs the model inside DataFusion's plan, one stream per partition;
//! 4. each partition's batches are validated, get their loss columns, and are written to
//!    their own part file while the moments for the summary accumulate;
//! 5. the output directory is committed (see [`crate::sink`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::loss::{loss_columns, Loss, Moments, RegressionMetrics, OUTPUT_COLUMNS};
use crate::model::{ModelOptions, RewardModel, UDF_NAME};
use crate::runtime::Provider;
use crate::sink::{writer_properties, OutputDir, PartWriter};
use crate::source::{self, ColumnNames};

/// The targets query shipped with segscore (`queries/segment_scores.sql`).
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
    /// A replacement for the targets query.
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
        }
    }
}

/// The machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
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
    /// sha256 of the query text (targets query and job query).
    pub query_sha256: String,
    /// Input files read.
    pub input_files: usize,
    /// Share of the model's input positions that were padding.
    pub padding_share: Option<f64>,
    /// Seconds inside ONNX Runtime, summed over sessions.
    pub model_seconds: f64,
    /// Wall-clock seconds of the run.
    pub elapsed_seconds: f64,
    /// Segments per second of wall-clock time.
    pub rows_per_second: f64,
}

/// Builds a DataFusion context with segscore's settings.
pub fn session_context(threads: usize) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true);
    // Keep string columns' types as they are in the files, so carried columns come out unchanged.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    SessionContext::new_with_config(config)
}

fn read_query(cfg: &JobConfig) -> Result<String> {
    match &cfg.query_file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Error::io(p, e)),
        None => Ok(SEGMENT_SCORES_SQL.to_string()),
    }
}

/// The job query that runs the model over the targets.
pub fn predict_sql(cols: &ColumnNames, model: &RewardModel) -> String {
    let args = if cols.token_type_ids.is_some() && model.signature().wants_token_type_ids() {
        "input_ids, token_type_ids"
    } else {
        "input_ids"
    };
    format!("SELECT *, {UDF_NAME}({args}) AS predicted_score FROM segment_scores")
}

/// Where each output column comes from, and the checks each batch gets.
#[derive(Debug)]
struct OutputPlan {
    gid: usize,
    seg: usize,
    cum: usize,
    target: usize,
    pred: usize,
    prev: Option<usize>,
    passthrough: Vec<usize>,
    schema: SchemaRef,
    loss: Loss,
    names: ColumnNames,
    model_output: String,
}

impl OutputPlan {
    fn new(input: &Schema, cfg: &JobConfig, model_output: &str) -> Result<Self> {
        let find = |name: &str, why: &str| {
            input.index_of(name).map_err(|_| {
                Error::Usage(format!(
                    "the targets query must produce a column `{name}` ({why}); it produced: {}",
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
                "the targets query's target_score has type {}, expected a float",
                input.field(target).data_type()
            )));
        }
        let prev = input.index_of("previous_segment_index").ok();
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
                || Some(i) == prev
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
        Ok(OutputPlan {
            gid,
            seg,
            cum,
            target,
            pred,
            prev,
            passthrough,
            schema: Arc::new(Schema::new(fields)),
            loss: cfg.loss,
            names: cfg.columns.clone(),
            model_output: model_output.to_string(),
        })
    }

    fn invalid(&self, batch: &RecordBatch, row: usize, column: &str, problem: impl Into<String>) -> Error {
        Error::InvalidValue {
            column: column.to_string(),
            problem: problem.into(),
            generation_id: cell(batch.column(self.gid), row),
            segment_index: cell(batch.column(self.seg), row),
        }
    }

    /// Validates a batch, adds the loss columns, and returns the output batch with its
    /// moments and the number of generations that start in it.
    fn finish(&self, batch: &RecordBatch) -> Result<(RecordBatch, Moments, u64)> {
        let first_null = |a: &ArrayRef| (0..a.len()).find(|&i| a.is_null(i));
        for (idx, name) in [
            (self.gid, self.names.generation_id.as_str()),
            (self.seg, self.names.segment_index.as_str()),
            (self.cum, self.names.cumulative_score.as_str()),
        ] {
            if let Some(row) = first_null(batch.column(idx)) {
                return Err(self.invalid(batch, row, name, "null"));
            }
        }
        let target = cast(batch.column(self.target), &DataType::Float64)?;
        if let Some(row) = first_null(&target) {
            let col = self.names.base_score.as_deref().unwrap_or("target_score");
            return Err(self.invalid(
                batch,
                row,
                col,
                "null (no baseline for the generation's first segment)",
            ));
        }
        let pred_col = batch.column(self.pred);
        if let Some(row) = first_null(pred_col) {
            return Err(self.invalid(
                batch,
                row,
                &self.names.input_ids,
                "null, empty or holding a null token id, so the model cannot score it",
            ));
        }
        let target = target.as_primitive::<Float64Type>();
        let pred = pred_col.as_primitive::<Float64Type>();
        if let Some(row) = (0..pred.len()).find(|&i| !pred.value(i).is_finite()) {
            return Err(self.invalid(
                batch,
                row,
                &format!("predicted_score (model output `{}`)", self.model_output),
                format!("{} (the model returned a non-finite score)", pred.value(row)),
            ));
        }
        if let Some(row) = (0..target.len()).find(|&i| !target.value(i).is_finite()) {
            return Err(self.invalid(
                batch,
                row,
                &self.names.cumulative_score,
                format!("non-finite (target {})", target.value(row)),
            ));
        }
        let mut generations = 0u64;
        if let Some(prev) = self.prev {
            let prev = batch.column(prev);
            generations = prev.null_count() as u64;
            let seg = cast(batch.column(self.seg), &DataType::Int64)?;
            let prev64 = cast(prev, &DataType::Int64)?;
            let (seg, prev64) = (
                seg.as_primitive::<Int64Type>(),
                prev64.as_primitive::<Int64Type>(),
            );
            if let Some(row) = (0..seg.len()).find(|&i| prev64.is_valid(i) && prev64.value(i) == seg.value(i))
            {
                return Err(Error::DuplicateSegment {
                    generation_id: cell(batch.column(self.gid), row),
                    segment_index: cell(batch.column(self.seg), row),
                });
            }
        }
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
        Ok((out, moments, generations))
    }
}

fn cell(a: &ArrayRef, row: usize) -> String {
    array_value_to_string(a, row).unwrap_or_else(|_| "?".into())
}

struct PartResult {
    moments: Moments,
    generations: u64,
}

async fn run_partition(
    mut stream: SendableRecordBatchStream,
    plan: Arc<OutputPlan>,
    dir: PathBuf,
    part: usize,
    metadata: Arc<Vec<(String, String)>>,
) -> Result<PartResult> {
    let mut result = PartResult {
        moments: Moments::default(),
        generations: 0,
    };
    let mut writer: Option<PartWriter> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::from_datafusion)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let (out, moments, generations) = plan.finish(&batch)?;
        result.moments.merge(&moments);
        result.generations += generations;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(PartWriter::create(
                &dir,
                &format!("part-{part:05}.parquet"),
                Arc::clone(&plan.schema),
                writer_properties(&metadata),
            )?),
        };
        w.write(&out)?;
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(result)
}

/// A planned job: inputs checked, model loaded, SQL planned; nothing written yet.
pub struct Prepared {
    ctx: SessionContext,
    df: datafusion::dataframe::DataFrame,
    model: Arc<RewardModel>,
    plan: Arc<OutputPlan>,
    inputs: source::Inputs,
    query_sha256: String,
    metadata: Arc<Vec<(String, String)>>,
}

/// Checks the inputs, loads the model and plans the job's SQL.
pub async fn prepare(cfg: &JobConfig) -> Result<Prepared> {
    let files = source::expand_inputs(&cfg.inputs)?;
    let inputs = source::check_inputs(&files, &cfg.columns)?;
    let targets_sql = read_query(cfg)?;
    let model = Arc::new(RewardModel::load(
        &cfg.model,
        &ModelOptions {
            provider: cfg.provider,
            batch_size: cfg.batch_size,
            sessions: cfg.threads.max(1),
            intra_threads: 1,
            output: cfg.model_output.clone(),
        },
    )?);
    let ctx = session_context(cfg.threads);
    ctx.register_udf(model.udf());
    source::register(&ctx, &inputs, &cfg.columns).await?;
    let targets = ctx.sql(&targets_sql).await.map_err(|e| {
        Error::Usage(format!(
            "targets query{}: {e}",
            cfg.query_file
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default()
        ))
    })?;
    ctx.register_table("segment_scores", targets.into_view())?;
    let job_sql = predict_sql(&cfg.columns, &model);
    let df = ctx.sql(&job_sql).await?;
    let plan = Arc::new(OutputPlan::new(df.schema().as_arrow(), cfg, model.output_name())?);
    let query = format!("{targets_sql}\n;\n{job_sql}");
    let query_sha256 = hex::encode(Sha256::digest(query.as_bytes()));
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
        ("segscore.query".to_string(), query),
        ("segscore.loss".to_string(), cfg.loss.describe()),
        (
            "segscore.provider".to_string(),
            model.provider().as_str().to_string(),
        ),
    ]);
    Ok(Prepared {
        ctx,
        df,
        model,
        plan,
        inputs,
        query_sha256,
        metadata,
    })
}

impl Prepared {
    /// The physical plan, indented, as DataFusion's EXPLAIN shows it.
    pub async fn physical_plan(&self) -> Result<String> {
        let plan = self.df.clone().create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        Ok(text)
    }
}

/// Runs the whole job and commits the output directory. On any error nothing is committed:
/// the staging folder is removed and the error returned.
pub async fn run(cfg: &JobConfig) -> Result<Summary> {
    let started = Instant::now();
    let Prepared {
        ctx,
        df,
        model,
        plan,
        inputs,
        query_sha256,
        metadata,
    } = prepare(cfg).await?;

    let out = OutputDir::prepare(&cfg.output, cfg.overwrite)?;
    let result = execute(&ctx, df, &out, plan, metadata).await;
    let (moments, generations) = match result {
        Ok(r) => r,
        Err(e) => {
            out.abort();
            return Err(e);
        }
    };
    let n_generations = match generations {
        Some(g) => g,
        None => match count_generations(&ctx).await {
            Ok(g) => g,
            Err(e) => {
                out.abort();
                return Err(e);
            }
        },
    };
    let elapsed = started.elapsed().as_secs_f64();
    let st = model.stats();
    let positions = st.positions.load(std::sync::atomic::Ordering::Relaxed);
    let tokens = st.tokens.load(std::sync::atomic::Ordering::Relaxed);
    let summary = Summary {
        segscore_version: env!("CARGO_PKG_VERSION").to_string(),
        n_generations,
        n_segments: moments.n,
        metrics: moments.metrics(),
        loss: cfg.loss.name().to_string(),
        huber_delta: match cfg.loss {
            Loss::Huber { delta } => Some(delta),
            _ => None,
        },
        model: cfg.model.display().to_string(),
        model_sha256: model.sha256().to_string(),
        model_output: model.output_name().to_string(),
        onnxruntime_version: model.runtime().version.clone(),
        provider: model.provider().as_str().to_string(),
        query_sha256,
        input_files: inputs.files.len(),
        padding_share: (positions > 0).then(|| 1.0 - tokens as f64 / positions as f64),
        model_seconds: st.run_nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9,
        elapsed_seconds: elapsed,
        rows_per_second: if elapsed > 0.0 {
            moments.n as f64 / elapsed
        } else {
            0.0
        },
    };
    let json = serde_json::to_vec_pretty(&summary)?;
    out.commit(&[("summary.json", json)])?;
    Ok(summary)
}

async fn execute(
    ctx: &SessionContext,
    df: datafusion::dataframe::DataFrame,
    out: &OutputDir,
    plan: Arc<OutputPlan>,
    metadata: Arc<Vec<(String, String)>>,
) -> Result<(Moments, Option<u64>)> {
    let _ = ctx;
    let dir = out.staged("segments")?;
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(Error::from_datafusion)?;
    let mut tasks = tokio::task::JoinSet::new();
    for (part, stream) in streams.into_iter().enumerate() {
        tasks.spawn(run_partition(
            stream,
            Arc::clone(&plan),
            dir.clone(),
            part,
            Arc::clone(&metadata),
        ));
    }
    let mut moments = Moments::default();
    let mut generations = 0u64;
    while let Some(joined) = tasks.join_next().await {
        let part = joined.map_err(|e| Error::Usage(format!("a worker task failed: {e}")))??;
        moments.merge(&part.moments);
        generations += part.generations;
    }
    Ok((moments, plan.prev.map(|_| generations)))
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
