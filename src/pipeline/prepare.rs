//! Preparing a job: the inputs expanded and checked, the model loaded, the session set up
//! with every segscore function, the job query planned, and the output plan, metadata and
//! fingerprint made. Nothing is written.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::contract::EXECUTOR_COLUMN;
use crate::engine::session_context;
use crate::error::{Error, Result};
use crate::evaluate::stream::StreamEval;
use crate::model::{RewardModel, TextTokenizer};
use crate::pipeline::config::{read_query, JobConfig};
use crate::pipeline::fingerprint::{input_stamps, JobFingerprint};
use crate::pipeline::loading::{text_flags, ModelLoad, ModelParts};
use crate::pipeline::plan::OutputPlan;
use crate::pipeline::score::{GenerationStage, Pass, Prediction, StageColumns, TextInput};
use crate::source;
use crate::validate::OnInvalid;

/// A planned job: inputs checked, model loaded, SQL planned; nothing written yet.
pub struct Prepared {
    pub(crate) ctx: SessionContext,
    pub(crate) df: datafusion::dataframe::DataFrame,
    pub(crate) model: Arc<RewardModel>,
    pub(crate) plan: Arc<OutputPlan>,
    pub(crate) inputs: source::Inputs,
    /// How the plan gets each generation's rows in key order.
    pub(crate) order: InputOrder,
    pub(crate) query_sha256: String,
    pub(crate) metadata: Arc<Vec<(String, String)>>,
    pub(crate) targets_sql: String,
    pub(crate) carried: Vec<String>,
    pub(crate) needed: Vec<String>,
    pub(crate) shards: usize,
    pub(crate) fingerprint: JobFingerprint,
    /// The generation stage (text input, or --prediction cumulative).
    pub(crate) stage: Option<Arc<GenerationStage>>,
    /// The tokenizer (text input).
    pub(crate) tokenizer: Option<Arc<TextTokenizer>>,
    /// The pass used (text input).
    pub(crate) pass: Option<Pass>,
    /// The hive layout of the input folders, if any.
    pub(crate) hive: Option<source::hive::Hive>,
    /// The evaluation in the pass.
    pub(crate) eval: Option<Arc<StreamEval>>,
    /// The physical plan of a one-shard job, made while its model loaded; taken by the run.
    pub(crate) first_plan: Option<Arc<dyn ExecutionPlan>>,
}

/// How the job's plan gets each generation's rows in (generation id, segment index) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOrder {
    /// `--sorted`: every file is taken as sorted, and a row out of order is an error.
    Declared,
    /// Every file's footer declares the order (`sorting_columns`): the plan streams, and a
    /// row out of order falls back to [`InputOrder::Sort`].
    Footers,
    /// Nothing declares the order and no footer's statistics disprove it: the plan streams as
    /// if the files were sorted, the order is checked as rows come, and at the first row out
    /// of order the shard runs again with [`InputOrder::Sort`].
    Detected,
    /// The plan sorts (externally, spilling past `--memory-limit`).
    Sort,
}

impl InputOrder {
    /// Whether the plan takes the files' order as it is (no sort).
    pub fn streams(self) -> bool {
        self != InputOrder::Sort
    }

    /// Whether a row out of order makes the shard run again with a sort (rather than fail).
    pub fn falls_back(self) -> bool {
        matches!(self, InputOrder::Footers | InputOrder::Detected)
    }

    /// The name `summary.json` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            InputOrder::Declared => "declared",
            InputOrder::Footers => "footers",
            InputOrder::Detected => "detected",
            InputOrder::Sort => "sorted",
        }
    }
}

/// What planning takes: the inputs checked, the query read, the model and tokenizer loaded
/// or loading.
struct Loaded {
    inputs: source::Inputs,
    hive: Option<source::hive::Hive>,
    targets_sql: String,
    model: ModelLoad,
}

/// Checks the inputs, loads the model and plans the job's SQL.
pub async fn prepare(cfg: &JobConfig) -> Result<Prepared> {
    // The output is read back through DataFusion (the evaluation): its path must be a URL too.
    crate::engine::tables::require_utf8(&cfg.output)?;
    text_flags(cfg)?;
    let files = source::expand_inputs(&cfg.inputs, true)?;
    source::expand::output_apart(
        "--output",
        "a run must not read its own output (a re-run would take the last one's segments and generations as input)",
        &cfg.inputs,
        &files,
        &cfg.output,
    )?;
    let inputs = source::check_inputs(&files, &cfg.columns, cfg.on_invalid == OnInvalid::Fail)?;
    let schemas: Vec<_> = inputs
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.schema.as_ref()))
        .collect();
    let hive = source::hive::detect(
        &cfg.inputs,
        &files,
        cfg.hive_partitioning,
        &cfg.partition_cols,
        &schemas,
    )?;
    if let Some(h) = &hive {
        tracing::info!(columns = ?h.cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), "hive-partitioned input folders: their key=value levels are columns");
    }
    let targets_sql = read_query(cfg)?;
    // Started once the inputs are checked: an input's error comes at once, without waiting
    // for a model that may take seconds to load.
    let model = ModelLoad::start(cfg);
    let order = if cfg.cluster.is_some() {
        // The executors sort each shard's rows after the shuffle by generation: the files'
        // order is not used, so their scans can be split over the executors.
        InputOrder::Sort
    } else if cfg.sorted {
        InputOrder::Declared
    } else if inputs.all_sorted() {
        tracing::info!("every input file declares sorting_columns (generation_id, segment_index): the window runs without a sort");
        InputOrder::Footers
    } else if inputs.may_be_sorted() {
        tracing::debug!(
            "no footer declares or disproves key order: streaming as if sorted, checked as rows come"
        );
        InputOrder::Detected
    } else {
        InputOrder::Sort
    };
    let loaded = Loaded {
        inputs,
        hive,
        targets_sql,
        model,
    };
    plan_job(cfg, loaded, order).await
}

/// Plans the job's SQL for `order` and builds the output plan, metadata and fingerprint.
async fn plan_job(cfg: &JobConfig, loaded: Loaded, order: InputOrder) -> Result<Prepared> {
    let Loaded {
        inputs,
        hive,
        targets_sql,
        model,
    } = loaded;
    let sorted = order.streams();
    let shards = cfg
        .shards
        .unwrap_or_else(|| crate::shard::auto_shards(inputs.total_rows()))
        .max(1);
    let ctx = session_context(cfg.threads, cfg.memory_limit, cfg.spill_dir.as_deref(), sorted)?;
    let (ctx, planned, model, first_plan) = match &cfg.cluster {
        #[cfg(feature = "cluster")]
        Some(url) => {
            let parts = model.wait(cfg).await?;
            let job = crate::model::shared::JobModel::new(
                &parts.model,
                &crate::pipeline::loading::model_options(cfg),
                parts.tokenizer.as_deref(),
            );
            let ctx =
                crate::cluster::client::client_context(url, ctx, job, &parts.model, parts.tokenizer.as_ref())
                    .await?;
            let query = JobQuery {
                sql: &targets_sql,
                pass: parts.pass,
            };
            let planned = plan_outputs(&ctx, cfg, &inputs, hive.as_ref(), sorted, shards, query).await;
            (ctx, planned, parts, None)
        }
        #[cfg(not(feature = "cluster"))]
        Some(_) => return Err(crate::cluster::not_built("--cluster")),
        None => {
            // The inputs registered (their key ranges cut) and the query planned while the
            // model may still be loading: its functions take it once it is ([`ModelLoad`]).
            crate::functions::register(&ctx, None, None);
            for f in model.functions(cfg) {
                ctx.register_udf(f);
            }
            let query = JobQuery {
                sql: &targets_sql,
                pass: None,
            };
            let planned = plan_outputs(&ctx, cfg, &inputs, hive.as_ref(), sorted, shards, query).await;
            // A one-shard job's physical plan too (some 5 ms: the optimizer's rules, the
            // scan's files and statistics), where the model loads beside it.
            let first_plan = match &planned {
                Ok(planned) if shards == 1 => Some(
                    segscore_plan::physical_plan(planned.df.clone())
                        .await
                        .map_err(Error::from_datafusion),
                ),
                _ => None,
            };
            // The model's error first, as when it loaded before the inputs were registered.
            let parts = model.wait(cfg).await?;
            (ctx, planned, parts, first_plan.transpose()?)
        }
    };
    let ModelParts {
        model,
        tokenizer,
        pass,
    } = model;
    let Planned {
        carried,
        df,
        mut plan,
        needed,
        eval,
    } = planned?;
    plan.model_output = model.output_name().to_string();
    let plan = Arc::new(plan);
    let text = cfg.text_input();
    let df_schema = df.schema().as_arrow().clone();
    let stage = if text || cfg.prediction == Prediction::Cumulative {
        let index = |name: &str| {
            df_schema.index_of(name).map_err(|_| {
                Error::Usage(format!(
                    "the job query must produce a column `{name}` for the generation stage"
                ))
            })
        };
        let cols = StageColumns {
            gid: plan.gid,
            base: index("base_score")?,
            text: if text {
                let prompt = cfg.columns.prompt.as_ref().map(|_| index("prompt")).transpose()?;
                Some((index("text")?, prompt))
            } else {
                None
            },
            // Text is scored here, or (on a cluster) by the executors, as token ids are.
            scored: if text && cfg.cluster.is_none() {
                None
            } else {
                Some((plan.pred, df_schema.index_of("input_problem").ok()))
            },
        };
        let text_input = tokenizer
            .as_ref()
            .map(|t| TextInput::new(Arc::clone(t), cfg.segment_separator.as_deref()))
            .transpose()?;
        Some(Arc::new(GenerationStage::new(
            Arc::clone(&model),
            text_input,
            pass.unwrap_or(Pass::Segment),
            cfg.prediction,
            cols,
            &df_schema,
        )))
    } else {
        None
    };
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
        (
            "segscore.score_output".to_string(),
            model.output_kind().describe(),
        ),
        (
            "segscore.prediction".to_string(),
            cfg.prediction.as_str().to_string(),
        ),
    ]);
    let mut metadata = metadata;
    if let Some(t) = &tokenizer {
        let m = Arc::make_mut(&mut metadata);
        m.push(("segscore.tokenizer_sha256".to_string(), t.sha256().to_string()));
        m.push((
            "segscore.segment_separator".to_string(),
            cfg.segment_separator.clone().unwrap_or_default(),
        ));
        m.push((
            "segscore.pass".to_string(),
            pass.unwrap_or(Pass::Segment).as_str().to_string(),
        ));
    }
    let fingerprint = JobFingerprint {
        segscore_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs: input_stamps(&inputs)?,
        model_sha256: model.sha256().to_string(),
        model_output: model.output_name().to_string(),
        provider: model.provider().as_str().to_string(),
        query_sha256: query_sha256.clone(),
        loss: cfg.loss.describe(),
        columns: cfg.columns.clone(),
        // The same columns however named (`--drop step` or `--drop text`) and in any order.
        keep: canonical_set(&cfg.columns, &cfg.keep),
        drop: canonical_set(&cfg.columns, &cfg.drop),
        on_invalid: cfg.on_invalid,
        max_invalid_fraction: cfg.max_invalid_fraction,
        shards,
        // As the inputs declare it, whichever way the plan took: the same job either way.
        sorted: cfg.sorted || inputs.all_sorted(),
        max_rows_per_file: cfg.max_rows_per_file,
        batch_size: cfg.batch_size,
        max_tokens_per_batch: cfg.max_tokens_per_batch,
        tokenizer_sha256: tokenizer.as_ref().map(|t| t.sha256().to_string()),
        segment_separator: cfg.segment_separator.clone(),
        pass: pass.map(|p| p.as_str().to_string()),
        prediction: cfg.prediction.as_str().to_string(),
        score_label: cfg.score_label,
        max_length: model.max_length(),
        partition_cols: hive
            .as_ref()
            .map(|h| h.cols.iter().map(|(n, t)| format!("{n}:{t}")).collect())
            .unwrap_or_default(),
    };
    Ok(Prepared {
        ctx,
        df,
        model,
        plan,
        inputs,
        order,
        query_sha256,
        metadata,
        targets_sql,
        carried,
        needed,
        shards,
        fingerprint,
        stage,
        tokenizer,
        pass,
        hive,
        eval,
        first_plan,
    })
}

/// What the job's plan is made of before its model is needed: the inputs' names carried on,
/// the query's frame with the columns the output needs, the output plan (its model output's
/// name set after) and the evaluation in the pass.
struct Planned {
    carried: Vec<String>,
    df: datafusion::dataframe::DataFrame,
    plan: OutputPlan,
    needed: Vec<String>,
    eval: Option<Arc<StreamEval>>,
}

/// The job's query: its SQL and, where a cluster's executors read the text, the pass.
#[derive(Clone, Copy)]
struct JobQuery<'a> {
    sql: &'a str,
    pass: Option<Pass>,
}

/// Registers the inputs, plans the job's query and its outputs: nothing here calls the model.
async fn plan_outputs(
    ctx: &SessionContext,
    cfg: &JobConfig,
    inputs: &source::Inputs,
    hive: Option<&source::hive::Hive>,
    sorted: bool,
    shards: usize,
    query: JobQuery<'_>,
) -> Result<Planned> {
    let carried = register_inputs(ctx, cfg, inputs, sorted, hive, shards).await?;
    let targets = plan_query(ctx, cfg, query).await?;
    // Only what the output needs travels on: DataFusion pushes this projection down through
    // the window, so the token lists are dropped as soon as the model has read them.
    let files_schema = segscore_plan::table(ctx, "input_files")
        .await?
        .schema()
        .as_arrow()
        .clone();
    let text = cfg.text_input();
    // The stage appends the reads of text it scores itself; a cluster's come in the query.
    let here = text && cfg.cluster.is_none();
    let staged = |schema: &datafusion::arrow::datatypes::Schema| GenerationStage::output_schema(schema, here);
    let whole = staged(targets.schema().as_arrow());
    let mut needed = OutputPlan::new(&whole, cfg, "", sorted, &files_schema, true)?.needed_columns(&whole);
    if text {
        // The stage reads the text, the prompt and the base score; it appends the reads of
        // text it scores itself.
        if here {
            needed.retain(|c| c != "predicted_score" && c != "input_problem");
        }
        let prompt = cfg.columns.prompt.is_some().then_some("prompt");
        for c in ["text", "base_score"].into_iter().chain(prompt) {
            if !needed.iter().any(|n| n == c) {
                needed.push(c.to_string());
            }
        }
    } else if cfg.prediction == Prediction::Cumulative && !needed.iter().any(|n| n == "base_score") {
        needed.push("base_score".to_string());
    }
    if targets.schema().as_arrow().index_of(EXECUTOR_COLUMN).is_ok()
        && !needed.iter().any(|c| c == EXECUTOR_COLUMN)
    {
        needed.push(EXECUTOR_COLUMN.to_string());
    }
    let df = output_frame(cfg, targets, &needed)?;
    let mut schema = staged(df.schema().as_arrow());
    if text && !here {
        // The rows went through lists (`scored_generations`): nullable as the view has them.
        let view = segscore_plan::table(ctx, "generations").await?;
        schema = crate::engine::query::nullable_as(&schema, view.schema().as_arrow());
    }
    // (The frame has no dropped column: `--drop` was checked against the query's whole output.)
    let plan = OutputPlan::new(&schema, cfg, "", sorted, &files_schema, false)?;
    let eval = Some(Arc::new(StreamEval::new(
        &plan.schema,
        crate::evaluate::stream::generations_schema(&plan.schema).await?,
        inputs.total_rows(),
    )?));
    Ok(Planned {
        carried,
        df,
        plan,
        needed,
        eval,
    })
}

/// Registers the inputs (`input_files`, cut into key ranges where sorted, and the
/// `generations` view) with the job's session.
async fn register_inputs(
    ctx: &SessionContext,
    cfg: &JobConfig,
    inputs: &source::Inputs,
    sorted: bool,
    hive: Option<&source::hive::Hive>,
    shards: usize,
) -> Result<Vec<String>> {
    if shards > 1 {
        // Each shard's pass decodes the other columns only for its own rows.
        crate::engine::query::query(ctx, "SET datafusion.execution.parquet.pushdown_filters = true").await?;
    }
    source::register(ctx, inputs, &cfg.columns, sorted, hive).await
}

async fn plan_query(
    ctx: &SessionContext,
    cfg: &JobConfig,
    query: JobQuery<'_>,
) -> Result<datafusion::dataframe::DataFrame> {
    let Some(pass) = query.pass.filter(|_| cfg.text_input() && cfg.cluster.is_some()) else {
        return plan_sql(ctx, cfg, query.sql).await;
    };
    // On a cluster the query reads `generations` with the model's reads beside each row.
    let separator = cfg.segment_separator.as_deref().unwrap_or("");
    let view = crate::pipeline::score::scored_view(ctx, separator, pass).await?;
    let planned = plan_sql(ctx, cfg, query.sql).await;
    ctx.deregister_table("generations")?;
    ctx.register_table("generations", view)?;
    planned
}

async fn plan_sql(
    ctx: &SessionContext,
    cfg: &JobConfig,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    // A query that writes (COPY, INSERT) is refused: the job writes its own outputs; so is
    // one that DataFusion runs as it plans it (CREATE TABLE ... AS would score every row then,
    // before the model's functions are bound). Its schema is taken from the analyzed plan: the
    // outputs are built to it.
    let planned = segscore_plan::query_only(ctx, sql)
        .await
        .and_then(segscore_plan::analyzed);
    planned.map_err(|e| {
        let hint = match e.to_string().contains(" not supported: ") {
            true => " (a --query-file must be one SELECT over `generations`)",
            false => "",
        };
        Error::Usage(format!(
            "job query{}: {e}{hint}",
            cfg.query_file
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default()
        ))
    })
}

impl Prepared {
    /// The same job planned with a sort: for the shards left once rows came out of order.
    pub(crate) async fn with_sort(&self, cfg: &JobConfig) -> Result<Prepared> {
        let loaded = Loaded {
            inputs: self.inputs.clone(),
            hive: self.hive.clone(),
            targets_sql: self.targets_sql.clone(),
            model: ModelLoad::Loaded(ModelParts {
                model: Arc::clone(&self.model),
                tokenizer: self.tokenizer.clone(),
                pass: self.pass,
            }),
        };
        plan_job(cfg, loaded, InputOrder::Sort).await
    }

    /// The physical plan, indented, as DataFusion's EXPLAIN shows it (of the first shard,
    /// when there are several; a one-shard job's, made while its model loaded, as it is).
    pub async fn physical_plan(&self, cfg: &JobConfig) -> Result<String> {
        let plan = match &self.first_plan {
            Some(plan) => Arc::clone(plan),
            None => segscore_plan::physical_plan(self.shard_frame(cfg, 0).await?).await?,
        };
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
        let query = JobQuery {
            sql: &self.targets_sql,
            pass: self.pass,
        };
        let df = plan_query(&self.ctx, cfg, query).await?;
        output_frame(cfg, df, &self.needed)
    }
}

/// The job query's rows with the `needed` columns; on a cluster, merged into key order on
/// the executors, since the client reads one stream.
fn output_frame(
    cfg: &JobConfig,
    df: datafusion::dataframe::DataFrame,
    needed: &[String],
) -> Result<datafusion::dataframe::DataFrame> {
    let df = df.select_columns(&needed.iter().map(String::as_str).collect::<Vec<_>>())?;
    if cfg.cluster.is_none() {
        return Ok(df);
    }
    let key = |c: &str| datafusion::prelude::col(c).sort(true, false);
    Ok(df.sort(vec![key("generation_id"), key("segment_index")])?)
}

/// Column names by their canonical names ([`crate::contract::ColumnNames::canonical`]), sorted,
/// once each.
fn canonical_set(columns: &crate::contract::ColumnNames, names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| columns.canonical(n)).collect();
    v.sort();
    v.dedup();
    v
}
