//! Evaluation metrics over pairs of (prediction, target): correlations, rank agreement, and
//! how the loss concentrates. Plain functions over slices; [`udaf`] makes them SQL
//! aggregate functions, and the queries in `queries/` build the outputs with those.
//!
//! Undefined values are `None` (SQL NULL), never NaN or a made-up number: every metric over
//! no rows; correlations and rank metrics over fewer than two rows or where either side is
//! constant; rank agreement where every pair is tied; any metric over a non-finite value.

use std::cmp::Ordering;

mod rank;
pub mod udaf;

pub use rank::{merge_sorted, sort_rows, RankMetrics, RankedRow, Ranker};

use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};

/// Sums behind `generation_means`: per metric, the sum over generations where it is defined
/// and how many those are; merged across partitions and shards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalSums {
    /// Generations.
    pub generations: u64,
    /// mse, mae, bias, pearson, spearman, kendall_tau, pairwise_order_accuracy,
    /// top_segment_match (as 1 or 0): sums.
    pub sums: [f64; 8],
    /// The same: generations where each is defined.
    pub counts: [u64; 8],
    /// Generations whose targets do not add up.
    pub targets_sum_mismatches: u64,
}

impl EvalSums {
    /// Adds another's sums.
    pub fn merge(&mut self, o: &EvalSums) {
        self.generations += o.generations;
        for i in 0..8 {
            self.sums[i] += o.sums[i];
            self.counts[i] += o.counts[i];
        }
        self.targets_sum_mismatches += o.targets_sum_mismatches;
    }
}

/// Pearson's correlation (two passes over centred values, clamped to [-1, 1]).
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || n != y.len() || !all_finite(x) || !all_finite(y) {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx > 0.0 && syy > 0.0 {
        Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
    } else {
        None
    }
}

/// A float's place in IEEE 754's total order (`f64::total_cmp`) as an unsigned integer: the
/// sorts below sort these, with the row's index beside them, rather than indices by a
/// comparison that reads the floats at random.
pub fn total_order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The float whose [`total_order_key`] `key` is.
pub fn from_total_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// Ranks starting at 1, ties given the mean of the ranks they span.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    // -0.0 + 0.0 is 0.0: the keys then tie exactly what `==` ties.
    let mut keyed: Vec<(u64, u32)> = x
        .iter()
        .enumerate()
        .map(|(i, v)| (total_order_key(v + 0.0), i as u32))
        .collect();
    keyed.par_sort_unstable();
    let mut ranks = Vec::new();
    ranks_of_sorted(&keyed, |e| e.0, |e| e.1, &mut ranks);
    ranks
}

/// Writes into `ranks` (one per row) the average ranks of rows listed in ascending order of
/// their keys: `key` and `row` read an element of `sorted`.
pub(super) fn ranks_of_sorted<T>(
    sorted: &[T],
    key: impl Fn(&T) -> u64,
    row: impl Fn(&T) -> u32,
    ranks: &mut Vec<f64>,
) {
    ranks.clear();
    ranks.resize(sorted.len(), 0.0);
    let mut i = 0;
    for tied in sorted.chunk_by(|a, b| key(a) == key(b)) {
        let j = i + tied.len();
        // positions i..j (0-based) hold ranks i+1..=j; their mean:
        let rank = (i + j + 1) as f64 / 2.0;
        for e in tied {
            ranks[row(e) as usize] = rank;
        }
        i = j;
    }
}

/// Spearman's rank correlation: Pearson's over average ranks (so ties are handled).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    Ranker::default().rank(x, y).spearman
}

/// How the pairs of rows order under x and under y.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairCounts {
    /// All pairs: n (n - 1) / 2.
    pub pairs: u64,
    /// Pairs that x and y order the same way (neither tied).
    pub concordant: u64,
    /// Pairs that x and y order oppositely (neither tied).
    pub discordant: u64,
    /// Pairs tied in x (including those tied in both).
    pub tied_x: u64,
    /// Pairs tied in y (including those tied in both).
    pub tied_y: u64,
}

impl PairCounts {
    /// Counts in O(n log n) (Knight's algorithm: sort by x then y, count the swaps a merge
    /// sort by y makes; each swap is one discordant pair). None if a value is not finite.
    pub fn of(x: &[f64], y: &[f64]) -> Option<PairCounts> {
        Ranker::default().rank(x, y).counts
    }

    /// Kendall's tau-b: (C - D) / sqrt((P - Tx)(P - Ty)); None when either side is constant.
    pub fn kendall_tau_b(&self) -> Option<f64> {
        let denom = ((self.pairs - self.tied_x) as f64) * ((self.pairs - self.tied_y) as f64);
        if denom > 0.0 {
            let tau = (self.concordant as f64 - self.discordant as f64) / denom.sqrt();
            Some(tau.clamp(-1.0, 1.0))
        } else {
            None
        }
    }

    /// Share of the pairs ordered the same way by x and y, among pairs tied in neither; None
    /// when there is no such pair.
    pub fn order_accuracy(&self) -> Option<f64> {
        let ordered = self.concordant + self.discordant;
        (ordered > 0).then(|| self.concordant as f64 / ordered as f64)
    }
}

/// Kendall's tau-b of x and y, ties handled.
pub fn kendall_tau(x: &[f64], y: &[f64]) -> Option<f64> {
    PairCounts::of(x, y)?.kendall_tau_b()
}

/// Share of the pairs that x (predictions) and y (targets) order the same way, ties in
/// either excluded.
pub fn pairwise_order_accuracy(x: &[f64], y: &[f64]) -> Option<f64> {
    PairCounts::of(x, y)?.order_accuracy()
}

/// Whether the row with the highest x (prediction) has the highest y (target): the model
/// picks the generation's best segment. False when the highest prediction is shared (the
/// model singles out no segment); a tie for the highest target accepts any of the tied rows.
/// None for fewer than two rows (nothing to pick between).
pub fn top_segment_match(x: &[f64], y: &[f64]) -> Option<bool> {
    if x.len() < 2 || x.len() != y.len() || !all_finite(x) || !all_finite(y) {
        return None;
    }
    let max_x = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let max_y = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut tops = x.iter().zip(y).filter(|(&a, _)| a == max_x);
    let first = tops.next().map(|(_, &b)| b);
    Some(tops.next().is_none() && first == Some(max_y))
}

/// The share of the sum of `values` carried by the largest `ceil(fraction * n)` of them
/// (at least one). None for no rows, a zero sum, a fraction outside (0, 1] or a non-finite
/// value. `values` is reordered.
pub fn top_share(values: &mut [f64], fraction: f64) -> Option<f64> {
    top_shares(values, &[fraction])[0]
}

/// [`top_share`] for each of `fractions`, from one sort of `values`.
pub fn top_shares(values: &mut [f64], fractions: &[f64]) -> Vec<Option<f64>> {
    let n = values.len();
    if n == 0 || !all_finite(values) {
        return vec![None; fractions.len()];
    }
    // Sorted, then summed in that order: the result does not depend on the order the values
    // arrived in (parallel partitions), to the last bit.
    values.par_sort_unstable_by(|a, b| b.total_cmp(a));
    let total: f64 = values.iter().sum();
    fractions
        .iter()
        .map(|&fraction| {
            if total == 0.0 || !(fraction > 0.0 && fraction <= 1.0) {
                return None;
            }
            let k = ((fraction * n as f64).ceil() as usize).clamp(1, n);
            Some(values[..k].iter().sum::<f64>() / total)
        })
        .collect()
}

/// Whether every value is finite (neither infinite nor NaN).
pub fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// Orders two optional metrics with None last (for sorting reports).
pub fn cmp_desc_none_last(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O(n^2) reference: the definitions, pair by pair.
    pub(super) fn naive_counts(x: &[f64], y: &[f64]) -> PairCounts {
        let mut c = PairCounts::default();
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                c.pairs += 1;
                let (dx, dy) = (x[i].partial_cmp(&x[j]).unwrap(), y[i].partial_cmp(&y[j]).unwrap());
                if dx == Ordering::Equal {
                    c.tied_x += 1;
                }
                if dy == Ordering::Equal {
                    c.tied_y += 1;
                }
                if dx != Ordering::Equal && dy != Ordering::Equal {
                    if dx == dy {
                        c.concordant += 1
                    } else {
                        c.discordant += 1
                    }
                }
            }
        }
        c
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("defined");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_computed_small_case() {
        // predictions 1, 2, 3, 4 against targets 1, 3, 2, 4: one discordant pair of six.
        let p = [1.0, 2.0, 3.0, 4.0];
        let t = [1.0, 3.0, 2.0, 4.0];
        let c = PairCounts::of(&p, &t).unwrap();
        assert_eq!((c.pairs, c.concordant, c.discordant), (6, 5, 1));
        close(kendall_tau(&p, &t), 4.0 / 6.0);
        close(pairwise_order_accuracy(&p, &t), 5.0 / 6.0);
        // d = 0, 1, -1, 0: 1 - 6 * 2 / (4 * 15) = 0.8
        close(spearman(&p, &t), 0.8);
        close(pearson(&p, &t), 0.8);
        assert_eq!(top_segment_match(&p, &t), Some(true));
        assert_eq!(top_segment_match(&[4.0, 1.0], &[1.0, 4.0]), Some(false));
    }

    #[test]
    fn ties_follow_tau_b() {
        // x = 1, 1, 2, 3; y = 1, 2, 2, 3. Pairs: (0,1) tied x; (1,2) tied y; the other four
        // are concordant. tau-b = 4 / sqrt((6-1)(6-1)) = 0.8; accuracy 4/4.
        let x = [1.0, 1.0, 2.0, 3.0];
        let y = [1.0, 2.0, 2.0, 3.0];
        let c = PairCounts::of(&x, &y).unwrap();
        assert_eq!(c, naive_counts(&x, &y));
        assert_eq!((c.concordant, c.discordant, c.tied_x, c.tied_y), (4, 0, 1, 1));
        close(kendall_tau(&x, &y), 0.8);
        close(pairwise_order_accuracy(&x, &y), 1.0);
        assert_eq!(average_ranks(&x), vec![1.5, 1.5, 3.0, 4.0]);
        // ranks 1.5,1.5,3,4 vs 1,2.5,2.5,4: pearson of those
        let (rx, ry) = ([1.5, 1.5, 3.0, 4.0], [1.0, 2.5, 2.5, 4.0]);
        close(spearman(&x, &y), pearson(&rx, &ry).unwrap());
        // both maxima at the last row
        assert_eq!(top_segment_match(&x, &y), Some(true));
        // a shared top prediction singles out nothing; a shared top target accepts either
        assert_eq!(top_segment_match(&[2.0, 2.0, 1.0], &[3.0, 1.0, 0.0]), Some(false));
        assert_eq!(top_segment_match(&[2.0, 1.0, 0.0], &[3.0, 3.0, 0.0]), Some(true));
    }

    #[test]
    fn undefined_is_none() {
        assert_eq!(kendall_tau(&[1.0], &[2.0]), None);
        assert_eq!(spearman(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[1.0], &[2.0]), None);
        assert_eq!(pairwise_order_accuracy(&[1.0], &[2.0]), None);
        assert_eq!(top_segment_match(&[1.0], &[2.0]), None);
        // constant predictions
        assert_eq!(kendall_tau(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pairwise_order_accuracy(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[f64::NAN, 1.0]), None);
        assert_eq!(top_share(&mut [], 0.1), None);
        assert_eq!(top_share(&mut [0.0, 0.0], 0.1), None);
    }

    #[test]
    fn ties_in_both_larger_than_the_rest() {
        // x all tied, y tied in one pair: found by proptest, where the counts' arithmetic
        // went below zero before it came back up.
        let c = PairCounts::of(&[0.0, 0.0, 0.0], &[0.0, 2.0, 2.0]).unwrap();
        assert_eq!(c, naive_counts(&[0.0, 0.0, 0.0], &[0.0, 2.0, 2.0]));
        assert_eq!(
            (c.pairs, c.tied_x, c.tied_y, c.concordant, c.discordant),
            (3, 3, 1, 0, 0)
        );
        assert_eq!(kendall_tau(&[0.0, 0.0, 0.0], &[0.0, 2.0, 2.0]), None);
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        // The total order puts -0.0 first and splits the rows with y = 1 apart, yet all
        // three are tied in x and rows 0 and 1 are tied in both.
        let (x, y) = ([0.0, -0.0, 0.0], [1.0, 1.0, -0.0]);
        let c = PairCounts::of(&x, &y).unwrap();
        assert_eq!(
            (c.pairs, c.tied_x, c.tied_y, c.concordant, c.discordant),
            (3, 3, 1, 0, 0)
        );
        assert_eq!(c, naive_counts(&x, &y));
        let c = PairCounts::of(&[-0.0, 0.0, 1.0], &[1.0, -0.0, 0.0]).unwrap();
        assert_eq!((c.tied_x, c.tied_y, c.concordant, c.discordant), (1, 1, 0, 1));
    }

    #[test]
    fn rows_past_the_parallel_threshold_count_as_the_definition() {
        // Enough rows for the sort and the merge sort's top levels to run on rayon's threads;
        // few distinct values, so every kind of tie occurs.
        let n = rank::PARALLEL_ROWS + 1500;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| ((i * 104_729) % 89) as f64 - 0.5 * ((i % 3) as f64))
            .collect();
        let m = Ranker::default().rank(&x, &y);
        assert_eq!(m.counts, Some(naive_counts(&x, &y)));
        assert_eq!(m.spearman, pearson(&average_ranks(&x), &average_ranks(&y)));
        assert!(m.spearman.is_some());
    }

    #[test]
    fn top_share_takes_the_largest() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).collect(); // sum 55
        close(top_share(&mut v, 0.1), 10.0 / 55.0);
        close(top_share(&mut v, 0.25), 27.0 / 55.0); // ceil(2.5) = 3: 10 + 9 + 8
        close(top_share(&mut v, 1.0), 1.0);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Scores with many ties (a few distinct values) or none (continuous).
    fn scores() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (2usize..60).prop_flat_map(|n| {
            let value = prop_oneof![(-3i32..4).prop_map(f64::from), -10.0f64..10.0, Just(-0.0)];
            (
                proptest::collection::vec(value.clone(), n),
                proptest::collection::vec(value, n),
            )
        })
    }

    proptest! {
        #[test]
        fn total_order_keys_order_as_total_cmp(a in any::<f64>(), b in any::<f64>()) {
            prop_assert_eq!(total_order_key(a).cmp(&total_order_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_total_order_key(total_order_key(a)).to_bits(), a.to_bits());
        }

        #[test]
        fn rank_metrics_lie_in_their_ranges((p, t) in scores()) {
            for v in [kendall_tau(&p, &t), spearman(&p, &t), pearson(&p, &t)].into_iter().flatten() {
                prop_assert!((-1.0..=1.0).contains(&v), "{v}");
            }
            if let Some(a) = pairwise_order_accuracy(&p, &t) {
                prop_assert!((0.0..=1.0).contains(&a));
            }
        }

        #[test]
        fn rank_metrics_ignore_monotone_transforms_of_predictions((p, t) in scores()) {
            // strictly increasing: keeps every order and every tie
            let q: Vec<f64> = p.iter().map(|x| (x / 4.0).exp() * 3.0 + 1.0).collect();
            prop_assert_eq!(PairCounts::of(&p, &t), PairCounts::of(&q, &t));
            prop_assert_eq!(kendall_tau(&p, &t), kendall_tau(&q, &t));
            prop_assert_eq!(pairwise_order_accuracy(&p, &t), pairwise_order_accuracy(&q, &t));
            prop_assert_eq!(top_segment_match(&p, &t), top_segment_match(&q, &t));
            match (spearman(&p, &t), spearman(&q, &t)) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12),
                (a, b) => prop_assert_eq!(a, b),
            }
            // reversing the predictions flips the sign
            let r: Vec<f64> = p.iter().map(|x| -x).collect();
            if let (Some(a), Some(b)) = (kendall_tau(&p, &t), kendall_tau(&r, &t)) {
                prop_assert!((a + b).abs() < 1e-12);
            }
        }

        #[test]
        fn knight_counts_equal_the_definition((p, t) in scores()) {
            prop_assert_eq!(PairCounts::of(&p, &t).unwrap(), super::tests::naive_counts(&p, &t));
        }

        #[test]
        fn parts_sorted_then_merged_rank_as_the_whole((p, t) in scores(), cuts in proptest::collection::vec(0usize..60, 0..4)) {
            // A sample in consecutive parts (some empty), each sorted on its own and merged,
            // gives the rows, the ranks and the pairs of one sort of the whole.
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(p.len())).collect();
            cuts.sort_unstable();
            let bounds: Vec<usize> = std::iter::once(0).chain(cuts).chain([p.len()]).collect();
            let parts: Vec<Vec<RankedRow>> = bounds
                .windows(2)
                .map(|w| {
                    let mut rows = Vec::new();
                    sort_rows(&p[w[0]..w[1]], &t[w[0]..w[1]], &mut rows, w[0] % 2 == 0);
                    rows
                })
                .collect();
            let mut whole = Ranker::default();
            let expected = whole.rank(&p, &t);
            let mut merged = Ranker::default();
            let finite = all_finite(&p) && all_finite(&t);
            prop_assert_eq!(merged.rank_presorted(merge_sorted(parts), finite), expected);
            prop_assert_eq!(merged.by_x(), whole.by_x());
        }

        #[test]
        fn one_ranker_reused_gives_each_input_its_own_metrics(inputs in proptest::collection::vec(scores(), 1..5)) {
            // One sort by (x, y) and one merge sort by y give the ranks that separate sorts
            // give (bit for bit) and the pairs' definitions; buffers carry nothing over.
            let mut ranker = Ranker::default();
            for (p, t) in &inputs {
                let m = ranker.rank(p, t);
                prop_assert_eq!(m.counts, Some(super::tests::naive_counts(p, t)));
                prop_assert_eq!(m.spearman, pearson(&average_ranks(p), &average_ranks(t)));
                let by_x: Vec<usize> = ranker.by_x().iter().map(|e| e.2 as usize).collect();
                let mut expected: Vec<usize> = (0..p.len()).collect();
                expected.sort_by(|&a, &b| {
                    (p[a] + 0.0).total_cmp(&(p[b] + 0.0)).then((t[a] + 0.0).total_cmp(&(t[b] + 0.0))).then(a.cmp(&b))
                });
                prop_assert_eq!(by_x, expected);
            }
        }

        #[test]
        fn mse_is_bias_squared_plus_residual_variance((p, t) in scores()) {
            let mut m = crate::loss::Moments::default();
            for (a, b) in p.iter().zip(&t) {
                m.push(*b, *a, 0.0);
            }
            let r = m.metrics();
            let (mse, bias, var) = (r.mse.unwrap(), r.bias.unwrap(), r.residual_variance.unwrap());
            prop_assert!((mse - (bias * bias + var)).abs() <= 1e-9 * mse.max(1.0), "{mse} {bias} {var}");
        }
    }
}
