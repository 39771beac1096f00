//! Parquet footers: read without panicking on corrupt input, and what segscore reads from
//! them (declared sort order, float statistics that DataFusion would misread).

use std::fs::File;
use std::path::PathBuf;

use datafusion::arrow::array::ArrayRef;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// Reads a Parquet footer and its embedded Arrow schema. A corrupt footer is an error, never a
/// panic: the Arrow schema decoder panics on some corrupt input (arrow 59: `not implemented:
/// Type <UNKNOWN ..> not supported`), so that panic is caught and reported as the reason.
pub fn read_footer<R>(reader: &R) -> std::result::Result<ArrowReaderMetadata, String>
where
    R: datafusion::parquet::file::reader::ChunkReader,
{
    let read = quietly(|| {
        // The page index too: DataFusion reads it, and a corrupt one should name the file.
        ArrowReaderMetadata::load(
            reader,
            ArrowReaderOptions::new()
                .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Optional),
        )
    });
    match read {
        Ok(Ok(meta)) => Ok(meta),
        Ok(Err(e)) => Err(e.to_string()),
        Err(what) => Err(format!("corrupt footer or embedded Arrow schema ({what})")),
    }
}
/// Whether some top-level float column (other than the `trusted` ones, known to hold no NaN;
/// `"*"` trusts all) of a file of two rows or more has statistics saying it holds one value
/// (min == max over the file). Parquet's min/max leave NaN out, and DataFusion 55 replaces a
/// column whose file statistics have min == max with that value, so a NaN among equal values
/// would be read as that value. Scans of such files run without statistics.
pub fn float_stats_constant(pq: &ParquetMetaData, trusted: &[&str]) -> bool {
    if pq.file_metadata().num_rows() < 2 || trusted.contains(&"*") {
        return false;
    }
    use datafusion::parquet::basic::Type as Physical;
    use datafusion::parquet::file::statistics::Statistics as S;
    let leaves = pq.file_metadata().schema_descr().columns();
    leaves.iter().enumerate().any(|(i, leaf)| {
        if leaf.path().parts().len() != 1
            || !matches!(leaf.physical_type(), Physical::FLOAT | Physical::DOUBLE)
            || trusted.contains(&leaf.path().parts()[0].as_str())
        {
            return false;
        }
        let mut range: Option<(f64, f64)> = None;
        for rg in pq.row_groups() {
            let (lo, hi) = match rg.column(i).statistics() {
                Some(S::Float(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(a), Some(b)) => (*a as f64, *b as f64),
                    _ => return false,
                },
                Some(S::Double(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(a), Some(b)) => (*a, *b),
                    _ => return false,
                },
                _ => return false,
            };
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        range.is_some_and(|(a, b)| a == b)
    })
}

/// Stops the context's scans from using file statistics (DataFusion 55 reads these per
/// session, not per table): see [`float_stats_constant`].
pub fn distrust_statistics(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    if state.config().collect_statistics() {
        tracing::debug!("a float column's statistics look constant: scans do not use file statistics");
        state.config_mut().options_mut().execution.collect_statistics = false;
    }
}

thread_local! {
    /// Whether this thread is inside [`quietly`].
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that says nothing about the panics [`quietly`]
/// catches and passes every other panic to the hook that was there before. The binary calls
/// it at start, before any other thread exists; [`quietly`] itself never touches the global
/// hook, so it is safe on any number of threads at once.
pub fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into an error with its message. The panic prints nothing where
/// [`install_quiet_panic_hook`] was called; only this thread is affected.
pub fn quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let outer = QUIET.with(|q| q.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(outer));
    out.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the Parquet reader panicked".into())
    })
}

/// Reads every file's footer ([`read_footer`]: an unreadable one is an error naming the
/// file).
pub fn read_footers(paths: &[PathBuf]) -> Result<Vec<ArrowReaderMetadata>> {
    paths
        .iter()
        .map(|p| {
            let not_parquet = |reason| Error::NotParquet {
                path: p.clone(),
                reason,
            };
            match crate::store::remote(p) {
                Some(url) => read_footer(&crate::store::RemoteFile::open(url)?).map_err(not_parquet),
                None => {
                    let f = File::open(p).map_err(|e| Error::io(p, e))?;
                    read_footer(&f).map_err(not_parquet)
                }
            }
        })
        .collect()
}
/// The leaf column index of top-level column `name`, if the file has one.
fn top_level_leaf(pq: &ParquetMetaData, name: &str) -> Option<usize> {
    pq.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts().len() == 1 && c.path().parts()[0] == name)
}

/// A bound of a key column's values from a row group's statistics: integers compare as
/// numbers, strings (byte arrays) as bytes, as the key order check compares them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyBound {
    /// An integer column's bound.
    Int(i64),
    /// A string column's bound, as its bytes.
    Bytes(Vec<u8>),
}

/// One row group's exact (min, max) of a key column and its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupKeys {
    /// The smallest value.
    pub min: KeyBound,
    /// The largest value.
    pub max: KeyBound,
    /// The row group's rows.
    pub rows: u64,
}

/// Each row group's exact key range of top-level column `key`, from the footer's statistics:
/// `None` for a row group without exact integer or string statistics, and for every row group
/// of an unsigned integer column (its statistics do not compare as signed) or of a file
/// without the column.
pub fn row_group_keys(pq: &ParquetMetaData, key: &str) -> Vec<Option<RowGroupKeys>> {
    use datafusion::parquet::basic::{ConvertedType, LogicalType};
    use datafusion::parquet::file::statistics::Statistics as S;
    let none = || vec![None; pq.num_row_groups()];
    let Some(i) = top_level_leaf(pq, key) else {
        return none();
    };
    let leaves = pq.file_metadata().schema_descr().columns();
    let unsigned = matches!(leaves[i].logical_type_ref(), Some(LogicalType::Integer(t)) if !t.is_signed)
        || matches!(
            leaves[i].converted_type(),
            ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64
        );
    if unsigned {
        return none();
    }
    let range = |rg: &datafusion::parquet::file::metadata::RowGroupMetaData| -> Option<RowGroupKeys> {
        let stats = rg.column(i).statistics()?;
        if !(stats.min_is_exact() && stats.max_is_exact()) {
            return None;
        }
        let (min, max) = match stats {
            S::Int32(v) => (
                KeyBound::Int((*v.min_opt()?).into()),
                KeyBound::Int((*v.max_opt()?).into()),
            ),
            S::Int64(v) => (KeyBound::Int(*v.min_opt()?), KeyBound::Int(*v.max_opt()?)),
            S::ByteArray(v) => (
                KeyBound::Bytes(v.min_opt()?.data().to_vec()),
                KeyBound::Bytes(v.max_opt()?.data().to_vec()),
            ),
            _ => return None,
        };
        Some(RowGroupKeys {
            min,
            max,
            rows: u64::try_from(rg.num_rows()).ok()?,
        })
    };
    pq.row_groups().iter().map(range).collect()
}

/// How many rows at the start of row group `rg` of the file at `path` (whose footer is `meta`)
/// share its first value of top-level column `key`, and the value after them (integers and
/// strings); None when the whole row group holds that one value, or the column cannot be read
/// (then nothing is cut there). Reads that column chunk's first pages, until the value changes.
pub fn leading_rows(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
) -> Option<(u64, KeyBound)> {
    use datafusion::arrow::array::Scalar;
    use datafusion::arrow::compute::kernels::cmp::eq;
    let mut first: Option<ArrayRef> = None;
    let mut found = None;
    scan_key_column(path, meta, key, rg, 0, &mut |column, before| {
        let first = first.get_or_insert_with(|| column.slice(0, 1));
        let same = eq(column, &Scalar::new(std::sync::Arc::clone(first))).ok()?;
        Some(match same.values().iter().position(|equal| !equal) {
            Some(i) => {
                found = Some((before + i as u64, bound_at(column, i)));
                false
            }
            None => true,
        })
    })?;
    let (rows, bound) = found?;
    Some((rows, bound?))
}

/// Where row group `rg` of the file at `path` (whose footer is `meta`) can be cut into pieces
/// of about `every` rows: reading top-level column `key`, the first row at or after row `every`
/// whose value differs from the row before, then the first at least `every` rows after that
/// one, and so on: (rows before it, its value), in order. Depends on the row group alone.
/// Empty when the column cannot be read (then nothing is cut inside it); a row whose value is
/// null is no place to cut. The rows before row `every - 1` are not read (where the footer
/// locates the pages, their pages are skipped).
pub fn cuts_inside(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
    every: u64,
) -> Vec<(u64, KeyBound)> {
    cuts_from(path, meta, key, rg, every, usize::MAX)
}

/// The first of [`cuts_inside`]'s cuts with `every` = `from`: the first row at or after row
/// `from` where the value of `key` changes (and is not null), read from row `from - 1` until
/// it is found; None where there is none or the column cannot be read.
pub fn first_cut_from(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
    from: u64,
) -> Option<(u64, KeyBound)> {
    cuts_from(path, meta, key, rg, from, 1).pop()
}

/// [`cuts_inside`], stopped after `most` cuts.
fn cuts_from(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
    every: u64,
    most: usize,
) -> Vec<(u64, KeyBound)> {
    use datafusion::arrow::compute::kernels::cmp::distinct;
    let every = every.max(1);
    let mut cuts = Vec::new();
    let mut next = every;
    // The last row of the batch before.
    let mut last: Option<ArrayRef> = None;
    // From the row before the first that may be a cut.
    let read = scan_key_column(path, meta, key, rg, every - 1, &mut |column, before| {
        let n = column.len();
        if n == 0 {
            return Some(true);
        }
        if before + n as u64 > next {
            // The batch's rows that differ from the row before them.
            let mut starts: Vec<usize> = Vec::new();
            if let Some(prev) = &last {
                if distinct(prev, &column.slice(0, 1)).ok()?.value(0) {
                    starts.push(0);
                }
            }
            if n > 1 {
                let changed = distinct(&column.slice(1, n - 1), &column.slice(0, n - 1)).ok()?;
                starts.extend(changed.values().set_indices().map(|i| i + 1));
            }
            for i in starts {
                let at = before + i as u64;
                if at >= next {
                    if let Some(bound) = bound_at(column, i) {
                        cuts.push((at, bound));
                        if cuts.len() >= most {
                            return Some(false);
                        }
                        next = at + every;
                    }
                }
            }
        }
        last = Some(column.slice(n - 1, 1));
        Some(true)
    });
    if read.is_none() {
        return Vec::new();
    }
    cuts
}

/// Reads top-level column `key` of row group `rg` of the file at `path` (whose footer is
/// `meta`) from row `skip` on, a dictionary as its values, and gives `visit` each batch with
/// the rows before it in the row group, until `visit` returns false. None when the file or the
/// column cannot be read, or `visit` returns None; a panic in the reader on corrupt input is
/// caught.
fn scan_key_column(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
    skip: u64,
    visit: &mut dyn FnMut(&ArrayRef, u64) -> Option<bool>,
) -> Option<()> {
    match crate::store::remote(path) {
        Some(url) => scan_key_column_in(
            crate::store::RemoteFile::open(url).ok()?,
            meta,
            key,
            rg,
            skip,
            visit,
        ),
        None => scan_key_column_in(File::open(path).ok()?, meta, key, rg, skip, visit),
    }
}

fn scan_key_column_in<R>(
    reader: R,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
    skip: u64,
    visit: &mut dyn FnMut(&ArrayRef, u64) -> Option<bool>,
) -> Option<()>
where
    R: datafusion::parquet::file::reader::ChunkReader + 'static,
{
    use datafusion::arrow::datatypes::DataType;
    use datafusion::parquet::arrow::arrow_reader::{
        ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
    };
    use datafusion::parquet::arrow::ProjectionMask;
    let leaf = top_level_leaf(meta.metadata(), key)?;
    let rows = u64::try_from(meta.metadata().row_groups().get(rg)?.num_rows()).ok()?;
    if skip >= rows {
        return Some(());
    }
    let mask = ProjectionMask::leaves(meta.metadata().file_metadata().schema_descr(), [leaf]);
    quietly(|| {
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, meta.clone())
            .with_projection(mask)
            .with_row_groups(vec![rg])
            .with_batch_size(8192);
        if skip > 0 {
            let skip = usize::try_from(skip).ok()?;
            let read = usize::try_from(rows).ok()? - skip;
            builder = builder.with_row_selection(RowSelection::from(vec![
                RowSelector::skip(skip),
                RowSelector::select(read),
            ]));
        }
        let batches = builder.build().ok()?;
        let mut before = skip;
        for batch in batches {
            let mut column = std::sync::Arc::clone(batch.ok()?.column(0));
            if let DataType::Dictionary(_, values) = column.data_type() {
                column = datafusion::arrow::compute::cast(&column, values).ok()?;
            }
            if !visit(&column, before)? {
                break;
            }
            before += column.len() as u64;
        }
        Some(())
    })
    .ok()
    .flatten()
}

/// Row `i` of a key column as a [`KeyBound`] (integers and strings); None for a null and for
/// other types.
fn bound_at(column: &ArrayRef, i: usize) -> Option<KeyBound> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Int64Type};
    if column.is_null(i) {
        return None;
    }
    Some(match column.data_type() {
        t if t.is_integer() => {
            let v = datafusion::arrow::compute::cast(&column.slice(i, 1), &DataType::Int64).ok()?;
            KeyBound::Int(v.as_primitive::<Int64Type>().value(0))
        }
        DataType::Utf8 => KeyBound::Bytes(column.as_string::<i32>().value(i).as_bytes().to_vec()),
        DataType::LargeUtf8 => KeyBound::Bytes(column.as_string::<i64>().value(i).as_bytes().to_vec()),
        DataType::Utf8View => KeyBound::Bytes(column.as_string_view().value(i).as_bytes().to_vec()),
        _ => return None,
    })
}

/// Whether row groups' key ranges ([`row_group_keys`]) prove them not in key order: some row
/// group's exact minimum below the exact maximum of the row group before it (a row group
/// without exact statistics proves nothing).
pub fn keys_out_of_order(keys: &[Option<RowGroupKeys>]) -> bool {
    keys.windows(2).any(|w| match (&w[0], &w[1]) {
        (Some(a), Some(b)) => b.min < a.max,
        _ => false,
    })
}

/// Whether every row group's `sorting_columns` start with `keys`, all ascending.
pub fn metadata_declares_order(pq: &ParquetMetaData, keys: &[&str]) -> bool {
    let Some(idx) = keys
        .iter()
        .map(|k| top_level_leaf(pq, k))
        .collect::<Option<Vec<usize>>>()
    else {
        return false;
    };
    !pq.row_groups().is_empty()
        && pq.row_groups().iter().all(|rg| match rg.sorting_columns() {
            Some(sc) if sc.len() >= idx.len() => idx
                .iter()
                .zip(sc)
                .all(|(&i, c)| c.column_idx as usize == i && !c.descending),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// The old `quietly` swapped the process-wide hook for a silent one while it ran, so a
    /// panic on another thread at that moment went unreported.
    #[test]
    fn quietly_silences_only_its_own_thread() {
        static REPORTED: AtomicUsize = AtomicUsize::new(0);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.to_string().contains("quietly-test") {
                REPORTED.fetch_add(1, Ordering::SeqCst);
            } else {
                previous(info);
            }
        }));
        install_quiet_panic_hook();
        let inside = Arc::new(Barrier::new(2));
        let done = Arc::new(Barrier::new(2));
        let (i, d) = (Arc::clone(&inside), Arc::clone(&done));
        let quiet = std::thread::spawn(move || {
            quietly(|| {
                i.wait(); // the other thread panics while this one is inside quietly
                d.wait();
                panic!("quietly-test: caught")
            })
        });
        inside.wait();
        let loud = std::thread::spawn(|| panic!("quietly-test: reported"));
        assert!(loud.join().is_err());
        done.wait();
        assert_eq!(quiet.join().unwrap().unwrap_err(), "quietly-test: caught");
        assert_eq!(
            REPORTED.load(Ordering::SeqCst),
            1,
            "the other thread's panic was reported, the caught one was not"
        );
    }

    /// One file of one row group with column `g`: `ids` as strings, or as a dictionary.
    fn one_row_group(dir: &std::path::Path, ids: &[Option<String>], dictionary: bool) -> PathBuf {
        use datafusion::arrow::array::{DictionaryArray, StringArray};
        use datafusion::arrow::datatypes::Int32Type;
        use datafusion::arrow::record_batch::RecordBatch;
        let column: ArrayRef = if dictionary {
            Arc::new(
                ids.iter()
                    .map(|s| s.as_deref())
                    .collect::<DictionaryArray<Int32Type>>(),
            )
        } else {
            Arc::new(ids.iter().map(|s| s.as_deref()).collect::<StringArray>())
        };
        let batch = RecordBatch::try_from_iter([("g", column)]).unwrap();
        let path = dir.join(if dictionary {
            "dict.parquet"
        } else {
            "plain.parquet"
        });
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(ids.len()))
            .set_data_page_row_count_limit(1000)
            .build();
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            Some(props),
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    #[test]
    fn a_row_group_is_cut_inside_at_the_first_generation_boundary_past_each_step() {
        let tmp = tempfile::tempdir().unwrap();
        // 20,000 rows: generation k (k = 0..) has 7 rows, but generation 1500 has 3,000 rows
        // (from row 10,500 to 13,500), and row 17,502 onwards is null.
        let mut ids: Vec<Option<String>> = Vec::new();
        let mut k = 0;
        while ids.len() < 17_502 {
            let n = if k == 1500 { 3000 } else { 7 };
            ids.extend(std::iter::repeat_n(Some(format!("g{k:05}")), n));
            k += 1;
        }
        ids.truncate(17_502);
        ids.extend(std::iter::repeat_n(None, 2498));
        let first_change_from = |at: usize| (at..ids.len()).find(|&i| ids[i] != ids[i - 1]).unwrap();
        for dictionary in [false, true] {
            let path = one_row_group(tmp.path(), &ids, dictionary);
            let meta = read_footers(std::slice::from_ref(&path)).unwrap().pop().unwrap();
            let cuts = cuts_inside(&path, &meta, "g", 0, 4000);
            // Past 4,000 rows: the next boundary; then at least 4,000 rows after each cut. The
            // long generation holds no boundary (the cut waits for its end); the first row
            // past 17,500 that differs from the one before is null: no place to cut.
            let mut want = Vec::new();
            let mut at = 4000;
            loop {
                let i = first_change_from(at);
                let Some(id) = ids[i].clone() else { break };
                want.push((i as u64, KeyBound::Bytes(id.into_bytes())));
                at = i + 4000;
            }
            assert_eq!(
                want.iter().map(|w| w.0).collect::<Vec<_>>(),
                vec![4004, 8008, 13_500],
                "dictionary: {dictionary}"
            );
            assert_eq!(first_change_from(17_500), 17_502);
            assert_eq!(cuts, want, "dictionary: {dictionary}");
            // The rows that finish the first generation, and the id after them.
            assert_eq!(
                leading_rows(&path, &meta, "g", 0),
                Some((7, KeyBound::Bytes(b"g00001".to_vec()))),
                "dictionary: {dictionary}"
            );
            assert_eq!(cuts_inside(&path, &meta, "missing", 0, 4000), vec![]);
            // The first cut from a row on, read from the row before it (the pages before
            // skipped): at the row itself where a generation starts there, past the long
            // generation, none where the next change is to a null or no row follows.
            let first_from = |from: usize| {
                let i = first_change_from(from.max(1));
                ids[i]
                    .clone()
                    .map(|id| (i as u64, KeyBound::Bytes(id.into_bytes())))
            };
            for from in [0, 1, 7, 4004, 4005, 10_499, 11_000, 13_500, 15_006, 17_500] {
                let got = first_cut_from(&path, &meta, "g", 0, from as u64);
                assert_eq!(got, first_from(from), "from {from}, dictionary: {dictionary}");
                assert_eq!(
                    got,
                    cuts_inside(&path, &meta, "g", 0, from as u64).first().cloned()
                );
            }
            assert_eq!(
                first_cut_from(&path, &meta, "g", 0, 4004).map(|c| c.0),
                Some(4004)
            );
            assert_eq!(
                first_cut_from(&path, &meta, "g", 0, 11_000).map(|c| c.0),
                Some(13_500)
            );
            assert_eq!(first_cut_from(&path, &meta, "g", 0, 17_500), None);
            assert_eq!(first_cut_from(&path, &meta, "g", 0, 19_999), None);
            assert_eq!(first_cut_from(&path, &meta, "g", 0, 20_000), None);
        }
    }
}
