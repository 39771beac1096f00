//! Key ranges: sorted input cut into partitions by generation id where the footers' row-group
//! statistics allow, so that each range is windowed, checked, evaluated and written by its own
//! partition, side by side, with no merge.
//!
//! Without this, DataFusion groups sorted files into order-preserving file groups by their
//! min/max chains (interleaved, not ranges) and merges them back into one order with an
//! order-preserving hash repartition before the window: that merge runs on one core. Here the
//! row groups of all files, in generation-id order, are cut into pieces wherever a cut can go:
//! between row groups where every generation id before is below every one after (footer
//! min/max), or, where one generation runs on from a row group into the next, after that
//! generation's first rows in the next (read from the file); and inside a row group of more than
//! [`PIECE_ROWS`] rows whose footer locates its pages (an offset index, so that each piece reads
//! its own pages only), at the first generation boundary past each [`PIECE_ROWS`] rows (read
//! from its key column, such row groups side by side); and, where no cut comes near a k-th of
//! the rows (k up to [`BALANCE_PARTS`]), inside the row group there, at the first generation
//! boundary from that row on, so that the ranges of a few threads hold about equal rows. Each
//! partition then reads a run of whole pieces, about equal numbers of rows each. The pieces depend on the files alone, and
//! each is read on its own, so the scan's batches (and the model's, cut from them) are the same
//! whatever the number of partitions: so are the predictions, bit for bit.
//!
//! The scan declares the ranges as DataFusion's range partitioning on the generation id and
//! each range's rows in (generation id, segment index) order, which the window's requirement
//! accepts as it is. Both declarations are trusted by DataFusion, so the job verifies them as
//! rows flow: each partition checks its rows' key order (as for any sorted input) and that its
//! generation ids lie within its range ([`KeyRangeExec`]); a row outside is an error, or, where the
//! order was only taken from the footers, a fallback to the sort path.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use datafusion::prelude::SessionContext;

use crate::engine::footer::{KeyBound, RowGroupKeys};
use crate::engine::tables::file_url;
use crate::error::Result;

mod check;
mod cuts;
pub mod read;
mod scan;

pub use cuts::BALANCE_PARTS;
pub use scan::{KeyRangeExec, KeyRangeTable};

use cuts::{add_balance_cuts, read_cuts_inside, read_leading};

/// A run of one file's rows between two cuts: row groups, the first and last possibly in part.
/// Each piece is read as a file of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The file's index in the list given to [`plan_ranges`].
    pub file: usize,
    /// Its row groups.
    pub row_groups: Range<usize>,
    /// Rows skipped at the start of the first row group (the piece before reads them).
    pub skip: u64,
    /// Rows read of the last row group, when not all (the piece after reads the rest).
    pub take: Option<u64>,
}

/// Sorted input cut into key ranges: each range's pieces in order, and the first generation id
/// of every range after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRanges {
    /// The pieces of each range, in key order.
    pub groups: Vec<Vec<Piece>>,
    /// Where each range after the first starts.
    pub splits: Vec<KeyBound>,
}

/// What [`plan_ranges`] asks of a row group where one generation runs on from the row group
/// before: how many rows at its start share its first generation id, and the id after them
/// (None when the whole row group is that generation, or it cannot be read).
pub type Leading<'a> = dyn FnMut(usize, usize) -> Option<(u64, KeyBound)> + 'a;

/// What [`plan_ranges`] asks of every row group: where it may be cut inside, at generation
/// boundaries ([`cuts_inside`](read::cuts_inside): rows before the cut, the id there, in order; empty for none).
pub type Inside<'a> = dyn FnMut(usize, usize) -> Vec<(u64, KeyBound)> + 'a;

/// The rows of the pieces that a row group larger than this is cut into, where its footer
/// locates its pages (at generation boundaries, [`cuts_inside`](read::cuts_inside)): so that a file of a few large
/// row groups (pyarrow puts up to 1Mi rows in one) runs on every core. A constant, so the pieces
/// depend on each row group alone, whatever the threads or the other files; row groups of up to
/// 64Ki rows (DataFusion's and segscore's writers, the benchmarks' files) are left whole but for
/// the cuts that balance the ranges ([`BALANCE_PARTS`]).
pub const PIECE_ROWS: u64 = 64 * 1024;

/// Cuts files (each given by its row groups' generation-id ranges, [`RowGroupKeys`]) into
/// pieces wherever a cut can go (see the module's text; `leading` reads where one generation
/// runs on into a row group, `inside` where a row group is cut inside), and groups the pieces
/// into at most `partitions` key ranges of about equal rows. None when it cannot be done from
/// the statistics: a row group without exact statistics, or row groups that overlap once the
/// files are put in key order (a file whose row groups are not in order, or files whose ranges
/// interleave). One range (no cut, or one partition) still reads the pieces, so that the
/// batches do not depend on `partitions`.
pub fn plan_ranges(
    files: &[&[Option<RowGroupKeys>]],
    partitions: usize,
    leading: &mut Leading<'_>,
    inside: &mut Inside<'_>,
) -> Option<KeyRanges> {
    let seq = in_key_order(files)?;
    // The cuts, in order: (row group j, rows into it, the id the next piece starts at, rows
    // before).
    let mut cuts: Vec<(usize, u64, KeyBound, u64)> = Vec::new();
    let mut before = 0u64;
    for (j, &(file, rg, keys)) in seq.iter().enumerate() {
        // Rows of row group j before the last cut in it.
        let mut cut_at = 0;
        if j > 0 {
            if seq[j - 1].2.max < keys.min {
                cuts.push((j, 0, keys.min.clone(), before));
            } else if let Some((n, next)) = leading(file, rg).filter(|(n, _)| *n > 0 && *n < keys.rows) {
                // One generation runs on into row group j: cut after its rows there.
                cuts.push((j, n, next, before + n));
                cut_at = n;
            }
        }
        for (n, next) in inside(file, rg) {
            if n > cut_at && n < keys.rows {
                cuts.push((j, n, next, before + n));
                cut_at = n;
            }
        }
        before += keys.rows;
    }
    // The pieces between the cuts (one per file they touch), with the rows before each run.
    let start = std::iter::once((0, 0)).chain(cuts.iter().map(|c| (c.0, c.1)));
    let end = cuts.iter().map(|c| (c.0, c.1)).chain([(seq.len(), 0)]);
    let runs: Vec<Vec<Piece>> = start
        .zip(end)
        .map(|((j0, skip), (j1, take))| {
            let last = if take > 0 { j1 + 1 } else { j1 };
            let mut pieces: Vec<Piece> = Vec::new();
            for (j, &(file, rg, _)) in seq.iter().enumerate().take(last).skip(j0) {
                let take = (j == j1).then_some(take);
                match pieces.last_mut() {
                    Some(p) if p.file == file => {
                        p.row_groups.end = rg + 1;
                        p.take = take;
                    }
                    _ => pieces.push(Piece {
                        file,
                        row_groups: rg..rg + 1,
                        skip: if j == j0 { skip } else { 0 },
                        take,
                    }),
                }
            }
            pieces
        })
        .collect();
    // Ranges of whole runs: for each ideal boundary (k/partitions of the rows), the cut nearest
    // to it after the last one taken.
    let total: u64 = seq.iter().map(|s| s.2.rows).sum();
    let mut taken: Vec<usize> = Vec::new();
    let mut c = 0;
    for k in 1..partitions.max(1) as u64 {
        let ideal = total * k / partitions as u64;
        let distance = |i: usize| cuts[i].3.abs_diff(ideal);
        if c >= cuts.len() {
            break;
        }
        while c + 1 < cuts.len() && distance(c + 1) <= distance(c) {
            c += 1;
        }
        taken.push(c);
        c += 1;
    }
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(taken.iter().map(|&c| c + 1))
        .chain([runs.len()])
        .collect();
    let groups = bounds.windows(2).map(|w| runs[w[0]..w[1]].concat()).collect();
    let splits = taken.iter().map(|&c| cuts[c].2.clone()).collect();
    Some(KeyRanges { groups, splits })
}

/// Every row group of `files` in key order, (file, row group, its keys): the files by their
/// first row group's smallest id. None as [`plan_ranges`] gives it: no row group, one without
/// exact statistics, or row groups that overlap in that order.
fn in_key_order<'a>(files: &[&'a [Option<RowGroupKeys>]]) -> Option<Vec<(usize, usize, &'a RowGroupKeys)>> {
    let keys: Vec<Vec<&RowGroupKeys>> = files
        .iter()
        .map(|f| f.iter().map(Option::as_ref).collect::<Option<Vec<_>>>())
        .collect::<Option<_>>()?;
    let mut order: Vec<usize> = (0..files.len()).filter(|&f| !keys[f].is_empty()).collect();
    order.sort_by(|&a, &b| keys[a][0].min.cmp(&keys[b][0].min));
    let seq: Vec<(usize, usize, &RowGroupKeys)> = order
        .iter()
        .flat_map(|&f| keys[f].iter().enumerate().map(move |(rg, k)| (f, rg, *k)))
        .collect();
    if seq.is_empty() || seq.windows(2).any(|w| w[1].2.min < w[0].2.max) {
        return None;
    }
    Some(seq)
}

/// `table`, a listing table over `files` (each with its row groups' ranges of the first of
/// `keys`, [`crate::engine::footer::row_group_keys`], and in `footers` its footer where it was
/// read already: the others are read where a cut needs them) declared sorted by `keys`, cut into
/// pieces and at most one key range per partition of `ctx` ([`plan_ranges`]); None where the
/// footers do not allow it. With fewer ranges than partitions, `ctx` keeps the ranges rather than
/// repartition to reach the thread count.
pub fn key_range_table(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
    files: &[(&Path, &[Option<RowGroupKeys>])],
    mut footers: Vec<Option<ArrowReaderMetadata>>,
    keys: Vec<String>,
) -> Result<Option<KeyRangeTable>> {
    let Some(first) = keys.first() else {
        return Ok(None);
    };
    let partitions = ctx.state().config().target_partitions();
    let ranges: Vec<&[_]> = files.iter().map(|f| f.1).collect();
    // Whether the footers allow ranges at all, before anything is read.
    if plan_ranges(&ranges, partitions, &mut |_, _| None, &mut |_, _| Vec::new()).is_none() {
        return Ok(None);
    }
    footers.resize(files.len(), None);
    let (mut inside, unlocated) = read_cuts_inside(files, first, &mut footers);
    // The row groups in key order (there are some: `plan_ranges` found them above).
    let Some(seq) = in_key_order(&ranges) else {
        return Ok(None);
    };
    add_balance_cuts(files, &seq, first, &mut footers, &mut inside);
    let leading = read_leading(files, &seq, first, &mut footers);
    let mut leading = |file: usize, rg: usize| leading.get(&(file, rg)).cloned().flatten();
    let mut inside = |file: usize, rg: usize| inside.get(&(file, rg)).cloned().unwrap_or_default();
    let Some(ranges) = plan_ranges(&ranges, partitions, &mut leading, &mut inside) else {
        return Ok(None);
    };
    let located = files
        .iter()
        .map(|(path, keys)| {
            let rows = keys.iter().map(|k| k.as_ref().map_or(0, |k| k.rows)).collect();
            Ok((file_url(path)?.prefix().as_ref().to_string(), rows))
        })
        .collect::<Result<Vec<_>>>()?;
    let n = ranges.groups.len();
    if let (true, Some(&(file, rg))) = (n < partitions, unlocated.first()) {
        // Fewer ranges than threads, and a large row group that could not be cut: say why.
        tracing::info!(
            file = %files[file].0.display(),
            row_group = rg,
            ranges = n,
            threads = partitions,
            "a row group of more than 64Ki rows without a page index (offset index) is read whole, by one thread; files written with one (pyarrow: write_page_index=True) are cut inside such row groups and spread over the threads"
        );
    }
    tracing::debug!(
        ranges = n,
        "sorted input cut into key ranges by the footers' statistics"
    );
    if n < partitions {
        set_repartition_threshold(ctx, n);
    }
    Ok(Some(KeyRangeTable::new(table, ranges, located, keys)))
}

/// Sets the partition count from which DataFusion keeps a partitioning that already satisfies
/// an operator rather than repartition to reach the thread count (key ranges fewer than the
/// threads are kept at `n`).
pub fn set_repartition_threshold(ctx: &SessionContext, n: usize) {
    let state = ctx.state_ref();
    state
        .write()
        .config_mut()
        .options_mut()
        .optimizer
        .subset_repartition_threshold = n;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rg(min: i64, max: i64, rows: u64) -> Option<RowGroupKeys> {
        Some(RowGroupKeys {
            min: KeyBound::Int(min),
            max: KeyBound::Int(max),
            rows,
        })
    }

    fn whole(file: usize, row_groups: Range<usize>) -> Piece {
        Piece {
            file,
            row_groups,
            skip: 0,
            take: None,
        }
    }

    /// No row group is read for its leading rows.
    fn unread(_: usize, _: usize) -> Option<(u64, KeyBound)> {
        None
    }

    /// No row group is cut inside.
    fn uncut(_: usize, _: usize) -> Vec<(u64, KeyBound)> {
        Vec::new()
    }

    #[test]
    fn files_are_put_in_key_order_cut_at_clean_breaks_and_grouped_into_balanced_ranges() {
        // Given out of order; file 1 holds ids 0..=9, file 0 ids 10..=29 in two row groups.
        let f0 = [rg(10, 19, 100), rg(20, 29, 100)];
        let f1 = [rg(0, 9, 100)];
        let r = plan_ranges(&[&f0, &f1], 3, &mut unread, &mut uncut).unwrap();
        assert_eq!(
            r.groups,
            vec![vec![whole(1, 0..1)], vec![whole(0, 0..1)], vec![whole(0, 1..2)]]
        );
        assert_eq!(r.splits, vec![KeyBound::Int(10), KeyBound::Int(20)]);
        // Two ranges: the cut nearest half the rows (after 100 or after 200 of 300: a tie goes
        // to the later); the pieces stay as they were.
        let r = plan_ranges(&[&f0, &f1], 2, &mut unread, &mut uncut).unwrap();
        assert_eq!(r.splits, vec![KeyBound::Int(20)]);
        assert_eq!(
            r.groups,
            vec![vec![whole(1, 0..1), whole(0, 0..1)], vec![whole(0, 1..2)]]
        );
        // One partition: one range, the same pieces.
        let r = plan_ranges(&[&f0, &f1], 1, &mut unread, &mut uncut).unwrap();
        assert_eq!(r.splits, vec![]);
        assert_eq!(
            r.groups,
            vec![vec![whole(1, 0..1), whole(0, 0..1), whole(0, 1..2)]]
        );
    }

    #[test]
    fn a_generation_across_row_groups_or_files_is_cut_after_its_rows() {
        // Generation 5 ends row group 0 of file 0 and starts row group 1 (its first 30 rows);
        // generation 9 ends file 0 and starts file 1, whose first row group cannot be read.
        let f0 = [rg(0, 5, 100), rg(5, 9, 100)];
        let f1 = [rg(9, 12, 100), rg(13, 20, 100)];
        let mut asked = Vec::new();
        let mut leading = |file: usize, rg: usize| {
            asked.push((file, rg));
            match (file, rg) {
                (0, 1) => Some((30, KeyBound::Int(6))),
                _ => None,
            }
        };
        let r = plan_ranges(&[&f0, &f1], 4, &mut leading, &mut uncut).unwrap();
        // Cuts after 130 rows (id 6) and 300 (id 13): three pieces of runs, two ranges used.
        assert_eq!(r.splits, vec![KeyBound::Int(6), KeyBound::Int(13)]);
        let head = Piece {
            file: 0,
            row_groups: 0..2,
            skip: 0,
            take: Some(30),
        };
        let tail = Piece {
            file: 0,
            row_groups: 1..2,
            skip: 30,
            take: None,
        };
        assert_eq!(
            r.groups,
            vec![
                vec![head.clone()],
                vec![tail.clone(), whole(1, 0..1)],
                vec![whole(1, 1..2)]
            ]
        );
        // With one partition: the same pieces, in one range.
        let one = plan_ranges(&[&f0, &f1], 1, &mut leading, &mut uncut).unwrap();
        assert_eq!(one.groups, vec![vec![head, tail, whole(1, 0..1), whole(1, 1..2)]]);
        assert_eq!(
            asked,
            vec![(0, 1), (1, 0), (0, 1), (1, 0)],
            "only where a generation runs on"
        );
    }

    #[test]
    fn no_ranges_without_exact_statistics_in_order() {
        let no = |files: &[&[Option<RowGroupKeys>]], n| plan_ranges(files, n, &mut unread, &mut uncut);
        assert_eq!(
            no(&[&[rg(0, 9, 10), None]], 2),
            None,
            "a row group without statistics"
        );
        assert_eq!(
            no(&[&[rg(0, 9, 10), rg(5, 19, 10)]], 2),
            None,
            "overlapping row groups"
        );
        assert_eq!(
            no(&[&[rg(0, 9, 10)], &[rg(5, 19, 10)]], 2),
            None,
            "interleaved files"
        );
        // No place to cut: one range of one piece.
        let r = no(&[&[rg(0, 9, 10), rg(9, 19, 10)]], 2).unwrap();
        assert_eq!((r.groups, r.splits), (vec![vec![whole(0, 0..2)]], vec![]));
        let whole_group = |_: usize, _: usize| Some((10, KeyBound::Int(10)));
        let r = plan_ranges(
            &[&[rg(0, 9, 10), rg(9, 9, 10)]],
            2,
            &mut { whole_group },
            &mut uncut,
        )
        .unwrap();
        assert_eq!(
            r.splits,
            vec![],
            "the whole row group is the generation that runs on"
        );
        let strings = [Some(RowGroupKeys {
            min: KeyBound::Bytes(b"a".to_vec()),
            max: KeyBound::Bytes(b"m".to_vec()),
            rows: 5,
        })];
        let more = [Some(RowGroupKeys {
            min: KeyBound::Bytes(b"n".to_vec()),
            max: KeyBound::Bytes(b"z".to_vec()),
            rows: 5,
        })];
        assert_eq!(
            no(&[&more, &strings], 2).unwrap().splits,
            vec![KeyBound::Bytes(b"n".to_vec())]
        );
    }

    #[test]
    fn a_large_row_group_is_cut_inside_after_any_cut_for_the_generation_that_runs_on() {
        // File 0: row group 0 of 100 rows (ids 0..=9), row group 1 of 300 rows (ids 9..=40),
        // whose first 20 rows finish generation 9, and which is cut inside after 20 (a cut at
        // or before the leading rows is dropped), 120 and 220 rows.
        let f0 = [rg(0, 9, 100), rg(9, 40, 300)];
        let mut leading = |_: usize, rg: usize| (rg == 1).then_some((20, KeyBound::Int(10)));
        let mut inside = |_: usize, rg: usize| {
            if rg == 1 {
                [(10, 10), (20, 10), (120, 20), (220, 30)]
                    .map(|(n, id)| (n, KeyBound::Int(id)))
                    .to_vec()
            } else {
                Vec::new()
            }
        };
        let r = plan_ranges(&[&f0], 4, &mut leading, &mut inside).unwrap();
        let part = |skip, take| Piece {
            file: 0,
            row_groups: 1..2,
            skip,
            take,
        };
        let head = Piece {
            file: 0,
            row_groups: 0..2,
            skip: 0,
            take: Some(20),
        };
        // 400 rows in four ranges: the cuts after 120, 220 and 320 rows.
        assert_eq!(r.splits, [10, 20, 30].map(KeyBound::Int).to_vec());
        assert_eq!(
            r.groups,
            vec![
                vec![head.clone()],
                vec![part(20, Some(120))],
                vec![part(120, Some(220))],
                vec![part(220, None)]
            ]
        );
        // Two ranges: the same pieces, split at the cut nearest 200 rows (220 of 400).
        let two = plan_ranges(&[&f0], 2, &mut leading, &mut inside).unwrap();
        assert_eq!(two.splits, vec![KeyBound::Int(20)]);
        assert_eq!(
            two.groups,
            vec![
                vec![head, part(20, Some(120))],
                vec![part(120, Some(220)), part(220, None)]
            ]
        );
    }
}
