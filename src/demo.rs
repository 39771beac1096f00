//! The bundled demo: deterministic sample data and the bundled reward model.
//!
//! Data: `generations` generations of 1–20 segments each, segments of 2–80 tokens (skewed
//! towards short ones), token ids in 1..1000. A segment's true score follows the rule the
//! bundled model approximates (see `models/build_models.py`):
//!
//! ```text
//! v(t) = ((t * 7919) mod 1000) / 500 - 1
//! s    = 0.8 * tanh(1.5 * mean_t v(t)) + N(0, 0.05)
//! ```
//!
//! and the cumulative scores are the running sums of `s` (baseline 0), so the targets the job
//! recovers are exactly `s` and the residuals measure the model's error against a known truth.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, ListArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// The bundled demo reward model (`models/reward_small.onnx`), embedded in the binary.
pub const DEMO_MODEL: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/reward_small.onnx"));

/// The demo's token value rule.
pub fn token_value(t: i64) -> f64 {
    ((t * 7919).rem_euclid(1000)) as f64 / 500.0 - 1.0
}

/// The demo's noise-free segment score for a list of tokens.
pub fn true_segment_score(tokens: &[i32]) -> f64 {
    let mean = tokens.iter().map(|&t| token_value(t as i64)).sum::<f64>() / tokens.len() as f64;
    0.8 * (1.5 * mean).tanh()
}

fn normal(rng: &mut SmallRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Generates the demo table: `generation_id` (string), `segment_index` (int32),
/// `cumulative_score` (float64), `input_ids` (list<int32>), `source` (string, carried).
pub fn demo_batch(generations: usize, seed: u64) -> Result<RecordBatch> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let sources = ["chat", "summarize", "code", "qa"];
    let (mut gid, mut seg, mut cum, mut src) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut lists: Vec<Option<Vec<Option<i32>>>> = Vec::new();
    for g in 0..generations {
        let n_seg = rng.random_range(1..=20);
        let source = sources[rng.random_range(0..sources.len())];
        let mut c = 0.0;
        for k in 0..n_seg {
            // Skewed lengths: mostly short, some long.
            let u: f64 = rng.random();
            let len = (2.0 + 78.0 * u * u * u).round() as usize;
            let tokens: Vec<i32> = (0..len).map(|_| rng.random_range(1..1000)).collect();
            c += true_segment_score(&tokens) + 0.05 * normal(&mut rng);
            gid.push(format!("gen-{g:04}"));
            seg.push(k);
            cum.push(c);
            src.push(source);
            lists.push(Some(tokens.into_iter().map(Some).collect()));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Utf8, false),
        Field::new("segment_index", DataType::Int32, false),
        Field::new("cumulative_score", DataType::Float64, false),
        Field::new(
            "input_ids",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
        Field::new("source", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(gid)),
        Arc::new(Int32Array::from(seg)),
        Arc::new(Float64Array::from(cum)),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(lists)),
        Arc::new(StringArray::from(src)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Writes a batch to a Parquet file (atomically: temporary name, then rename).
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension("parquet.inprogress");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), None)?;
    w.write(batch)?;
    w.close()?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
