//! The generation stage: work on whole generations, between the window and the row checks.
//!
//! With text input (`--text-col`), each generation's segments are tokenized (in parallel, on
//! rayon) into the token sequence of [`crate::model::text`], and the model scores them:
//!
//! - `--pass generation`: one call per generation on its whole sequence, each segment's score
//!   read at its last token (a causal per-token model gives exactly its prefix's score there);
//! - `--pass segment`: one call per segment on its prefix.
//!
//! Generations are batched longest first under `--batch-size` and `--max-tokens-per-batch`.
//! The first generations a partition sees (two with at least two segments) are also scored
//! per prefix: if one pass disagrees beyond float32 rounding, the model is not causal and the
//! run stops, saying to use `--pass segment`.
//!
//! With `--prediction cumulative`, the model's reads are cumulative scores v_k and a segment's
//! prediction is v_k - v_{k-1}, v_0 being the generation's base score.
//!
//! On a cluster, text is scored on the executors ([`scored_generations`]): the stage takes the
//! reads as it takes a token-id model's, and makes the one-pass check with its own copy of the
//! model.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, partition};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::execution::FunctionRegistry;
use datafusion::functions_aggregate::expr_fn::{array_agg, first_value};
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::{col, lit, Expr};
use serde::{Deserialize, Serialize};

use crate::contract::{problem_text, Reason};
use crate::error::{Error, Result};
use crate::evaluate::summary::OnePassCheck;
use crate::model::sequences::{reads_by_row, run_pass, texts_and_prompts, tokenize_runs, Tokens};
pub use crate::model::sequences::{Pass, TextInput};
use crate::model::text_udf::TEXT_UDF_NAME;
use crate::model::RewardModel;

/// What the model's score means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prediction {
    /// The segment's own score.
    #[default]
    Segment,
    /// The cumulative score after the segment: the prediction is the change.
    Cumulative,
}

impl std::str::FromStr for Prediction {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "segment" => Ok(Prediction::Segment),
            "cumulative" => Ok(Prediction::Cumulative),
            o => Err(format!(
                "unknown --prediction `{o}` (expected segment or cumulative)"
            )),
        }
    }
}

impl Prediction {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Prediction::Segment => "segment",
            Prediction::Cumulative => "cumulative",
        }
    }
}

/// Where the stage finds its columns in a batch.
#[derive(Debug, Clone)]
pub struct StageColumns {
    /// generation_id.
    pub gid: usize,
    /// base_score.
    pub base: usize,
    /// text, and prompt when given (text input).
    pub text: Option<(usize, Option<usize>)>,
    /// predicted_score and input_problem, when the query gives them (token-id input).
    pub scored: Option<(usize, Option<usize>)>,
}

/// Generations a partition checks for causality before trusting one pass.
const CAUSAL_CHECKS_PER_PARTITION: usize = 2;
/// The check's tolerance: float32 rounding of different shapes, absolute and relative.
pub const CAUSAL_TOLERANCE: f64 = 1e-4;

/// The stage, set up once per job.
#[derive(Debug)]
pub struct GenerationStage {
    model: Arc<RewardModel>,
    text: Option<TextInput>,
    pass: Pass,
    prediction: Prediction,
    cols: StageColumns,
    schema: SchemaRef,
    check: Mutex<OnePassCheck>,
    /// Nanoseconds spent tokenizing, summed over threads.
    tokenize_nanos: AtomicU64,
}

/// A batch of whole generations, tokenized and waiting for the model.
#[derive(Debug)]
pub struct Tokenized {
    batch: RecordBatch,
    generations: Vec<Tokens>,
    problems: Vec<Option<String>>,
}

/// A partition's own state: how many causality checks it still makes.
#[derive(Debug)]
pub struct PartitionState {
    checks_left: usize,
}

impl Default for PartitionState {
    fn default() -> Self {
        PartitionState {
            checks_left: CAUSAL_CHECKS_PER_PARTITION,
        }
    }
}

impl GenerationStage {
    /// A stage over batches of `input` schema: text input appends `predicted_score` and
    /// `input_problem`, token-id input keeps the schema.
    pub fn new(
        model: Arc<RewardModel>,
        text: Option<TextInput>,
        pass: Pass,
        prediction: Prediction,
        cols: StageColumns,
        input: &Schema,
    ) -> Self {
        let schema = Arc::new(Self::output_schema(
            input,
            text.is_some() && cols.scored.is_none(),
        ));
        GenerationStage {
            model,
            text,
            pass,
            prediction,
            cols,
            schema,
            check: Mutex::new(OnePassCheck::default()),
            tokenize_nanos: AtomicU64::new(0),
        }
    }

    /// The schema the stage gives batches of `input` schema: with `text` (text the stage
    /// scores itself), `predicted_score` and `input_problem` appended.
    pub fn output_schema(input: &Schema, text: bool) -> Schema {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        if text {
            fields.push(Field::new("predicted_score", DataType::Float64, true));
            fields.push(Field::new("input_problem", DataType::Utf8, true));
        }
        Schema::new(fields)
    }

    /// The model the stage scores with.
    pub fn model(&self) -> &Arc<RewardModel> {
        &self.model
    }

    /// Seconds spent tokenizing, summed over threads.
    pub fn tokenize_seconds(&self) -> f64 {
        self.tokenize_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// What the one-pass check found so far.
    pub fn one_pass_check(&self) -> OnePassCheck {
        self.check.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tokenizes a batch of whole generations (rows in key order), generations in parallel
    /// (or in sequence, as the model's batches run: [`RewardModel::runs_on_caller`]).
    pub fn tokenize(&self, batch: RecordBatch) -> Result<Tokenized> {
        let n = batch.num_rows();
        let runs = partition(&[Arc::clone(batch.column(self.cols.gid))])?.ranges();
        let (Some(text), Some((text_col, prompt_col))) = (&self.text, self.cols.text) else {
            return Ok(Tokenized {
                batch,
                generations: Vec::new(),
                problems: vec![None; n],
            });
        };
        if self.cols.scored.is_some() {
            // Scored on a cluster's executors: the generations the one-pass check takes are
            // tokenized when it takes them ([`GenerationStage::score`]).
            return Ok(Tokenized {
                batch,
                generations: Vec::new(),
                problems: vec![None; n],
            });
        }
        let (generations, problems) = self.tokenize_runs(text, &batch, (text_col, prompt_col), &runs)?;
        Ok(Tokenized {
            batch,
            generations,
            problems,
        })
    }

    /// [`tokenize_runs`] over the generations `runs` of `batch`, its texts and prompts in
    /// `cols`.
    fn tokenize_runs(
        &self,
        text: &TextInput,
        batch: &RecordBatch,
        (text_col, prompt_col): (usize, Option<usize>),
        runs: &[Range<usize>],
    ) -> Result<(Vec<Tokens>, Vec<Option<String>>)> {
        let (texts, prompts) = texts_and_prompts(batch, text_col, prompt_col)?;
        tokenize_runs(
            &self.model,
            text,
            texts.as_string::<i32>(),
            prompts.as_string::<i32>(),
            runs,
            &self.tokenize_nanos,
        )
    }

    /// Scores a tokenized batch and returns it with `predicted_score` (and `input_problem`).
    pub fn score(&self, t: Tokenized, state: &mut PartitionState) -> Result<RecordBatch> {
        let Tokenized {
            batch,
            generations,
            mut problems,
        } = t;
        let n = batch.num_rows();
        let mut reads: Vec<Option<f64>> = vec![None; n];
        if let Some((pred, _)) = self.cols.scored {
            let p = cast(batch.column(pred), &DataType::Float64)?;
            let p = p.as_primitive::<Float64Type>();
            for (i, r) in reads.iter_mut().enumerate() {
                *r = p.is_valid(i).then(|| p.value(i));
            }
            if self.text.is_some() && self.pass == Pass::Generation && state.checks_left > 0 {
                self.check_scored(&batch, &reads, state)?;
            }
        } else if self.text.is_some() {
            let scored: Vec<&Tokens> = generations.iter().filter(|g| g.scored()).collect();
            let values = run_pass(&self.model, &scored, self.pass)?;
            reads = reads_by_row(&scored, &values, n);
            if self.pass == Pass::Generation && state.checks_left > 0 {
                let to_check: Vec<&Tokens> = scored
                    .iter()
                    .zip(&values)
                    .filter(|(g, _)| g.ends.len() >= 2)
                    .take(state.checks_left)
                    .map(|(g, _)| *g)
                    .collect();
                if !to_check.is_empty() {
                    state.checks_left -= to_check.len();
                    let one_pass: Vec<&Vec<f64>> = scored
                        .iter()
                        .zip(&values)
                        .filter(|(g, _)| to_check.iter().any(|c| std::ptr::eq(*c, **g)))
                        .map(|(_, v)| v)
                        .collect();
                    let per_prefix = run_pass(&self.model, &to_check, Pass::Segment)?;
                    self.compare(&batch, &to_check, &one_pass, &per_prefix)?;
                }
            }
        }
        let predicted = match self.prediction {
            Prediction::Segment => reads,
            Prediction::Cumulative => self.differences(&batch, &reads, &mut problems)?,
        };
        self.assemble(batch, predicted, problems)
    }

    /// The one-pass check of a batch the executors of a cluster scored: the first generations
    /// the partition sees with two or more segments, all scored, are tokenized here and scored
    /// both ways with this process's copy of the model (whether a model is causal does not
    /// depend on where it runs).
    fn check_scored(
        &self,
        batch: &RecordBatch,
        reads: &[Option<f64>],
        state: &mut PartitionState,
    ) -> Result<()> {
        let (Some(text), Some((text_col, prompt_col)), Some((_, problem_col))) =
            (&self.text, self.cols.text, self.cols.scored)
        else {
            return Ok(());
        };
        let problems = problem_col.map(|p| batch.column(p));
        let runs: Vec<Range<usize>> = partition(&[Arc::clone(batch.column(self.cols.gid))])?
            .ranges()
            .into_iter()
            .filter(|rows| {
                rows.len() >= 2
                    && rows
                        .clone()
                        .all(|i| reads[i].is_some() && problems.is_none_or(|p| p.is_null(i)))
            })
            .take(state.checks_left)
            .collect();
        if runs.is_empty() {
            return Ok(());
        }
        let (generations, _) = self.tokenize_runs(text, batch, (text_col, prompt_col), &runs)?;
        let to_check: Vec<&Tokens> = generations.iter().filter(|g| g.scored()).collect();
        if to_check.is_empty() {
            return Ok(());
        }
        state.checks_left -= to_check.len();
        let one_pass = run_pass(&self.model, &to_check, Pass::Generation)?;
        let per_prefix = run_pass(&self.model, &to_check, Pass::Segment)?;
        self.compare(
            batch,
            &to_check,
            &one_pass.iter().collect::<Vec<_>>(),
            &per_prefix,
        )
    }

    /// Compares one pass with per-prefix calls; records the check, fails if they differ.
    fn compare(
        &self,
        batch: &RecordBatch,
        gens: &[&Tokens],
        one: &[&Vec<f64>],
        prefix: &[Vec<f64>],
    ) -> Result<()> {
        let mut check = self.check.lock().unwrap_or_else(|e| e.into_inner());
        for ((g, a), b) in gens.iter().zip(one).zip(prefix) {
            check.generations += 1;
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                check.segments += 1;
                let d = (x - y).abs();
                if d.is_finite() {
                    check.max_abs_difference = check.max_abs_difference.max(d);
                }
                let within = d <= CAUSAL_TOLERANCE * (1.0 + y.abs());
                if !within {
                    let row = g.rows.start + k;
                    let gid = crate::engine::keys::cell(batch.column(self.cols.gid), row);
                    return Err(Error::NotCausal {
                        model: self.model.path().display().to_string(),
                        detail: format!(
                            "generation_id={gid}, segment {} of {}: {x} in one pass, {y} on the prefix alone",
                            k + 1,
                            a.len()
                        ),
                    });
                }
            }
        }
        check.tolerance = CAUSAL_TOLERANCE;
        Ok(())
    }

    /// v_k - v_{k-1} within each generation, v_0 its base score; rows next to an unscored one
    /// have no prediction (their generation is rejected for that row).
    fn differences(
        &self,
        batch: &RecordBatch,
        reads: &[Option<f64>],
        problems: &mut [Option<String>],
    ) -> Result<Vec<Option<f64>>> {
        let base = cast(batch.column(self.cols.base), &DataType::Float64)?;
        let base = base.as_primitive::<Float64Type>();
        let given_problems = self
            .cols
            .scored
            .and_then(|(_, p)| p)
            .map(|p| cast(batch.column(p), &DataType::Utf8))
            .transpose()?;
        let mut out = vec![None; reads.len()];
        for rows in partition(&[Arc::clone(batch.column(self.cols.gid))])?.ranges() {
            let mut previous = base.is_valid(rows.start).then(|| base.value(rows.start));
            for i in rows {
                out[i] = match (reads[i], previous) {
                    (Some(v), Some(p)) => Some(v - p),
                    _ => None,
                };
                let own_problem =
                    problems[i].is_some() || given_problems.as_ref().is_some_and(|p| p.is_valid(i));
                if out[i].is_none() && reads[i].is_some() && !own_problem {
                    problems[i] = Some(problem_text(
                        Reason::InvalidSegmentInGeneration,
                        "the segment before it has no score, so its change cannot be taken",
                    ));
                }
                previous = reads[i];
            }
        }
        Ok(out)
    }

    /// The batch with its predictions (and problems) in place.
    fn assemble(
        &self,
        batch: RecordBatch,
        predicted: Vec<Option<f64>>,
        problems: Vec<Option<String>>,
    ) -> Result<RecordBatch> {
        let predicted: ArrayRef = Arc::new(Float64Array::from(predicted));
        let mut columns = batch.columns().to_vec();
        if let Some((pred, problem)) = self.cols.scored {
            columns[pred] = predicted;
            if let Some(p) = problem {
                let given = cast(&columns[p], &DataType::Utf8)?;
                let given = given.as_string::<i32>();
                let merged: StringArray = (0..batch.num_rows())
                    .map(|i| {
                        if given.is_valid(i) {
                            Some(given.value(i).to_string())
                        } else {
                            problems[i].clone()
                        }
                    })
                    .collect();
                columns[p] = Arc::new(merged);
            }
        } else if self.text.is_some() {
            columns.push(predicted);
            columns.push(Arc::new(StringArray::from(problems)));
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The name of the model's reads in [`scored_generations`] until they are taken apart.
const READS: &str = "__segscore_reads";

/// `generations` (the job's view of its rows) with each row's read (`predicted_score`) and
/// problem (`input_problem`) from [`crate::model::text_udf`], for a cluster's executors: the
/// view's rows are grouped by generation, each column aggregated in segment order, the model
/// reads each generation's texts, and the lists are unnested back into the rows they came
/// from, the reads beside them. No join: each row keeps its own values, a null key's or a
/// repeated index's too.
pub async fn scored_generations(generations: DataFrame, separator: &str, pass: Pass) -> Result<DataFrame> {
    let function = generations.task_ctx().udf(TEXT_UDF_NAME)?;
    let in_order = || vec![col("segment_index").sort(true, false)];
    let names: Vec<String> = generations
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "generation_id")
        .collect();
    let lists = names
        .iter()
        .map(|n| {
            Ok(array_agg(col(n.as_str()))
                .order_by(in_order())
                .build()?
                .alias(n.as_str()))
        })
        .chain([Ok(first_value(col("prompt"), in_order()).alias(READS))])
        .collect::<Result<Vec<Expr>>>()?;
    let grouped = generations.aggregate(vec![col("generation_id")], lists)?;
    let reads = function
        .call(vec![
            col("segment_index"),
            col("text"),
            col(READS),
            lit(separator),
            lit(pass.as_str()),
        ])
        .alias(READS);
    let mut selected = vec![col("generation_id")];
    selected.extend(names.iter().map(|n| col(n.as_str())));
    selected.push(reads);
    let mut unnested: Vec<&str> = names.iter().map(String::as_str).collect();
    unnested.push(READS);
    let field = |name: &str| datafusion::functions::core::expr_fn::get_field(col(READS), name);
    let mut rows = vec![col("generation_id")];
    rows.extend(names.iter().map(|n| col(n.as_str())));
    rows.push(field("read").alias("predicted_score"));
    rows.push(field("problem").alias("input_problem"));
    Ok(grouped
        .select(selected)?
        .unnest_columns(&unnested)?
        .select(rows)?)
}

/// Registers [`scored_generations`] over `ctx`'s `generations` view in its place; returns the
/// view it replaced, to be registered back.
pub async fn scored_view(
    ctx: &datafusion::prelude::SessionContext,
    separator: &str,
    pass: Pass,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let view = ctx.table_provider("generations").await?;
    let scored = scored_generations(ctx.table("generations").await?, separator, pass).await?;
    ctx.deregister_table("generations")?;
    ctx.register_table("generations", scored.into_view())?;
    Ok(view)
}
