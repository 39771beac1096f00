//! The overall metrics from the sample the pass kept ([`super::stream`]): the rank metrics
//! (Spearman, Kendall's tau-b, order accuracy), the loss shares, the residual histogram and the
//! calibration by decile, as `queries/` defines them. The sample comes in parts (a partition's,
//! the other shards' files), each made ready as it arrives ([`SamplePart`]: its rows sorted),
//! then merged ([`overall_of_parts`]).

use std::sync::Arc;

use datafusion::arrow::array::{make_comparator, Array, ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::compute::{interleave, SortOptions};
use rayon::prelude::*;
use std::cmp::Ordering;

use super::stream::{f64s_of, means, SAMPLE_COLUMNS};
use crate::error::{Error, Result};
use crate::evaluate::summary::{CalibrationRow, Evaluation, HistogramBin};
use crate::metrics::{self, EvalSums, Ranker};

/// The overall metrics that read the sample (all its batches); the means over generations are
/// those of no generation until [`with_sums`](super::stream::with_sums) sets them.
pub fn overall_of_sample(sample: &[RecordBatch]) -> Result<Evaluation> {
    overall_of_parts(vec![SamplePart::new(sample.to_vec(), true)?])
}

/// A batch of the overall sample ([`SAMPLE_COLUMNS`]) from its keys, predictions and targets,
/// the loss squared: a sample as the pass keeps it, for tests and benches.
pub fn sample_batch(
    generation_id: ArrayRef,
    segment_index: ArrayRef,
    predicted: Vec<f64>,
    target: Vec<f64>,
) -> Result<RecordBatch> {
    let loss: Vec<f64> = predicted
        .iter()
        .zip(&target)
        .map(|(p, t)| (p - t) * (p - t))
        .collect();
    let residual: Vec<f64> = predicted.iter().zip(&target).map(|(p, t)| t - p).collect();
    let floats = [predicted, target, loss, residual].map(|v| Arc::new(Float64Array::from(v)) as ArrayRef);
    let columns = [generation_id, segment_index].into_iter().chain(floats);
    Ok(RecordBatch::try_from_iter(
        SAMPLE_COLUMNS.into_iter().zip(columns),
    )?)
}

/// A part of the overall sample made ready for [`overall_of_parts`]: its float columns, and
/// its rows sorted as the rank metrics sort them ([`metrics::sort_rows`]), so that a part
/// handed over early (a partition that finished first) is sorted while the others still run.
#[derive(Debug)]
pub struct SamplePart {
    batches: Vec<RecordBatch>,
    /// predicted_score, target_score, loss, residual.
    floats: [Vec<f64>; 4],
    sorted: Vec<metrics::RankedRow>,
}

impl SamplePart {
    /// The part of the sample in `batches` (of [`SAMPLE_COLUMNS`]),
    /// made ready on rayon's threads if `parallel`, else on this thread alone (a part that
    /// comes while partitions still stream leaves rayon's threads to their model calls).
    pub fn new(batches: Vec<RecordBatch>, parallel: bool) -> Result<Self> {
        let column = |i: usize| f64s_of(&batches, i);
        let floats: Vec<Vec<f64>> = if parallel {
            [2, 3, 4, 5].into_par_iter().map(column).collect::<Result<_>>()?
        } else {
            [2, 3, 4, 5].into_iter().map(column).collect::<Result<_>>()?
        };
        let floats: [Vec<f64>; 4] = floats
            .try_into()
            .map_err(|_| Error::Internal("four sample columns".into()))?;
        let mut sorted = Vec::new();
        metrics::sort_rows(&floats[0], &floats[1], &mut sorted, parallel);
        Ok(SamplePart {
            batches,
            floats,
            sorted,
        })
    }
}

/// The overall metrics that read the sample, given in consecutive parts, as
/// [`overall_of_sample`] of all their batches gives them.
pub fn overall_of_parts(mut parts: Vec<SamplePart>) -> Result<Evaluation> {
    parts.retain(|p| !p.sorted.is_empty());
    let n: usize = parts.iter().map(|p| p.sorted.len()).sum();
    let sorted: Vec<_> = parts.iter_mut().map(|p| std::mem::take(&mut p.sorted)).collect();
    let column = |c: usize| Column::new(parts.iter().map(|p| p.floats[c].as_slice()).collect());
    let (pred, target, residual) = (column(0), column(1), column(3));
    let finite = [&pred, &target]
        .iter()
        .all(|c| c.parts.iter().all(|v| metrics::all_finite(v)));
    let keys = Keys::new(&parts);
    // The parts' sorted rows merge, then the rank metrics merge-sort them by target while the
    // calibration reads their order by prediction; the loss shares sort the losses and the
    // histogram counts the residuals: side by side.
    let mut ranker = Ranker::default();
    let ((ranks, calibration), (shares, residual_histogram)) = rayon::join(
        || {
            ranker.rank_presorted_with(metrics::merge_sorted(sorted), finite, |by_x| {
                calibration(by_x, &keys, &pred, &target)
            })
        },
        || {
            rayon::join(
                || {
                    let mut loss: Vec<f64> = parts.iter().flat_map(|p| p.floats[2].iter().copied()).collect();
                    metrics::top_shares(&mut loss, &[0.01, 0.1])
                },
                || histogram(&residual),
            )
        },
    );
    let calibration = calibration?;
    drop((pred, target, residual, keys));
    // The buffers (some 100 MB at a sample of 1M) are freed off the caller's path.
    rayon::spawn(move || drop((ranker, parts)));
    Ok(Evaluation {
        overall_sample_segments: n as u64,
        spearman: ranks.spearman,
        kendall_tau: ranks.counts.and_then(|c| c.kendall_tau_b()),
        pairwise_order_accuracy: ranks.counts.and_then(|c| c.order_accuracy()),
        loss_share_top_1pct: shares[0],
        loss_share_top_10pct: shares[1],
        generation_means: means(&EvalSums::default()),
        targets_sum_mismatches: 0,
        residual_histogram,
        calibration,
    })
}

/// Where consecutive pieces (parts, batches) of the sample start, to find a row (counted over
/// all the pieces) in its piece.
struct Starts(Vec<usize>);

impl Starts {
    fn new(lens: impl Iterator<Item = usize>) -> Self {
        Starts(
            lens.scan(0, |start, len| {
                let s = *start;
                *start += len;
                Some(s)
            })
            .collect(),
        )
    }

    /// The piece that holds `row`, and the row's place in it.
    fn locate(&self, row: usize) -> (usize, usize) {
        let piece = self.0.partition_point(|&s| s <= row) - 1;
        (piece, row - self.0[piece])
    }
}

/// A float column of the sample in its parts, read by row (counted over all the parts).
struct Column<'a> {
    parts: Vec<&'a [f64]>,
    starts: Starts,
}

impl<'a> Column<'a> {
    fn new(parts: Vec<&'a [f64]>) -> Self {
        let starts = Starts::new(parts.iter().map(|p| p.len()));
        Column { parts, starts }
    }

    fn get(&self, row: usize) -> f64 {
        let (part, at) = self.starts.locate(row);
        self.parts[part][at]
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.parts.iter().flat_map(|p| p.iter().copied())
    }
}

/// The sample's key columns (`[generation_id, segment_index]`) in its parts' batches, read
/// only for the rows whose predictions tie (no copy of the whole columns).
struct Keys<'a> {
    columns: [Vec<&'a dyn Array>; 2],
    starts: Starts,
}

impl<'a> Keys<'a> {
    fn new(parts: &'a [SamplePart]) -> Self {
        let batches: Vec<&RecordBatch> = parts.iter().flat_map(|p| &p.batches).collect();
        let column = |i: usize| batches.iter().map(|b| b.column(i).as_ref()).collect();
        Keys {
            columns: [column(0), column(1)],
            starts: Starts::new(batches.iter().map(|b| b.num_rows())),
        }
    }

    /// Compares `rows[a]` and `rows[b]` by key, given `a` and `b`: the rows' keys gathered once.
    fn comparator(&self, rows: &[usize]) -> Result<impl Fn(usize, usize) -> Ordering> {
        let at: Vec<(usize, usize)> = rows.iter().map(|&r| self.starts.locate(r)).collect();
        let mut by = Vec::with_capacity(2);
        if !at.is_empty() {
            for column in &self.columns {
                let keys = interleave(column, &at)?;
                by.push(make_comparator(
                    keys.as_ref(),
                    keys.as_ref(),
                    SortOptions::default(),
                )?);
            }
        }
        Ok(move |a, b| by.iter().fold(Ordering::Equal, |o, by| o.then_with(|| by(a, b))))
    }
}

/// 40 equal-width bins from the smallest residual to the largest (in the last bin); empty bins
/// left out.
fn histogram(residual: &Column<'_>) -> Vec<HistogramBin> {
    if residual.parts.is_empty() {
        return Vec::new();
    }
    let lo = residual.values().fold(f64::INFINITY, f64::min);
    let hi = residual.values().fold(f64::NEG_INFINITY, f64::max);
    let mut bins = [0u64; 40];
    for r in residual.values() {
        let b = if hi > lo {
            (((r - lo) / (hi - lo) * 40.0).floor() as i64).min(39) as usize
        } else {
            0
        };
        bins[b] += 1;
    }
    bins.iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(b, &count)| HistogramBin {
            lower: lo + (hi - lo) * b as f64 / 40.0,
            upper: lo + (hi - lo) * (b + 1) as f64 / 40.0,
            count,
        })
        .collect()
}

/// Deciles of prediction (rank r of n in decile r * 10 / n + 1), ties broken by key
/// (`[generation_id, segment_index]`), as `queries/calibration.sql` makes them. The rows in
/// order of prediction (`by_x`, [`Ranker::by_x`]), read in sequence: a row's prediction and
/// target are the values its keys stand for (the row's own where the key cannot tell: a zero's
/// sign, a NaN's payload); each run of equal predictions is reordered by the total order (-0.0
/// first), then by key.
fn calibration(
    by_x: &[metrics::RankedRow],
    keys: &Keys<'_>,
    pred: &Column<'_>,
    target: &Column<'_>,
) -> Result<Vec<CalibrationRow>> {
    let n = by_x.len();
    let value = |key: u64, own: &Column<'_>, row: usize| {
        let v = metrics::from_total_order_key(key);
        if v == 0.0 || v.is_nan() {
            own.get(row)
        } else {
            v
        }
    };
    let mut deciles: Vec<CalibrationRow> = Vec::new();
    let mut r = 0u64;
    let mut visit = |p: f64, t: f64| {
        let decile = (r * 10) / n as u64 + 1;
        r += 1;
        match deciles.last_mut() {
            Some(row) if row.decile == decile => {
                row.n += 1;
                row.min_predicted = row.min_predicted.min(p);
                row.max_predicted = row.max_predicted.max(p);
                row.mean_predicted += p;
                row.mean_target += t;
            }
            _ => deciles.push(CalibrationRow {
                decile,
                n: 1,
                min_predicted: p,
                max_predicted: p,
                mean_predicted: p,
                mean_target: t,
            }),
        }
    };
    let same = |a: &metrics::RankedRow, b: &metrics::RankedRow| a.0 == b.0;
    // The rows of every run of equal predictions, in order; their keys read once.
    let tied: Vec<usize> = by_x
        .chunk_by(same)
        .filter(|run| run.len() > 1)
        .flat_map(|run| run.iter().map(|e| e.2 as usize))
        .collect();
    let by_key = keys.comparator(&tied)?;
    let (mut next, mut run_at) = (0, Vec::new());
    for run in by_x.chunk_by(same) {
        if let [(kx, ky, row)] = run {
            let row = *row as usize;
            visit(value(*kx, pred, row), value(*ky, target, row));
            continue;
        }
        // The run's places in `tied`, reordered.
        run_at.clear();
        run_at.extend(next..next + run.len());
        next += run.len();
        run_at.sort_unstable_by(|&a, &b| {
            pred.get(tied[a])
                .total_cmp(&pred.get(tied[b]))
                .then_with(|| by_key(a, b))
        });
        for &at in &run_at {
            visit(pred.get(tied[at]), target.get(tied[at]));
        }
    }
    for row in &mut deciles {
        row.mean_predicted /= row.n as f64;
        row.mean_target /= row.n as f64;
    }
    Ok(deciles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    /// `n` sample rows from row `from` on: few distinct predictions (long runs of ties, which the
    /// calibration orders by key), -0.0 and 0.0 among them, and targets with ties too.
    fn sample(from: usize, n: usize) -> RecordBatch {
        let rows = from..from + n;
        let pred: Vec<f64> = rows
            .clone()
            .map(|i| match i % 97 {
                0 => -0.0,
                1 => 0.0,
                k => ((k * 7919) % 50) as f64 / 8.0 - 3.0,
            })
            .collect();
        let target: Vec<f64> = rows
            .clone()
            .map(|i| ((i * 31) % 1013) as f64 / 100.0 - 5.0)
            .collect();
        sample_batch(
            // Generations of 7 rows, ids in descending order so key order and row order differ.
            Arc::new(StringArray::from_iter_values(
                rows.clone().map(|i| format!("gen-{:06}", 999_999 - i / 7)),
            )),
            Arc::new(Int64Array::from_iter_values(rows.map(|i| (i % 7) as i64))),
            pred,
            target,
        )
        .unwrap()
    }

    #[test]
    fn a_sample_in_parts_gives_the_metrics_of_the_whole() {
        // Past the rows from which the sorts and merges run on rayon's threads.
        let sizes = [30_000, 0, 25_000, 1, 9_000];
        let mut from = 0;
        let mut batches = Vec::new();
        for n in sizes {
            batches.push(sample(from, n));
            from += n;
        }
        let whole = overall_of_sample(&batches).unwrap();
        assert_eq!(whole.overall_sample_segments, 64_001);
        assert_eq!(whole.calibration.len(), 10);
        let parts: Vec<SamplePart> = batches
            .iter()
            .enumerate()
            .map(|(i, b)| SamplePart::new(vec![b.clone()], i % 2 == 0).unwrap())
            .collect();
        assert_eq!(overall_of_parts(parts).unwrap(), whole);
        // Against the same metrics computed without the sample's sort in parts: one batch.
        let one = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(overall_of_sample(&[one]).unwrap(), whole);
        let none = overall_of_parts(Vec::new()).unwrap();
        assert_eq!(none.overall_sample_segments, 0);
        assert!(none.calibration.is_empty() && none.residual_histogram.is_empty());
    }
}
