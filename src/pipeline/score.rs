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

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, partition};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::contract::{problem_text, Reason};
use crate::error::{Error, Result};
use crate::evaluate::summary::OnePassCheck;
use crate::model::{RewardModel, TextTokenizer};

/// How the model is called on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// One call per generation, each segment read at its last token.
    Generation,
    /// One call per segment, on its prefix.
    Segment,
}

impl std::str::FromStr for Pass {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "generation" => Ok(Pass::Generation),
            "segment" => Ok(Pass::Segment),
            o => Err(format!("unknown --pass `{o}` (expected generation or segment)")),
        }
    }
}

impl Pass {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Pass::Generation => "generation",
            Pass::Segment => "segment",
        }
    }
}

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

/// Text input: the tokenizer and the separator's ids.
#[derive(Debug)]
pub struct TextInput {
    /// The tokenizer.
    pub tokenizer: Arc<TextTokenizer>,
    /// `--segment-separator`'s ids (no special tokens).
    pub separator_ids: Vec<i64>,
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

/// One generation of a batch, tokenized.
#[derive(Debug)]
struct Tokens {
    rows: Range<usize>,
    /// The whole sequence; empty when the generation is not scored.
    ids: Vec<i64>,
    /// Each segment's sequence length (its prefix ends there).
    ends: Vec<usize>,
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
        let schema = Arc::new(Self::output_schema(input, text.is_some()));
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

    /// The schema the stage gives batches of `input` schema.
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
        let texts = cast(batch.column(text_col), &DataType::Utf8)?;
        let prompts = match prompt_col {
            Some(p) => cast(batch.column(p), &DataType::Utf8)?,
            // No prompt column: every prompt is the empty string.
            None => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("", n))) as ArrayRef,
        };
        let (texts, prompts) = (texts.as_string::<i32>(), prompts.as_string::<i32>());
        let max_length = self.model.max_length();
        let done: Vec<(Tokens, Vec<Option<String>>)> = self.model.map_batches(&runs, |rows| {
            let started = std::time::Instant::now();
            let done = tokenize_generation(text, texts, prompts, rows.clone(), max_length);
            self.tokenize_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            done
        })?;
        let mut problems = vec![None; n];
        let mut generations = Vec::with_capacity(done.len());
        for (g, p) in done {
            for (i, problem) in g.rows.clone().zip(p) {
                problems[i] = problem;
            }
            generations.push(g);
        }
        Ok(Tokenized {
            batch,
            generations,
            problems,
        })
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
        if self.text.is_some() {
            let scored: Vec<&Tokens> = generations.iter().filter(|g| !g.ids.is_empty()).collect();
            let values = self.run(&scored, self.pass)?;
            for (g, v) in scored.iter().zip(&values) {
                for (i, x) in g.rows.clone().zip(v) {
                    reads[i] = Some(*x);
                }
            }
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
                    let per_prefix = self.run(&to_check, Pass::Segment)?;
                    self.compare(&batch, &to_check, &one_pass, &per_prefix)?;
                }
            }
        } else if let Some((pred, _)) = self.cols.scored {
            let p = cast(batch.column(pred), &DataType::Float64)?;
            let p = p.as_primitive::<Float64Type>();
            for (i, r) in reads.iter_mut().enumerate() {
                *r = p.is_valid(i).then(|| p.value(i));
            }
        }
        let predicted = match self.prediction {
            Prediction::Segment => reads,
            Prediction::Cumulative => self.differences(&batch, &reads, &mut problems)?,
        };
        self.assemble(batch, predicted, problems)
    }

    /// The model's reads for each generation's segments, in one pass or per prefix.
    fn run(&self, generations: &[&Tokens], pass: Pass) -> Result<Vec<Vec<f64>>> {
        match pass {
            Pass::Generation => {
                let seqs: Vec<&[i64]> = generations.iter().map(|g| g.ids.as_slice()).collect();
                let at: Vec<Vec<usize>> = generations
                    .iter()
                    .map(|g| g.ends.iter().map(|e| e - 1).collect())
                    .collect();
                self.model.score_sequences(&seqs, &at)
            }
            Pass::Segment => {
                let mut seqs: Vec<&[i64]> = Vec::new();
                let mut at = Vec::new();
                for g in generations {
                    for &e in &g.ends {
                        seqs.push(&g.ids[..e]);
                        at.push(vec![e - 1]);
                    }
                }
                let flat = self.model.score_sequences(&seqs, &at)?;
                let mut flat = flat.into_iter().map(|v| v[0]);
                Ok(generations
                    .iter()
                    .map(|g| flat.by_ref().take(g.ends.len()).collect())
                    .collect())
            }
        }
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
        if self.text.is_some() {
            columns.push(predicted);
            columns.push(Arc::new(StringArray::from(problems)));
        } else if let Some((pred, problem)) = self.cols.scored {
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
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// Tokenizes one generation (`rows` of the batch, in segment order) into its sequence, or
/// finds why it cannot be scored: a problem for each bad row, and for the others of the
/// generation `invalid_segment_in_generation`.
fn tokenize_generation(
    text: &TextInput,
    texts: &StringArray,
    prompts: &StringArray,
    rows: Range<usize>,
    max_length: Option<usize>,
) -> Result<(Tokens, Vec<Option<String>>)> {
    let mut problems: Vec<Option<String>> = vec![None; rows.len()];
    let first = rows.start;
    let mut ids = if prompts.is_null(first) {
        problems[0] = Some(problem_text(
            Reason::NullPrompt,
            "the generation's prompt is null",
        ));
        Vec::new()
    } else {
        text.tokenizer.ids(prompts.value(first), true)?
    };
    let mut ends = Vec::with_capacity(rows.len());
    for (k, i) in rows.clone().enumerate() {
        if texts.is_null(i) {
            problems[k].get_or_insert_with(|| problem_text(Reason::NullText, "the segment's text is null"));
            ends.push(ids.len());
            continue;
        }
        let t = texts.value(i);
        let before = ids.len();
        if !t.is_empty() {
            ids.extend(text.tokenizer.ids(t, false)?);
        }
        if t.is_empty() || ids.len() == before {
            let detail = if t.is_empty() {
                "the segment's text is empty"
            } else {
                "the segment's text gives no tokens"
            };
            problems[k].get_or_insert_with(|| problem_text(Reason::EmptyText, detail));
        }
        ids.extend_from_slice(&text.separator_ids);
        ends.push(ids.len());
        if let Some(max) = max_length.filter(|&m| ids.len() > m) {
            problems[k].get_or_insert_with(|| {
                problem_text(
                    Reason::TooLong,
                    crate::model::tokens::too_long_detail(ids.len(), max),
                )
            });
        }
    }
    if problems.iter().any(Option::is_some) {
        for p in problems.iter_mut().filter(|p| p.is_none()) {
            *p = Some(problem_text(
                Reason::InvalidSegmentInGeneration,
                "another segment of the generation cannot be scored",
            ));
        }
        ids.clear();
    }
    Ok((Tokens { rows, ids, ends }, problems))
}
