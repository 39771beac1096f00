//! Where row groups are cut inside ([`super::plan_ranges`]'s `inside`): row groups of more than
//! [`PIECE_ROWS`] rows at generation boundaries past every [`PIECE_ROWS`] rows, and any row group
//! where a k-th of the rows falls far from every other cut ([`BALANCE_PARTS`]), both only where
//! the footer locates the row group's pages.

use std::collections::HashMap;
use std::path::Path;

use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;

use super::{in_key_order, PIECE_ROWS};
use crate::engine::footer::{cuts_inside, read_footers, KeyBound, RowGroupKeys};

/// Key ranges are balanced for up to this many threads: wherever no cut comes within a
/// hundredth of the rows of a k-th of them (k = 2 to this), a row group is cut inside there
/// (`add_balance_cuts`).
pub const BALANCE_PARTS: u64 = 4;

/// Inputs of fewer rows are not cut for balance: their ranges are a row group or two each.
const BALANCE_MIN_ROWS: u64 = 2 * PIECE_ROWS;

/// Adds to `inside` a cut at every k-th of the rows (k = 2 to [`BALANCE_PARTS`], in key order)
/// that no cut already comes near (within a hundredth of the rows; every row group's start
/// counts as one): inside the row group there, at the first generation boundary from that row
/// on ([`cuts_inside`]), if its footer locates its pages. Without them the ranges of `--threads
/// 2` over one file of 16 row groups of 64Ki rows held 8 and 7.26 row groups (524,288 and
/// 475,712 rows of 1M), and the larger ran on alone for some 100 ms of a 1.6 s run. Like the
/// other cuts these depend on the files alone, whatever the threads. Footers read are kept in
/// `footers`.
pub(super) fn add_balance_cuts(
    files: &[(&Path, &[Option<RowGroupKeys>])],
    key: &str,
    footers: &mut [Option<ArrowReaderMetadata>],
    inside: &mut CutsInside,
) {
    let ranges: Vec<&[_]> = files.iter().map(|f| f.1).collect();
    let Some(seq) = in_key_order(&ranges) else {
        return;
    };
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
    for k in 2..=BALANCE_PARTS {
        for i in 1..k {
            let target = total * i / k;
            if cuts.iter().any(|c| c.abs_diff(target) <= near) {
                continue;
            }
            let j = starts.partition_point(|&s| s <= target) - 1;
            let (file, rg, keys) = seq[j];
            let offset = target - starts[j];
            let path = files[file].0;
            let Some(meta) = footer(footers, file, path).filter(|m| located_pages(m.metadata(), rg)) else {
                continue;
            };
            // The first generation boundary from `offset` on, if the row group has one.
            let Some((n, bound)) = cuts_inside(path, meta, key, rg, offset).into_iter().next() else {
                continue;
            };
            if n == 0 || n >= keys.rows {
                continue;
            }
            let at = inside.entry((file, rg)).or_default();
            if let Err(pos) = at.binary_search_by(|c| c.0.cmp(&n)) {
                at.insert(pos, (n, bound));
            }
            cuts.push(starts[j] + n);
        }
    }
}

/// File `file`'s footer (at `path`), read once into `footers`; None where it cannot be read.
pub(super) fn footer<'a>(
    footers: &'a mut [Option<ArrowReaderMetadata>],
    file: usize,
    path: &Path,
) -> Option<&'a ArrowReaderMetadata> {
    if footers[file].is_none() {
        footers[file] = read_footers(&[path.to_path_buf()]).ok().and_then(|mut m| m.pop());
    }
    footers[file].as_ref()
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
    use rayon::prelude::*;
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
    let mut wanted: Vec<usize> = large.iter().map(|l| l.0).collect();
    wanted.dedup();
    let read: Vec<(usize, Option<ArrowReaderMetadata>)> = wanted
        .into_par_iter()
        .map(|f| {
            (
                f,
                read_footers(&[files[f].0.to_path_buf()])
                    .ok()
                    .and_then(|mut m| m.pop()),
            )
        })
        .collect();
    for (f, meta) in read {
        footers[f] = meta;
    }
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
