//! Preparing a job: the inputs expanded and checked, the model loaded, the session set up
//! with every segscore function, the job query planned, and the output plan, metadata and
//! fingerprint made. Nothing is written.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::engine::session_context;
use crate::error::{Error, Result};
use crate::model::{ModelOptions, RewardModel};
use crate::pipeline::config::{read_query, JobConfig};
use crate::pipeline::fingerprint::{input_stamps, JobFingerprint};
use crate::pipeline::plan::OutputPlan;
use crate::source;
use crate::validate::OnInvalid;

/// A planned job: inputs checked, model loaded, SQL planned; nothing written yet.
pub struct Prepared {
    pub(crate) ctx: SessionContext,
    pub(crate) df: datafusion::dataframe::DataFrame,
    pub(crate) model: Arc<RewardModel>,
    pub(crate) plan: Arc<OutputPlan>,
    pub(crate) inputs: source::Inputs,
    pub(crate) sorted: bool,
    pub(crate) query_sha256: String,
    pub(crate) metadata: Arc<Vec<(String, String)>>,
    pub(crate) targets_sql: String,
    pub(crate) carried: Vec<String>,
    pub(crate) needed: Vec<String>,
    pub(crate) shards: usize,
    pub(crate) fingerprint: JobFingerprint,
}

/// Checks the inputs, loads the model and plans the job's SQL.
pub async fn prepare(cfg: &JobConfig) -> Result<Prepared> {
    // The output is read back through DataFusion (the evaluation): its path must be a URL too.
    crate::engine::tables::require_utf8(&cfg.output)?;
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
    crate::functions::register(&ctx, Some(&model));
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
        batch_size: cfg.batch_size,
        max_tokens_per_batch: cfg.max_tokens_per_batch,
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
    pub(crate) async fn shard_frame(
        &self,
        cfg: &JobConfig,
        k: usize,
    ) -> Result<datafusion::dataframe::DataFrame> {
        if self.shards == 1 {
            return Ok(self.df.clone());
        }
        let filter = crate::shard::filter_sql(&cfg.columns.generation_id, k, self.shards);
        source::register_view(&self.ctx, &cfg.columns, &self.carried, Some(&filter)).await?;
        let df = plan_query(&self.ctx, cfg, &self.targets_sql).await?;
        Ok(df.select_columns(&self.needed.iter().map(String::as_str).collect::<Vec<_>>())?)
    }
}
