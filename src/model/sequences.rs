//! A generation's token sequence and the model's reads of it, the same for the local
//! generation stage (`pipeline/score.rs`) and a cluster's executors ([`super::text_udf`]): each
//! generation tokenized (prompt, then each segment's text and the separator) or found
//! unscorable, and scored in one pass or per prefix.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use crate::contract::{problem_text, Reason};
use crate::error::Result;
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

/// Text input: the tokenizer and the separator's ids.
#[derive(Debug)]
pub struct TextInput {
    /// The tokenizer.
    pub tokenizer: Arc<TextTokenizer>,
    /// `--segment-separator`'s ids (no special tokens).
    pub separator_ids: Vec<i64>,
}

impl TextInput {
    /// `tokenizer` with the ids of `separator` (no special tokens; none without one).
    pub fn new(tokenizer: Arc<TextTokenizer>, separator: Option<&str>) -> Result<Self> {
        let separator_ids = match separator {
            Some(sep) => tokenizer.ids(sep, false)?,
            None => Vec::new(),
        };
        Ok(TextInput {
            tokenizer,
            separator_ids,
        })
    }
}

/// One generation of a batch, tokenized.
#[derive(Debug)]
pub(crate) struct Tokens {
    /// Its rows.
    pub(crate) rows: Range<usize>,
    /// The whole sequence; empty when the generation is not scored.
    pub(crate) ids: Vec<i64>,
    /// Each segment's sequence length (its prefix ends there).
    pub(crate) ends: Vec<usize>,
}

impl Tokens {
    /// Whether the generation is scored (no row of it has a problem).
    pub(crate) fn scored(&self) -> bool {
        !self.ids.is_empty()
    }
}

/// A batch's texts and prompts as strings (without a prompt column, every prompt is empty).
pub(crate) fn texts_and_prompts(
    batch: &RecordBatch,
    text_col: usize,
    prompt_col: Option<usize>,
) -> Result<(ArrayRef, ArrayRef)> {
    let texts = cast(batch.column(text_col), &DataType::Utf8)?;
    let prompts = match prompt_col {
        Some(p) => cast(batch.column(p), &DataType::Utf8)?,
        None => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "",
            batch.num_rows(),
        ))) as ArrayRef,
    };
    Ok((texts, prompts))
}

/// Tokenizes the generations `runs` (rows of `texts` and `prompts`, each in segment order; the
/// prompt read at a generation's first row), generations in parallel (or in sequence, as the
/// model's batches run: [`RewardModel::runs_on_caller`]), adding the time taken to `nanos`:
/// each generation's tokens, and each row's problem.
pub(crate) fn tokenize_runs(
    model: &RewardModel,
    text: &TextInput,
    texts: &StringArray,
    prompts: &StringArray,
    runs: &[Range<usize>],
    nanos: &AtomicU64,
) -> Result<(Vec<Tokens>, Vec<Option<String>>)> {
    let max_length = model.max_length();
    let done: Vec<(Tokens, Vec<Option<String>>)> = model.map_batches(runs, |rows| {
        let started = std::time::Instant::now();
        let done = tokenize_generation(text, texts, prompts, rows.clone(), max_length);
        nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        done
    })?;
    let mut problems = vec![None; texts.len()];
    let mut generations = Vec::with_capacity(done.len());
    for (g, p) in done {
        for (i, problem) in g.rows.clone().zip(p) {
            problems[i] = problem;
        }
        generations.push(g);
    }
    Ok((generations, problems))
}

/// Each of `rows` rows' read: `values[g]` at the rows of `scored[g]`, none elsewhere.
pub(crate) fn reads_by_row(scored: &[&Tokens], values: &[Vec<f64>], rows: usize) -> Vec<Option<f64>> {
    let mut reads = vec![None; rows];
    for (g, v) in scored.iter().zip(values) {
        for (i, x) in g.rows.clone().zip(v) {
            reads[i] = Some(*x);
        }
    }
    reads
}

/// The model's reads for each generation's segments, in one pass or per prefix.
pub(crate) fn run_pass(model: &RewardModel, generations: &[&Tokens], pass: Pass) -> Result<Vec<Vec<f64>>> {
    match pass {
        Pass::Generation => {
            let seqs: Vec<&[i64]> = generations.iter().map(|g| g.ids.as_slice()).collect();
            let at: Vec<Vec<usize>> = generations
                .iter()
                .map(|g| g.ends.iter().map(|e| e - 1).collect())
                .collect();
            model.score_sequences(&seqs, &at)
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
            let flat = model.score_sequences(&seqs, &at)?;
            let mut flat = flat.into_iter().map(|v| v[0]);
            Ok(generations
                .iter()
                .map(|g| flat.by_ref().take(g.ends.len()).collect())
                .collect())
        }
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
