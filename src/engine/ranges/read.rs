//! Reading a row group's generation ids where the key ranges may cut it: the rows a generation
//! that runs on from the row group before fills at its start ([`leading_rows`]), and its
//! generation boundaries past a row ([`cuts_inside`], [`first_cut_from`]), one column read
//! without panicking on corrupt input, from that row on; and the key columns a row-level error's
//! search reads ([`scan_columns`]).

use std::fs::File;

use datafusion::arrow::array::ArrayRef;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;

use crate::engine::footer::{top_level_leaf, KeyBound};
use crate::panics::quietly;

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
/// `meta`) from row `skip` on ([`scan_columns`] of that one column).
fn scan_key_column(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    key: &str,
    rg: usize,
    skip: u64,
    visit: &mut dyn FnMut(&ArrayRef, u64) -> Option<bool>,
) -> Option<()> {
    scan_columns(path, meta, &[key], rg, skip, &mut |columns, before| {
        visit(&columns[0], before)
    })
}

/// Reads top-level columns `keys` of row group `rg` of the file at `path` (whose footer is
/// `meta`; local or in object storage) from row `skip` on, dictionaries as their values, and
/// gives `visit` each batch's columns (in the order of `keys`) with the rows before it in the
/// row group, until `visit` returns false. None when the file or a column cannot be read, or
/// `visit` returns None; a panic in the reader on corrupt input is caught.
pub fn scan_columns(
    path: &std::path::Path,
    meta: &ArrowReaderMetadata,
    keys: &[&str],
    rg: usize,
    skip: u64,
    visit: &mut dyn FnMut(&[ArrayRef], u64) -> Option<bool>,
) -> Option<()> {
    match crate::store::remote(path) {
        Some(url) => scan_columns_in(
            crate::store::RemoteFile::open(url).ok()?,
            meta,
            keys,
            rg,
            skip,
            visit,
        ),
        None => scan_columns_in(File::open(path).ok()?, meta, keys, rg, skip, visit),
    }
}

fn scan_columns_in<R>(
    reader: R,
    meta: &ArrowReaderMetadata,
    keys: &[&str],
    rg: usize,
    skip: u64,
    visit: &mut dyn FnMut(&[ArrayRef], u64) -> Option<bool>,
) -> Option<()>
where
    R: datafusion::parquet::file::reader::ChunkReader + 'static,
{
    use datafusion::arrow::datatypes::DataType;
    use datafusion::parquet::arrow::arrow_reader::{
        ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
    };
    use datafusion::parquet::arrow::ProjectionMask;
    let leaves = keys
        .iter()
        .map(|k| top_level_leaf(meta.metadata(), k))
        .collect::<Option<Vec<usize>>>()?;
    // A batch holds the columns in the file's order.
    let mut read_leaves = leaves.clone();
    read_leaves.sort_unstable();
    read_leaves.dedup();
    let at = leaves
        .iter()
        .map(|l| read_leaves.binary_search(l).ok())
        .collect::<Option<Vec<usize>>>()?;
    let rows = u64::try_from(meta.metadata().row_groups().get(rg)?.num_rows()).ok()?;
    if skip >= rows {
        return Some(());
    }
    let mask = ProjectionMask::leaves(meta.metadata().file_metadata().schema_descr(), read_leaves);
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
            let batch = batch.ok()?;
            let mut columns = Vec::with_capacity(at.len());
            for &i in &at {
                let mut column = std::sync::Arc::clone(batch.columns().get(i)?);
                if let DataType::Dictionary(_, values) = column.data_type() {
                    column = datafusion::arrow::compute::cast(&column, values).ok()?;
                }
                columns.push(column);
            }
            if !visit(&columns, before)? {
                break;
            }
            before += batch.num_rows() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::footer::read_footers;
    use std::path::PathBuf;
    use std::sync::Arc;

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
