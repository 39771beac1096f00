//! The rank metrics' sorts: [`Ranker`] sorts the rows once by (x, y) and merge-sorts them once
//! by y, which gives both sides' average ranks (Spearman), the pair counts (Kendall's tau-b,
//! order accuracy) and the order by x the calibration reads.

use rayon::prelude::*;

use super::{pearson, total_order_key, PairCounts};

/// The rank metrics of x against y.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankMetrics {
    /// [`PairCounts`]; None if the lengths differ or a value is not finite.
    pub counts: Option<PairCounts>,
    /// Spearman's rank correlation; None under fewer than two rows, a constant side, or as
    /// `counts`.
    pub spearman: Option<f64>,
}

/// A row in [`Ranker`]'s order: x's key, y's key ([`total_order_key`] of the value plus 0.0,
/// so -0.0 and 0.0 tie) and the row's index.
pub type RankedRow = (u64, u64, u32);

/// Computes [`RankMetrics`] from one sort by (x, y) and one merge sort by y (Knight's
/// algorithm): the first sort's runs of equal x give x's average ranks and the pairs tied in
/// x (and in both), the merge sort counts the discordant pairs and leaves y's order, whose
/// runs give y's ranks. Keeps its buffers from one call to the next (one per generation).
#[derive(Debug, Default)]
pub struct Ranker {
    /// Sorted.
    xy: Vec<RankedRow>,
    /// (y's key, row), merge-sorted by key.
    y: Vec<(u64, u32)>,
    scratch: Vec<(u64, u32)>,
    rx: Vec<f64>,
    ry: Vec<f64>,
}

/// From this many rows on, [`Ranker`] sorts, and runs its independent steps, on rayon's threads.
pub(super) const PARALLEL_ROWS: usize = 1 << 14;

impl Ranker {
    /// The rank metrics of x against y. [`Ranker::by_x`] then lists the rows in x's order.
    pub fn rank(&mut self, x: &[f64], y: &[f64]) -> RankMetrics {
        if x.len() != y.len() {
            self.xy.clear();
            return RankMetrics::default();
        }
        sort_rows(x, y, &mut self.xy, true);
        self.rank_sorted(super::all_finite(x) && super::all_finite(y), |_| ())
            .0
    }

    /// [`Ranker::rank`] given its first step done: `xy`, the rows of x and y as [`sort_rows`]
    /// sorts them (for a sample in parts, [`merge_sorted`] of each part's), and whether every
    /// value of x and y is finite.
    pub fn rank_presorted(&mut self, xy: Vec<RankedRow>, finite: bool) -> RankMetrics {
        self.rank_presorted_with(xy, finite, |_| ()).0
    }

    /// [`Ranker::rank_presorted`], and `by_x` of the rows in x's order ([`Ranker::by_x`]), run
    /// beside the rank metrics' merge sort by y (on rayon's threads from 16Ki rows on).
    pub fn rank_presorted_with<T: Send>(
        &mut self,
        xy: Vec<RankedRow>,
        finite: bool,
        by_x: impl FnOnce(&[RankedRow]) -> T + Send,
    ) -> (RankMetrics, T) {
        self.xy = xy;
        self.rank_sorted(finite, by_x)
    }

    /// The rank metrics from the rows sorted by (x, y) in `self.xy` (none unless `finite`), and
    /// `also` of those rows, read beside the merge sort by y.
    fn rank_sorted<T: Send>(
        &mut self,
        finite: bool,
        also: impl FnOnce(&[RankedRow]) -> T + Send,
    ) -> (RankMetrics, T) {
        let n = self.xy.len();
        if !finite {
            return (RankMetrics::default(), also(&self.xy));
        }
        // x's side (its ties and average ranks) reads the sorted rows while the merge sort by
        // y counts the discordant pairs; then y's ties and ranks: side by side on rayon's
        // threads from PARALLEL_ROWS rows on (a generation's few rows stay on the caller).
        let par = n >= PARALLEL_ROWS;
        let Ranker {
            xy,
            y,
            scratch,
            rx,
            ry,
        } = self;
        let ((tied_x, tied_both, also), discordant) = join_if(
            par,
            || {
                let (mut tied_x, mut tied_both) = (0u64, 0u64);
                for same_x in xy.chunk_by(|a, b| a.0 == b.0) {
                    tied_x += pairs_in(same_x.len() as u64);
                    tied_both += tied_pairs(same_x, |a, b| a.1 == b.1);
                }
                super::ranks_of_sorted(xy, |e| e.0, |e| e.2, rx);
                (tied_x, tied_both, also(xy))
            },
            || {
                // Both buffers written on rayon's threads when large (fresh pages cost as much
                // as the copy).
                if par {
                    rayon::join(
                        || xy.par_iter().map(|e| (e.1, e.2)).collect_into_vec(y),
                        || (0..n).into_par_iter().map(|_| (0, 0)).collect_into_vec(scratch),
                    );
                } else {
                    y.clear();
                    y.extend(xy.iter().map(|e| (e.1, e.2)));
                    scratch.clear();
                    scratch.resize(n, (0, 0));
                }
                merge_count(y, scratch, false)
            },
        );
        let (tied_y, ()) = join_if(
            par,
            || tied_pairs(y, |a, b| a.0 == b.0),
            || super::ranks_of_sorted(y, |e| e.0, |e| e.1, ry),
        );
        let pairs = pairs_in(n as u64);
        // Pairs tied in neither, less the discordant ones; every partial result is a count
        // of pairs, so none of the subtractions can go below zero.
        let concordant = pairs + tied_both - tied_x - tied_y - discordant;
        let metrics = RankMetrics {
            counts: Some(PairCounts {
                pairs,
                concordant,
                discordant,
                tied_x,
                tied_y,
            }),
            spearman: pearson(rx, ry),
        };
        (metrics, also)
    }

    /// The rows of the last [`Ranker::rank`] by x, ties by y, then by row.
    pub fn by_x(&self) -> &[RankedRow] {
        &self.xy
    }
}

/// `a` and `b` side by side on rayon's threads if `par`, else one after the other here.
fn join_if<A: Send, B: Send>(
    par: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if par {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// Writes into `xy` the rows of x and y, each as [`RankedRow`] (its index counted from 0), in
/// ascending order: the order of [`Ranker::by_x`]. From 16Ki rows on, on rayon's threads if
/// `parallel` (else on this one, leaving them to others).
pub fn sort_rows(x: &[f64], y: &[f64], xy: &mut Vec<RankedRow>, parallel: bool) {
    xy.clear();
    // -0.0 + 0.0 is 0.0: the keys (total order) then tie exactly what `==` ties.
    let keys =
        |(i, (a, b)): (usize, (&f64, &f64))| (total_order_key(a + 0.0), total_order_key(b + 0.0), i as u32);
    if parallel && x.len() >= PARALLEL_ROWS {
        x.par_iter().zip(y).enumerate().map(keys).collect_into_vec(xy);
        xy.par_sort_unstable();
    } else {
        xy.extend(x.iter().zip(y).enumerate().map(keys));
        xy.sort_unstable();
    }
}

/// The rows of consecutive parts of a sample, each part's sorted by [`sort_rows`] (indices
/// counted from the part's first row), as [`sort_rows`] sorts the whole: each part's indices
/// moved past the rows of the parts before it, then the parts merged (pairwise, in parallel).
pub fn merge_sorted(mut parts: Vec<Vec<RankedRow>>) -> Vec<RankedRow> {
    let mut offset = 0u32;
    for part in &mut parts {
        if offset > 0 {
            part.par_iter_mut().for_each(|e| e.2 += offset);
        }
        offset += part.len() as u32;
    }
    while parts.len() > 1 {
        let mut next = Vec::with_capacity(parts.len().div_ceil(2));
        let mut it = parts.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => {
                    let mut to = vec![(0, 0, 0); a.len() + b.len()];
                    merge_into(&a, &b, &mut to);
                    to
                }
                None => a,
            });
        }
        parts = next;
    }
    parts.pop().unwrap_or_default()
}

/// Merges the ascending runs `a` and `b` into `to`: split at the larger run's middle element
/// (what is below it in the other run goes left), the halves side by side, from
/// [`PARALLEL_ROWS`] rows on.
fn merge_into<T: Ord + Copy + Send + Sync>(a: &[T], b: &[T], to: &mut [T]) {
    if a.len() < b.len() {
        return merge_into(b, a, to);
    }
    if a.len() + b.len() < PARALLEL_ROWS || b.is_empty() {
        let (mut i, mut j) = (0, 0);
        for slot in to.iter_mut() {
            let take_b = j < b.len() && (i == a.len() || b[j] < a[i]);
            *slot = if take_b { b[j] } else { a[i] };
            j += take_b as usize;
            i += !take_b as usize;
        }
        return;
    }
    let mid = a.len() / 2;
    let cut = b.partition_point(|e| *e < a[mid]);
    let (lo, hi) = to.split_at_mut(mid + cut);
    rayon::join(
        || merge_into(&a[..mid], &b[..cut], lo),
        || merge_into(&a[mid..], &b[cut..], hi),
    );
}

/// The pairs among `k` rows.
fn pairs_in(k: u64) -> u64 {
    k * k.saturating_sub(1) / 2
}

/// The pairs within the runs of adjacent elements of `v` that `same` ties.
fn tied_pairs<T>(v: &[T], same: impl FnMut(&T, &T) -> bool) -> u64 {
    v.chunk_by(same).map(|run| pairs_in(run.len() as u64)).sum()
}

/// Sorts `v` by key, stably (a merge sort), and returns how many pairs were strictly out of
/// order; the sorted rows end in `scratch` if `into_scratch`, else in `v` (each level merges
/// from one buffer into the other). Halves of [`PARALLEL_ROWS`] rows or more sort on rayon's
/// threads; runs of up to 4 rows by insertion.
fn merge_count(v: &mut [(u64, u32)], scratch: &mut [(u64, u32)], into_scratch: bool) -> u64 {
    let n = v.len();
    if n <= 4 {
        // Each step left past a larger key is one pair out of order.
        let mut swaps = 0;
        for i in 1..n {
            let mut j = i;
            while j > 0 && v[j].0 < v[j - 1].0 {
                v.swap(j, j - 1);
                swaps += 1;
                j -= 1;
            }
        }
        if into_scratch {
            scratch.copy_from_slice(v);
        }
        return swaps;
    }
    let mid = n / 2;
    let swaps = {
        // The halves sort into the buffer this level merges from.
        let (l, r) = v.split_at_mut(mid);
        let (sl, sr) = scratch.split_at_mut(mid);
        let (a, b) = join_if(
            n >= PARALLEL_ROWS,
            || merge_count(l, sl, !into_scratch),
            || merge_count(r, sr, !into_scratch),
        );
        a + b
    };
    let (from, to) = if into_scratch {
        (&*v, scratch)
    } else {
        (&*scratch, v)
    };
    swaps + merge_halves(&from[..mid], &from[mid..], to)
}

/// Merges two sorted runs into `to`, left first on equal keys; returns the pairs out of order.
fn merge_halves(l: &[(u64, u32)], r: &[(u64, u32)], to: &mut [(u64, u32)]) -> u64 {
    let (mut i, mut j, mut k, mut swaps) = (0, 0, 0, 0u64);
    // Without branches (the keys' order is data, a branch on it mispredicts half the time):
    // r[j] first jumps every element left in the left run, each a pair out of order.
    while i < l.len() && j < r.len() {
        let (a, b) = (l[i], r[j]);
        let take_r = b.0 < a.0;
        to[k] = if take_r { b } else { a };
        swaps += take_r as u64 * (l.len() - i) as u64;
        j += take_r as usize;
        i += !take_r as usize;
        k += 1;
    }
    to[k..k + l.len() - i].copy_from_slice(&l[i..]);
    k += l.len() - i;
    to[k..].copy_from_slice(&r[j..]);
    swaps
}
