//! What the cuts read from the files ([`super::plan_ranges`]'s `leading` and `inside`): where a
//! generation runs on into a row group, how many of its rows that row group starts with; where
//! row groups are cut inside: row groups of more than [`PIECE_ROWS`] rows at generation
//! boundaries past every [`PIECE_ROWS`] rows, and any row group where a k-th of the rows falls
//! far from every other cut ([`BALANCE_PARTS`]), both only where the footer locates the row
//! group's pages. Each kind of read runs side by side on rayon's threads.

use std::collections::HashMap;
use std::path::Path;

use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;

use rayon::prelude::*;

use super::read::{cuts_inside, first_cut_from, leading_rows};
use super::PIECE_ROWS;
use crate::engine::footer::{read_footers, KeyBound, RowGroupKeys};

/// Key ranges are balanced for up to this many threads: wherever no cut comes within a
/// hundredth of the rows of a k-th of them (k = 2 to this), a row group is cut inside there
/// (`add_balance_cuts`).
pub const BALANCE_PARTS: u64 = 4;

/// Inputs of fewer rows are not cut for balance: their ranges are a row group or two each.
const BALANCE_MIN_ROWS: u64 = 2 * PIECE_ROWS;

/// Adds to `inside` a cut at every k-th of the rows (k = 2 to [`BALANCE_PARTS`], the row
/// groups in the key order `seq`) that no cut already comes near (within a hundredth of the rows; every row group's start
/// counts as one): inside the row group there, at the first generation boundary from that row
/// on ([`first_cut_from`]: read from that row on, the row groups side by side), if its footer
/// locates its pages. Without them the ranges of `--threads 2` over one file of 16 row groups
/// of 64Ki rows held 8 and 7.26 row groups (524,288 and 475,712 rows of 1M), and the larger ran
/// on alone for some 100 ms of a 1.6 s run. Like the other cuts these depend on the files
/// alone, whatever the threads. Footers read are kept in `footers`.
pub(super) fn add_balance_cuts(
    files: &[(&Path, &[Option<RowGroupKeys>])],
    seq: &[(usize, usize, &RowGroupKeys)],
    key: &str,
    footers: &mut [Option<ArrowReaderMetadata>],
    inside: &mut CutsInside,
) {
    // Each row group's first row, counted over all of them in key order.
    let starts: Vec<u64> = seq
        .iter()
        .scan(0u64, |before, s| {
            let start = *before;
            *before += s.2.rows;
            Some(start)
        })
        .collect();
    let total: u64 = seq.iter().map(|s| s.2.rows).sum();
    if total < BALANCE_MIN_ROWS {
        return;
    }
    let near = total / 100;
    let mut cuts: Vec<u64> = starts.clone();
    for (j, &(file, rg, _)) in seq.iter().enumerate() {
        for (n, _) in inside.get(&(file, rg)).into_iter().flatten() {
            cuts.push(starts[j] + n);
        }
    }
    let near_a_cut = |cuts: &[u64], target: u64| cuts.iter().any(|c| c.abs_diff(target) <= near);
    let row_group_of = |target: u64| starts.partition_point(|&s| s <= target) - 1;
    // The k-th parts that no cut comes near, each row group's first boundary from there read
    // side by side, then taken in order, each unless a cut taken before comes near it.
    let targets: Vec<u64> = (2..=BALANCE_PARTS)
        .flat_map(|k| (1..k).map(move |i| total * i / k))
        .filter(|&t| !near_a_cut(&cuts, t))
        .collect();
    read_missing_footers(
        files,
        footers,
        targets.iter().map(|&t| seq[row_group_of(t)].0).collect(),
    );
    let footers = &*footers;
    let found: Vec<Option<(u64, KeyBound)>> = targets
        .par_iter()
        .map(|&target| {
            let j = row_group_of(target);
            let (file, rg, _) = seq[j];
            let meta = footers[file]
                .as_ref()
                .filter(|m| located_pages(m.metadata(), rg))?;
            first_cut_from(files[file].0, meta, key, rg, target - starts[j])
        })
        .collect();
    for (target, cut) in targets.into_iter().zip(found) {
        let j = row_group_of(target);
        let (file, rg, keys) = seq[j];
        let Some((n, bound)) = cut.filter(|c| c.0 > 0 && c.0 < keys.rows) else {
            continue;
        };
        if near_a_cut(&cuts, target) {
            continue;
        }
        let at = inside.entry((file, rg)).or_default();
        if let Err(pos) = at.binary_search_by(|c| c.0.cmp(&n)) {
            at.insert(pos, (n, bound));
        }
        cuts.push(starts[j] + n);
    }
}

/// Reads into `footers` those of the files `wanted` (indexes into `files`) not read yet, side
/// by side (on rayon's threads, or for objects [`crate::store::side_by_side`]); one that
/// cannot be read stays None.
fn read_missing_footers(
    files: &[(&Path, &[Option<RowGroupKeys>])],
    footers: &mut [Option<ArrowReaderMetadata>],
    mut wanted: Vec<usize>,
) {
    wanted.sort_unstable();
    wanted.dedup();
    wanted.retain(|&f| footers[f].is_none());
    let read_one = |&f: &usize| {
        let meta = read_footers(&[files[f].0.to_path_buf()])
            .ok()
            .and_then(|mut m| m.pop());
        (f, meta)
    };
    // Objects' footers wait on round trips: more at once than there are cores.
    let read: Vec<(usize, Option<ArrowReaderMetadata>)> =
        match wanted.iter().any(|&f| crate::store::remote(files[f].0).is_some()) {
            true => crate::store::side_by_side(&wanted, true, read_one),
            false => wanted.par_iter().map(read_one).collect(),
        };
    for (f, meta) in read {
        footers[f] = meta;
    }
}

/// Where a generation runs on from one row group into the next (in key order, `seq`), how many
/// of its rows the next one starts with and the id after them ([`leading_rows`]), by (file, row
/// group): the row groups read side by side. None where they cannot be read or the whole row
/// group is that generation. The footers read are kept in `footers`.
pub(super) fn read_leading(
    files: &[(&Path, &[Option<RowGroupKeys>])],
    seq: &[(usize, usize, &RowGroupKeys)],
    key: &str,
    footers: &mut [Option<ArrowReaderMetadata>],
) -> HashMap<(usize, usize), Option<(u64, KeyBound)>> {
    let runs_on: Vec<(usize, usize)> = seq
        .windows(2)
        .filter(|w| w[0].2.max >= w[1].2.min)
        .map(|w| (w[1].0, w[1].1))
        .collect();
    read_missing_footers(files, footers, runs_on.iter().map(|r| r.0).collect());
    let footers = &*footers;
    runs_on
        .into_par_iter()
        .map(|(file, rg)| {
            let lead = footers[file]
                .as_ref()
                .and_then(|meta| leading_rows(files[file].0, meta, key, rg));
            ((file, rg), lead)
        })
        .collect()
}

/// Cuts inside row groups ([`cuts_inside`]) by (file, row group).
pub(super) type CutsInside = HashMap<(usize, usize), Vec<(u64, KeyBound)>>;

/// Where each row group of more than [`PIECE_ROWS`] rows whose footer locates its pages is cut
/// inside ([`cuts_inside`] on the key column `key`), by (file, row group), and the (file, row
/// group) of those whose footers do not; the row groups are read side by side, and the footers
/// read for them are kept in `footers`.
pub(super) fn read_cuts_inside(
    files: &[(&Path, &[Option<RowGroupKeys>])],
    key: &str,
    footers: &mut [Option<ArrowReaderMetadata>],
) -> (CutsInside, Vec<(usize, usize)>) {
    let large: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(f, (_, keys))| {
            keys.iter()
                .enumerate()
                .filter(|(_, k)| k.as_ref().is_some_and(|k| k.rows > PIECE_ROWS))
                .map(move |(rg, _)| (f, rg))
        })
        .collect();
    read_missing_footers(files, footers, large.iter().map(|l| l.0).collect());
    let footers = &*footers;
    // The row groups whose footers could be read, by whether they locate their pages.
    let (located, unlocated): (Vec<_>, Vec<_>) = large
        .into_iter()
        .filter_map(|(f, rg)| Some((f, rg, footers[f].as_ref()?)))
        .partition(|(_, rg, meta)| located_pages(meta.metadata(), *rg));
    let cuts = located
        .into_par_iter()
        .map(|(f, rg, meta)| ((f, rg), cuts_inside(files[f].0, meta, key, rg, PIECE_ROWS)))
        .collect();
    (cuts, unlocated.into_iter().map(|(f, rg, _)| (f, rg)).collect())
}

/// Whether the footer locates row group `rg`'s pages (an offset index for every column), so
/// that a piece of it reads its own pages only. Without one, each piece would read and
/// decompress the whole row group (pyarrow, pandas, polars and DuckDB write none by default):
/// such a row group is not cut inside.
pub(super) fn located_pages(meta: &datafusion::parquet::file::metadata::ParquetMetaData, rg: usize) -> bool {
    let columns = meta.row_group(rg).num_columns();
    meta.offset_index()
        .and_then(|index| index.get(rg))
        .is_some_and(|pages| pages.len() == columns && pages.iter().all(|c| !c.page_locations().is_empty()))
}
