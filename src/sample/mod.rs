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
//!
//! [`text`] is the same for text input: prompts and steps of words, tokenized with the bundled
//! GPT-2 tokenizer, scored for the bundled per-token model.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, ListArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::sink::AtomicFile;

pub mod text;

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

pub(crate) fn normal(rng: &mut SmallRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One generated row.
#[derive(Debug, Clone)]
struct SegmentRow {
    generation_id: String,
    segment_index: i32,
    cumulative_score: f64,
    input_ids: Vec<i32>,
    source: &'static str,
}

/// How long segments are.
#[derive(Debug, Clone, Copy)]
enum Lengths {
    /// 2 to 80 tokens, mostly short (the demo).
    Demo,
    /// Log-normal, median 24, 1 to 256 tokens (benchmarks).
    LongTailed,
}

/// Generates generations of 1–20 segments following the demo's scoring rule.
struct Generator {
    rng: SmallRng,
    lengths: Lengths,
    next_generation: u64,
    id_width: usize,
}

impl Generator {
    fn new(seed: u64, lengths: Lengths, id_width: usize) -> Self {
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            lengths,
            next_generation: 0,
            id_width,
        }
    }

    /// The next generation, at most `max_segments` long.
    fn generation(&mut self, max_segments: u64) -> Vec<SegmentRow> {
        const SOURCES: [&str; 4] = ["chat", "summarize", "code", "qa"];
        let rng = &mut self.rng;
        let n_seg = rng.random_range(1..=20u64).min(max_segments.max(1));
        let source = SOURCES[rng.random_range(0..SOURCES.len())];
        let generation_id = format!("gen-{:0w$}", self.next_generation, w = self.id_width);
        self.next_generation += 1;
        let mut c = 0.0;
        (0..n_seg)
            .map(|k| {
                let len = match self.lengths {
                    Lengths::Demo => {
                        let u: f64 = rng.random();
                        (2.0 + 78.0 * u * u * u).round() as usize
                    }
                    Lengths::LongTailed => {
                        (24.0 * (0.8 * normal(rng)).exp()).round().clamp(1.0, 256.0) as usize
                    }
                };
                let tokens: Vec<i32> = (0..len).map(|_| rng.random_range(1..1000)).collect();
                c += true_segment_score(&tokens) + 0.05 * normal(rng);
                SegmentRow {
                    generation_id: generation_id.clone(),
                    segment_index: k as i32,
                    cumulative_score: c,
                    input_ids: tokens,
                    source,
                }
            })
            .collect()
    }
}

fn demo_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Utf8, false),
        Field::new("segment_index", DataType::Int32, false),
        Field::new("cumulative_score", DataType::Float64, false),
        Field::new(
            "input_ids",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
        Field::new("source", DataType::Utf8, false),
    ]))
}

fn to_batch(rows: &[SegmentRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.generation_id.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.segment_index))),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.cumulative_score),
        )),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            rows.iter()
                .map(|r| Some(r.input_ids.iter().map(|&t| Some(t)).collect::<Vec<_>>())),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.source))),
    ];
    Ok(RecordBatch::try_new(demo_schema(), columns)?)
}

/// Generates the demo table: `generation_id` (string), `segment_index` (int32),
/// `cumulative_score` (float64), `input_ids` (`list<int32>`), `source` (string, carried).
pub fn demo_batch(generations: usize, seed: u64) -> Result<RecordBatch> {
    let mut g = Generator::new(seed, Lengths::Demo, 4);
    let rows: Vec<SegmentRow> = (0..generations).flat_map(|_| g.generation(u64::MAX)).collect();
    to_batch(&rows)
}

/// A table of `segments` rows with the benchmark's long-tailed segment lengths (the same
/// columns as [`demo_batch`]); the shared generator of the criterion benches.
pub fn long_tailed_batch(segments: u64, seed: u64) -> Result<RecordBatch> {
    let mut g = Generator::new(seed, Lengths::LongTailed, 9);
    let mut rows = Vec::new();
    while (rows.len() as u64) < segments {
        rows.extend(g.generation(segments - rows.len() as u64));
    }
    to_batch(&rows)
}

/// Writes a batch to a Parquet file atomically ([`AtomicFile`]).
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut w = ArrowWriter::try_new(AtomicFile::create(path)?, batch.schema(), None)?;
    w.write(batch)?;
    w.into_inner()?.commit().map(drop)
}

/// Layout of a generated dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Files hold consecutive generations, rows sorted by (generation_id, segment_index), and
    /// declare it in their footers (`sorting_columns`).
    Sorted,
    /// As [`Layout::Sorted`], but the footers do not declare it (as pandas, polars, DuckDB
    /// and pyarrow write sorted data).
    Undeclared,
    /// Each generation's segments are spread over the files and rows are shuffled.
    Shuffled,
}

/// Writes a benchmark dataset of `segments` rows in `files` Parquet files under `dir`: the
/// demo's scoring rule with a realistic, long-tailed segment length (log-normal, median 24
/// tokens, 1 to 256), handed to the writers in batches as it is generated, in row groups of
/// `row_group_rows` rows (memory grows with the row group, not the file).
/// Returns (rows, generations).
pub fn write_dataset(
    dir: &Path,
    segments: u64,
    files: usize,
    layout: Layout,
    seed: u64,
    row_group_rows: usize,
) -> Result<(u64, u64)> {
    use datafusion::parquet::file::metadata::SortingColumn;
    use datafusion::parquet::file::properties::WriterProperties;
    const FLUSH_ROWS: usize = 65536;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = files.max(1);
    // Row groups of row_group_rows rows, whatever the file size, so that datasets of different
    // sizes differ only in how many row groups they hold.
    let mut props = WriterProperties::builder().set_max_row_group_row_count(Some(row_group_rows.max(1)));
    if layout == Layout::Sorted {
        let asc = |i| SortingColumn {
            column_idx: i,
            descending: false,
            nulls_first: false,
        };
        props = props.set_sorting_columns(Some(vec![asc(0), asc(1)]));
    }
    let props = props.build();
    let mut writers = Vec::with_capacity(files);
    for f in 0..files {
        let path = dir.join(format!("part-{f:05}.parquet"));
        let file = AtomicFile::create(&path)?;
        writers.push(ArrowWriter::try_new(file, demo_schema(), Some(props.clone()))?);
    }
    let mut generator = Generator::new(seed, Lengths::LongTailed, 9);
    let mut shuffle_rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let per_file = segments.div_ceil(files as u64);
    let mut bufs: Vec<Vec<SegmentRow>> = vec![Vec::new(); files];
    let mut flush = |buf: &mut Vec<SegmentRow>, w: &mut ArrowWriter<AtomicFile>| -> Result<()> {
        if layout == Layout::Shuffled {
            for i in (1..buf.len()).rev() {
                buf.swap(i, shuffle_rng.random_range(0..=i));
            }
        }
        w.write(&to_batch(buf)?)?;
        buf.clear();
        Ok(())
    };
    let mut rows = 0u64;
    while rows < segments {
        let sorted_file = ((rows / per_file) as usize).min(files - 1);
        let generation = generator.generation(segments - rows);
        rows += generation.len() as u64;
        for row in generation {
            let f = match layout {
                Layout::Sorted | Layout::Undeclared => sorted_file,
                Layout::Shuffled => generator.rng.random_range(0..files),
            };
            bufs[f].push(row);
            if bufs[f].len() >= FLUSH_ROWS {
                flush(&mut bufs[f], &mut writers[f])?;
            }
        }
    }
    for (buf, w) in bufs.iter_mut().zip(writers.iter_mut()) {
        if !buf.is_empty() {
            flush(buf, w)?;
        }
    }
    for w in writers {
        w.into_inner()?.commit()?;
    }
    Ok((rows, generator.next_generation))
}
