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

/// Layout of a generated dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Files hold consecutive generations, rows sorted by (generation_id, segment_index), and
    /// declare it in their footers (`sorting_columns`).
    Sorted,
    /// Each generation's segments are spread over the files and rows are shuffled.
    Shuffled,
}

/// Writes a benchmark dataset of about `segments` rows in `files` Parquet files under `dir`:
/// the demo's scoring rule with a realistic, long-tailed segment length (log-normal, median
/// 24 tokens, 1 to 256), written in row groups as it is generated (memory stays flat).
/// Returns (rows, generations).
pub fn write_dataset(dir: &Path, segments: u64, files: usize, layout: Layout, seed: u64) -> Result<(u64, u64)> {
    use datafusion::parquet::file::metadata::SortingColumn;
    use datafusion::parquet::file::properties::WriterProperties;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = files.max(1);
    let mut rng = SmallRng::seed_from_u64(seed);
    let schema = demo_batch(1, 0)?.schema();
    let props = match layout {
        Layout::Sorted => WriterProperties::builder()
            .set_sorting_columns(Some(vec![
                SortingColumn { column_idx: 0, descending: false, nulls_first: false },
                SortingColumn { column_idx: 1, descending: false, nulls_first: false },
            ]))
            .build(),
        Layout::Shuffled => WriterProperties::builder().build(),
    };
    let mut writers = Vec::with_capacity(files);
    let mut paths = Vec::with_capacity(files);
    for f in 0..files {
        let path = dir.join(format!("part-{f:05}.parquet"));
        let tmp = path.with_extension("parquet.inprogress");
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        writers.push(ArrowWriter::try_new(file, Arc::clone(&schema), Some(props.clone()))?);
        paths.push((tmp, path));
    }
    let per_file = segments.div_ceil(files as u64);
    let sources = ["chat", "summarize", "code", "qa"];
    let (mut rows, mut generation) = (0u64, 0u64);
    let mut bufs: Vec<Vec<(String, i32, f64, Vec<i32>, &str)>> = vec![Vec::new(); files];
    let flush_schema = Arc::clone(&schema);
    let flush = move |buf: &mut Vec<(String, i32, f64, Vec<i32>, &str)>, w: &mut ArrowWriter<std::fs::File>, rng: &mut SmallRng| -> Result<()> {
        if layout == Layout::Shuffled {
            for i in (1..buf.len()).rev() {
                buf.swap(i, rng.random_range(0..=i));
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(buf.iter().map(|r| r.0.as_str()))),
            Arc::new(Int32Array::from_iter_values(buf.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(buf.iter().map(|r| r.2))),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                buf.iter().map(|r| Some(r.3.iter().map(|&t| Some(t)).collect::<Vec<_>>())),
            )),
            Arc::new(StringArray::from_iter_values(buf.iter().map(|r| r.4))),
        ];
        w.write(&RecordBatch::try_new(Arc::clone(&flush_schema), cols)?)?;
        buf.clear();
        Ok(())
    };
    while rows < segments {
        let n_seg = rng.random_range(1..=20u64).min(segments - rows);
        let source = sources[rng.random_range(0..sources.len())];
        let mut c = 0.0;
        let sorted_file = ((rows / per_file) as usize).min(files - 1);
        for k in 0..n_seg {
            let len = (24.0 * (0.8 * normal(&mut rng)).exp()).round().clamp(1.0, 256.0) as usize;
            let tokens: Vec<i32> = (0..len).map(|_| rng.random_range(1..1000)).collect();
            c += true_segment_score(&tokens) + 0.05 * normal(&mut rng);
            let f = match layout {
                Layout::Sorted => sorted_file,
                Layout::Shuffled => rng.random_range(0..files),
            };
            bufs[f].push((format!("gen-{generation:09}"), k as i32, c, tokens, source));
            if bufs[f].len() >= 65536 {
                flush(&mut bufs[f], &mut writers[f], &mut rng)?;
            }
        }
        rows += n_seg;
        generation += 1;
    }
    for (buf, w) in bufs.iter_mut().zip(writers.iter_mut()) {
        if !buf.is_empty() {
            flush(buf, w, &mut rng)?;
        }
    }
    for (w, (tmp, path)) in writers.into_iter().zip(paths) {
        w.close()?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok((rows, generation))
}
