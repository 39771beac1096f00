//! The evaluation in the pass that writes the segments. Rows leave the window grouped by
//! generation in key order, so as each batch of whole generations is written:
//!
//! - its per-generation metrics (the rows of `queries/generations.sql`) are computed with the
//!   same functions the SQL aggregates use, and written to `generations/` beside the segments;
//! - the sums behind `generation_means` accumulate ([`EvalSums`]);
//! - the segments of the overall sample are kept: those whose key hashes to 0 modulo
//!   `stride` (`segscore_sample` in SQL), every segment up to [`SAMPLE_SEGMENTS`].
//!
//! After the last shard the overall rank metrics, loss shares, histogram and calibration are
//! computed from the sample ([`overall`]). The queries in `queries/` stay the reference: the
//! tests run them over the output and compare.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{cast, partition, take};
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::evaluate::queries::SAMPLE_SEGMENTS;
use crate::evaluate::summary::{Evaluation, GenerationMeans};
use crate::metrics::{self, EvalSums, Ranker};
use crate::shard::in_sample;

/// The columns of the overall sample, in this order.
pub const SAMPLE_COLUMNS: [&str; 6] = [
    "generation_id",
    "segment_index",
    "predicted_score",
    "target_score",
    "loss",
    "residual",
];

/// The sample's stride for `input_rows` rows: every segment up to [`SAMPLE_SEGMENTS`], about
/// one in `stride` above.
pub fn sample_stride(input_rows: u64) -> u64 {
    input_rows.div_ceil(SAMPLE_SEGMENTS).max(1)
}

/// Where the evaluation finds its columns in an output batch, and the schemas it writes.
#[derive(Debug, Clone)]
pub struct StreamEval {
    gid: usize,
    seg: usize,
    cum: usize,
    base: Option<usize>,
    target: usize,
    pred: usize,
    residual: usize,
    squared: usize,
    abs: usize,
    loss: usize,
    /// The schema of `generations/` (as `queries/generations.sql` gives it).
    pub generations: SchemaRef,
    /// The schema of the sample files.
    pub sample: SchemaRef,
    stride: u64,
}

/// The means over generations, from their sums.
pub fn means(sums: &EvalSums) -> GenerationMeans {
    let mean = |i: usize| (sums.counts[i] > 0).then(|| sums.sums[i] / sums.counts[i] as f64);
    GenerationMeans {
        mse: mean(0),
        mae: mean(1),
        bias: mean(2),
        pearson: mean(3),
        spearman: mean(4),
        kendall_tau: mean(5),
        pairwise_order_accuracy: mean(6),
        top_segment_match: mean(7),
        spearman_defined: sums.counts[4],
        kendall_tau_defined: sums.counts[5],
        pairwise_order_accuracy_defined: sums.counts[6],
        top_segment_match_defined: sums.counts[7],
    }
}

fn f64s(batch: &RecordBatch, i: usize) -> Result<Vec<f64>> {
    f64s_of(std::slice::from_ref(batch), i)
}

/// Column `i` of every batch, as float64, one after the other.
pub(super) fn f64s_of(batches: &[RecordBatch], i: usize) -> Result<Vec<f64>> {
    let mut v = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for b in batches {
        let a = cast(b.column(i), &DataType::Float64)?;
        v.extend_from_slice(a.as_primitive::<Float64Type>().values());
    }
    Ok(v)
}

impl StreamEval {
    /// The evaluation of output batches of `schema`; `generations` is the schema
    /// `queries/generations.sql` gives over them, `input_rows` sets the sample's stride.
    pub fn new(schema: &Schema, generations: SchemaRef, input_rows: u64) -> Result<Self> {
        let at = |name: &str| {
            schema
                .index_of(name)
                .map_err(|_| Error::Internal(format!("the output lacks {name}")))
        };
        let sample = Arc::new(Schema::new(
            SAMPLE_COLUMNS
                .iter()
                .map(|c| Ok(schema.field(at(c)?).clone()))
                .collect::<Result<Vec<_>>>()?,
        ));
        Ok(StreamEval {
            gid: at("generation_id")?,
            seg: at("segment_index")?,
            cum: at("cumulative_score")?,
            base: schema.index_of("base_score").ok(),
            target: at("target_score")?,
            pred: at("predicted_score")?,
            residual: at("residual")?,
            squared: at("squared_error")?,
            abs: at("abs_error")?,
            loss: at("loss")?,
            generations,
            sample,
            stride: sample_stride(input_rows),
        })
    }

    /// The per-generation rows of a batch of whole generations (valid rows, key order), and
    /// the batch's sums.
    pub fn generations(&self, batch: &RecordBatch) -> Result<(RecordBatch, EvalSums)> {
        let runs = partition(&[Arc::clone(batch.column(self.gid))])?.ranges();
        let [target, pred, residual, sq, abs, loss, cum] = [
            self.target,
            self.pred,
            self.residual,
            self.squared,
            self.abs,
            self.loss,
            self.cum,
        ]
        .map(|i| f64s(batch, i));
        let (target, pred, residual, sq, abs, loss, cum) =
            (target?, pred?, residual?, sq?, abs?, loss?, cum?);
        let base = match self.base {
            Some(b) => f64s(batch, b)?,
            None => vec![0.0; batch.num_rows()],
        };
        let n = runs.len();
        let mut sums = EvalSums {
            generations: n as u64,
            ..EvalSums::default()
        };
        let mut cols: Vec<Vec<Option<f64>>> = (0..13).map(|_| Vec::with_capacity(n)).collect();
        let mut top = Vec::with_capacity(n);
        let mut ok = Vec::with_capacity(n);
        let mut worst: Vec<u32> = Vec::with_capacity(n);
        let mut counts = Vec::with_capacity(n);
        let mut firsts: Vec<u32> = Vec::with_capacity(n);
        // Sums in row order, as the SQL aggregates add them.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let mut ranker = Ranker::default();
        for r in &runs {
            let (p, t) = (&pred[r.clone()], &target[r.clone()]);
            let ranks = ranker.rank(p, t);
            let m = [
                Some(mean(&sq[r.clone()])),
                Some(mean(&abs[r.clone()])),
                Some(mean(&residual[r.clone()])),
                metrics::pearson(p, t),
                ranks.spearman,
                ranks.counts.and_then(|c| c.kendall_tau_b()),
                ranks.counts.and_then(|c| c.order_accuracy()),
            ];
            let tsm = metrics::top_segment_match(p, t);
            for (i, v) in m.iter().enumerate() {
                if let Some(x) = v {
                    sums.sums[i] += x;
                    sums.counts[i] += 1;
                }
                cols[i].push(*v);
            }
            if let Some(b) = tsm {
                sums.sums[7] += if b { 1.0 } else { 0.0 };
                sums.counts[7] += 1;
            }
            top.push(tsm);
            // The worst segment: the largest loss, the first such on ties.
            let mut w = r.start;
            for i in r.clone() {
                if loss[i] > loss[w] {
                    w = i;
                }
            }
            worst.push(w as u32);
            let ls = &loss[r.clone()];
            cols[7].push(Some(ls.iter().copied().fold(f64::NEG_INFINITY, f64::max)));
            cols[8].push(Some(ls.iter().sum()));
            let target_sum: f64 = t.iter().sum();
            let (fin, b) = (cum[r.end - 1], base[r.start]);
            cols[9].push(Some(target_sum));
            cols[10].push(Some(fin));
            cols[11].push(Some(b));
            let good = (target_sum - (fin - b)).abs() <= 1e-9 * 1f64.max(fin.abs()).max(b.abs());
            if !good {
                sums.targets_sum_mismatches += 1;
            }
            ok.push(Some(good));
            counts.push(r.len() as i64);
            firsts.push(r.start as u32);
        }
        let firsts = UInt32Array::from(firsts);
        let worst = UInt32Array::from(worst);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.generations.fields().len());
        for f in self.generations.fields() {
            let a: ArrayRef = match f.name().as_str() {
                "generation_id" => take(batch.column(self.gid), &firsts, None)?,
                "n_segments" => Arc::new(Int64Array::from(counts.clone())),
                "mse" => Arc::new(Float64Array::from(cols[0].clone())),
                "mae" => Arc::new(Float64Array::from(cols[1].clone())),
                "bias" => Arc::new(Float64Array::from(cols[2].clone())),
                "pearson" => Arc::new(Float64Array::from(cols[3].clone())),
                "spearman" => Arc::new(Float64Array::from(cols[4].clone())),
                "kendall_tau" => Arc::new(Float64Array::from(cols[5].clone())),
                "pairwise_order_accuracy" => Arc::new(Float64Array::from(cols[6].clone())),
                "top_segment_match" => Arc::new(BooleanArray::from(top.clone())),
                "worst_segment_index" => take(batch.column(self.seg), &worst, None)?,
                "worst_segment_loss" => Arc::new(Float64Array::from(cols[7].clone())),
                "total_loss" => Arc::new(Float64Array::from(cols[8].clone())),
                "target_sum" => Arc::new(Float64Array::from(cols[9].clone())),
                "final_cumulative_score" => Arc::new(Float64Array::from(cols[10].clone())),
                "base_score" => Arc::new(Float64Array::from(cols[11].clone())),
                "targets_sum_ok" => Arc::new(BooleanArray::from(ok.clone())),
                other => {
                    return Err(Error::Internal(format!(
                        "generations.sql gives a column {other} the single pass does not"
                    )))
                }
            };
            arrays.push(if a.data_type() == f.data_type() {
                a
            } else {
                cast(&a, f.data_type())?
            });
        }
        Ok((RecordBatch::try_new(Arc::clone(&self.generations), arrays)?, sums))
    }

    /// The batch's segments that belong to the overall sample, with [`SAMPLE_COLUMNS`].
    pub fn sample(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let keep = in_sample(batch.column(self.gid), batch.column(self.seg), self.stride)?;
        let cols: Vec<ArrayRef> = [
            self.gid,
            self.seg,
            self.pred,
            self.target,
            self.loss,
            self.residual,
        ]
        .iter()
        .map(|&i| Arc::clone(batch.column(i)))
        .collect();
        let b = RecordBatch::try_new(Arc::clone(&self.sample), cols)?;
        Ok(datafusion::arrow::compute::filter_record_batch(&b, &keep)?)
    }
}

/// Every row of some Parquet files (the sample's), the files side by side.
pub fn read_all(files: &[PathBuf]) -> Result<Vec<RecordBatch>> {
    use rayon::prelude::*;
    // The files side by side (one per partition), their batches in file order.
    let per_file: Vec<Vec<_>> = files
        .par_iter()
        .map(|f| {
            let file = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
                    .build()?;
            Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
        })
        .collect::<Result<_>>()?;
    Ok(per_file.into_iter().flatten().collect())
}

/// The paths of the records' overall sample files, in the records' order.
pub fn sample_paths<'a>(
    staging: &Path,
    records: impl Iterator<Item = &'a crate::shard::ShardRecord>,
) -> Vec<PathBuf> {
    records
        .flat_map(|r| r.tally.sample_files.iter())
        .map(|f| staging.join("sample").join(f))
        .collect()
}

/// The overall metrics from the sample (all its batches) and the means' sums.
pub fn overall(sample: &[RecordBatch], sums: &EvalSums) -> Result<Evaluation> {
    Ok(with_sums(super::overall::overall_of_sample(sample)?, sums))
}

/// `evaluation` with the means over generations and the targets' check from `sums` (the parts
/// of [`overall`] that do not read the sample).
pub fn with_sums(mut evaluation: Evaluation, sums: &EvalSums) -> Evaluation {
    evaluation.generation_means = means(sums);
    evaluation.targets_sum_mismatches = sums.targets_sum_mismatches;
    evaluation
}

/// The schema `queries/generations.sql` gives over segments of `segments` schema (planned on
/// an empty table, with `base_score` as an output directory's table has it).
pub(crate) async fn generations_schema(
    segments: &datafusion::arrow::datatypes::SchemaRef,
) -> Result<datafusion::arrow::datatypes::SchemaRef> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields: Vec<Field> = segments.fields().iter().map(|f| f.as_ref().clone()).collect();
    if segments.index_of("base_score").is_err() {
        fields.push(Field::new("base_score", DataType::Float64, false));
    }
    let schema = Arc::new(Schema::new(fields));
    let ctx = datafusion::prelude::SessionContext::new();
    crate::functions::register(&ctx, None, None);
    let empty = datafusion::datasource::MemTable::try_new(schema, vec![vec![]])?;
    ctx.register_table("segments", Arc::new(empty))?;
    let df = segscore_plan::sql(&ctx, crate::evaluate::GENERATIONS_SQL).await?;
    Ok(Arc::new(df.schema().as_arrow().clone()))
}
