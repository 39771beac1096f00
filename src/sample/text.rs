//! The text demo's data: generations of a prompt and 4 to 12 steps of words (some of them
//! accented, CJK or emoji, so the tokenizer sees real Unicode), and their cumulative scores.
//!
//! The token sequence of step k is the prompt's ids, then every step's ids and the separator's
//! ([`crate::model::text`]). The cumulative score after step k follows the rule the bundled
//! per-token model approximates (`models/build_models.py`): with v(t) the demo token value,
//!
//! ```text
//! c_k = 0.8 * tanh(1.5 * mean of v(t) over the sequence of step k) + N(0, 0.02)
//! ```
//!
//! so `--prediction cumulative` reads the model's value at each step's last token as c_k.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::model::TextTokenizer;
use crate::sample::{normal, token_value, write_parquet};

/// The bundled per-token model (`models/prm_causal.onnx`), embedded in the binary.
pub const PRM_MODEL: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/prm_causal.onnx"));
/// The bundled GPT-2 tokenizer (`models/gpt2-tokenizer.json`), embedded in the binary.
pub const GPT2_TOKENIZER: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt2-tokenizer.json"));
/// The text demo's segment separator.
pub const SEPARATOR: &str = "\n";

const WORDS: [&str; 48] = [
    "the",
    "a",
    "number",
    "sum",
    "of",
    "two",
    "three",
    "seven",
    "is",
    "then",
    "we",
    "add",
    "subtract",
    "multiply",
    "divide",
    "by",
    "so",
    "result",
    "equals",
    "check",
    "answer",
    "step",
    "next",
    "first",
    "value",
    "total",
    "half",
    "twice",
    "remaining",
    "apples",
    "café",
    "naïve",
    "Zürich",
    "東京",
    "数学",
    "🙂",
    "résumé",
    "über",
    "problem",
    "because",
    "therefore",
    "x",
    "y",
    "42",
    "3.5",
    "–",
    "each",
    "more",
];

fn sentence(rng: &mut SmallRng, words: std::ops::RangeInclusive<usize>, end: char) -> String {
    let n = rng.random_range(words);
    let mut s: Vec<&str> = (0..n).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
    let first = s[0].to_string();
    let mut cap = first.chars();
    let capitalised: String = cap
        .next()
        .map(|c| c.to_uppercase().chain(cap).collect())
        .unwrap_or_default();
    s[0] = &capitalised;
    format!("{}{end}", s.join(" "))
}

/// One text row.
#[derive(Debug, Clone)]
struct TextRow {
    generation_id: String,
    segment_index: i32,
    cumulative_score: f64,
    prompt: String,
    step: String,
}

fn generation(
    rng: &mut SmallRng,
    tokenizer: &TextTokenizer,
    n: u64,
    max_segments: u64,
) -> Result<Vec<TextRow>> {
    let generation_id = format!("gen-{n:07}");
    let prompt = format!("Question {n}: {}", sentence(rng, 5..=12, '?'));
    let separator = tokenizer.ids(SEPARATOR, false)?;
    let mut ids = tokenizer.ids(&prompt, true)?;
    let segments = rng.random_range(4..=12u64).min(max_segments.max(1));
    let mut rows = Vec::with_capacity(segments as usize);
    for k in 0..segments {
        let step = sentence(rng, 3..=24, '.');
        ids.extend(tokenizer.ids(&step, false)?);
        ids.extend_from_slice(&separator);
        let mean = ids.iter().map(|&t| token_value(t)).sum::<f64>() / ids.len() as f64;
        rows.push(TextRow {
            generation_id: generation_id.clone(),
            segment_index: k as i32,
            cumulative_score: 0.8 * (1.5 * mean).tanh() + 0.02 * normal(rng),
            prompt: prompt.clone(),
            step,
        });
    }
    Ok(rows)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Utf8, false),
        Field::new("segment_index", DataType::Int32, false),
        Field::new("cumulative_score", DataType::Float64, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
    ]))
}

fn to_batch(rows: &[TextRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.generation_id.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.segment_index))),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.cumulative_score),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.prompt.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.step.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The text demo's table, about `segments` rows (whole generations): `generation_id`,
/// `segment_index` (int32), `cumulative_score`, `prompt`, `step`.
pub fn text_batch(segments: u64, seed: u64, tokenizer: &TextTokenizer) -> Result<RecordBatch> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut n = 0;
    while (rows.len() as u64) < segments {
        rows.extend(generation(&mut rng, tokenizer, n, segments - rows.len() as u64)?);
        n += 1;
    }
    to_batch(&rows)
}

/// Writes a text dataset of `segments` rows in `files` files under `dir`, sorted by
/// generation; returns (rows, generations).
pub fn write_text_dataset(
    dir: &Path,
    segments: u64,
    files: usize,
    seed: u64,
    tokenizer: &TextTokenizer,
) -> Result<(u64, u64)> {
    let batch = text_batch(segments, seed, tokenizer)?;
    let rows = batch.num_rows();
    let gids = batch.column(0).as_ref().to_data();
    let files = files.max(1);
    let per_file = rows.div_ceil(files);
    let ids = datafusion::arrow::array::make_array(gids);
    let ids = ids
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| crate::error::Error::Internal("ids".into()))?;
    let generations =
        (1..rows).filter(|&i| ids.value(i) != ids.value(i - 1)).count() as u64 + u64::from(rows > 0);
    // Files cut at generation boundaries, so each holds whole generations.
    let mut start = 0;
    for f in 0..files {
        let mut end = ((f + 1) * per_file).min(rows);
        while end < rows && end > 0 && ids.value(end) == ids.value(end - 1) {
            end += 1;
        }
        if end > start {
            write_parquet(
                &dir.join(format!("part-{f:05}.parquet")),
                &batch.slice(start, end - start),
            )?;
        }
        start = end;
    }
    Ok((rows as u64, generations))
}
