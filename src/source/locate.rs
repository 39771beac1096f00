//! Where a row named by its key is: the input files, and the rows in them, that hold a
//! generation id (and a segment index), read back after a row-level error so that the error can
//! name its file. The row groups whose footer statistics rule the key out are not read; of the
//! others only the two key columns are ([`scan_columns`]).

use std::path::PathBuf;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use super::InputFile;
use crate::engine::footer::{read_footers, KeyBound, RowGroupKeys};
use crate::engine::ranges::read::scan_columns;

/// At most this many rows of candidate row groups are read in all: a search of a large input
/// that statistics cannot narrow gives up (the error then names the key alone).
pub const LOCATE_ROWS: u64 = 20_000_000;

/// A row's key as the errors print it ([`crate::engine::keys::cell`]): an empty text also
/// matches a null.
#[derive(Debug, Clone)]
pub struct KeyText {
    /// The generation id.
    pub generation_id: String,
    /// The segment index; None matches any.
    pub segment_index: Option<String>,
}

/// One row found: its file and its place in it (counted from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The input file.
    pub path: PathBuf,
    /// The row, counted from the file's first row.
    pub row: u64,
}

/// Up to `most` rows of `files` (in their order) whose columns `gid` and `seg` (top-level,
/// by the files' own names) print as `key`, reading at most [`LOCATE_ROWS`] rows. A file without
/// both columns (a key from a hive folder, say), or one that cannot be read, is skipped.
pub fn locate(files: &[InputFile], gid: &str, seg: &str, key: &KeyText, most: usize) -> Vec<Found> {
    let mut found = Vec::new();
    let mut budget = LOCATE_ROWS;
    'files: for file in files {
        let candidates: Vec<usize> = file
            .key_ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_ref().is_none_or(|r| may_hold(r, &key.generation_id)))
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let Some(meta) = read_footers(std::slice::from_ref(&file.path))
            .ok()
            .and_then(|mut m| m.pop())
        else {
            continue;
        };
        let row_groups = meta.metadata().row_groups();
        let rows_in = |rg: usize| u64::try_from(row_groups[rg].num_rows()).unwrap_or(0);
        for rg in candidates.into_iter().filter(|&rg| rg < row_groups.len()) {
            let rows = rows_in(rg);
            if budget < rows {
                break 'files;
            }
            budget -= rows;
            let first: u64 = (0..rg).map(rows_in).sum();
            scan_columns(&file.path, &meta, &[gid, seg], rg, 0, &mut |columns, before| {
                let text = |c: &ArrayRef| -> Option<StringArray> {
                    if let Some(ids) = c.as_fixed_size_binary_opt().filter(|a| a.value_length() == 16) {
                        return Some(ids.iter().map(|v| v.map(uuid_text)).collect());
                    }
                    cast(c, &DataType::Utf8).ok()?.as_string_opt::<i32>().cloned()
                };
                let (ids, idx) = (text(&columns[0])?, text(&columns[1])?);
                let matches = |a: &StringArray, i: usize, want: &str| {
                    if a.is_null(i) {
                        want.is_empty()
                    } else {
                        a.value(i) == want
                    }
                };
                for i in 0..ids.len() {
                    if matches(&ids, i, &key.generation_id)
                        && key.segment_index.as_deref().is_none_or(|s| matches(&idx, i, s))
                    {
                        found.push(Found {
                            path: file.path.clone(),
                            row: first + before + i as u64,
                        });
                        if found.len() >= most {
                            return Some(false);
                        }
                    }
                }
                Some(true)
            });
            if found.len() >= most {
                break 'files;
            }
        }
    }
    found
}

/// A 16-byte id as the `generations` view gives it: `8-4-4-4-12` lowercase hex digits.
fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    [0..8, 8..12, 12..16, 16..20, 20..32].map(|r| &hex[r]).join("-")
}

/// Whether a row group with key range `r` may hold generation id `text` (a key that does not
/// parse as the column's integers cannot be there).
fn may_hold(r: &RowGroupKeys, text: &str) -> bool {
    let key = match r.min {
        KeyBound::Int(_) => match text.parse::<i64>() {
            Ok(v) => KeyBound::Int(v),
            Err(_) => return text.is_empty(),
        },
        KeyBound::Bytes(_) => KeyBound::Bytes(text.as_bytes().to_vec()),
    };
    // An empty text may stand for a null, which the statistics do not bound.
    text.is_empty() || (r.min <= key && key <= r.max)
}

/// `found` as an error's words: "input row 3 of /in/a.parquet, counting from 0", "input rows
/// 3 of /in/a.parquet and 0 of /in/b.parquet, counting from 0", "input rows 3 and 5 of
/// /in/a.parquet, ..."; None when nothing was found.
pub fn describe(found: &[Found]) -> Option<String> {
    let mut by_file: Vec<(&PathBuf, Vec<String>)> = Vec::new();
    for f in found {
        match by_file.last_mut() {
            Some((path, rows)) if *path == &f.path => rows.push(f.row.to_string()),
            _ => by_file.push((&f.path, vec![f.row.to_string()])),
        }
    }
    let each: Vec<String> = by_file
        .iter()
        .map(|(path, rows)| format!("{} of {}", rows.join(" and "), path.display()))
        .collect();
    let rows = if found.len() == 1 { "row" } else { "rows" };
    (!each.is_empty()).then(|| format!("input {rows} {}, counting from 0", each.join(" and ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use std::fs::File;
    use std::sync::Arc;

    /// A file of `gids` (with segment indexes 0, 1, ... within each run of one id) in row
    /// groups of 4 rows, as the job's checks describe it.
    fn file(dir: &std::path::Path, name: &str, gids: &[Option<i64>]) -> InputFile {
        let path = dir.join(name);
        let mut seg = Vec::new();
        for (i, g) in gids.iter().enumerate() {
            seg.push(if i > 0 && gids[i - 1] == *g {
                seg[i - 1] + 1
            } else {
                0
            });
        }
        let batch = RecordBatch::try_from_iter([
            (
                "generation_id",
                Arc::new(Int64Array::from(gids.to_vec())) as ArrayRef,
            ),
            ("segment_index", Arc::new(Int64Array::from(seg)) as ArrayRef),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(4))
            .build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let meta = ArrowReaderMetadata::load(&File::open(&path).unwrap(), Default::default()).unwrap();
        InputFile {
            path,
            rows: gids.len() as u64,
            schema: batch.schema(),
            sorted: false,
            out_of_order: false,
            float_stats_constant: false,
            key_ranges: crate::engine::footer::row_group_keys(meta.metadata(), "generation_id"),
            time_bounds: Vec::new(),
            stamp: (0, 0),
            footer: Some(meta),
        }
    }

    fn key(g: &str, s: Option<&str>) -> KeyText {
        KeyText {
            generation_id: g.into(),
            segment_index: s.map(Into::into),
        }
    }

    #[test]
    fn finds_rows_by_key_across_files_and_row_groups() {
        let tmp = tempfile::tempdir().unwrap();
        let ids = |v: &[i64]| v.iter().map(|&g| Some(g)).collect::<Vec<_>>();
        let a = file(tmp.path(), "a.parquet", &ids(&[1, 1, 2, 3, 3, 3, 5, 7, 7, 7]));
        let b = file(tmp.path(), "b.parquet", &[Some(7), None, Some(9), Some(9)]);
        let files = [a.clone(), b.clone()];
        let at = |path: &InputFile, row| Found {
            path: path.path.clone(),
            row,
        };
        let find = |k: &KeyText, most| locate(&files, "generation_id", "segment_index", k, most);
        // Row 8 is in a's third row group; b holds a 7 too, at its row 0 (segment 0).
        assert_eq!(find(&key("7", Some("1")), 2), vec![at(&a, 8)]);
        assert_eq!(find(&key("7", Some("0")), 2), vec![at(&a, 7), at(&b, 0)]);
        assert_eq!(find(&key("7", Some("0")), 1), vec![at(&a, 7)]);
        assert_eq!(
            find(&key("7", None), 5),
            vec![at(&a, 7), at(&a, 8), at(&a, 9), at(&b, 0)]
        );
        // An empty text stands for a null, which no statistics bound.
        assert_eq!(find(&key("", Some("0")), 2), vec![at(&b, 1)]);
        // Keys no row holds, or that cannot be the column's integers.
        assert!(find(&key("4", None), 2).is_empty());
        assert!(find(&key("seven", None), 2).is_empty());
        // Columns the files do not have (a key from a hive folder).
        assert!(locate(&files, "gid", "segment_index", &key("7", None), 2).is_empty());
        assert_eq!(
            describe(&[at(&a, 8)]).unwrap(),
            format!("input row 8 of {}, counting from 0", a.path.display())
        );
        assert_eq!(
            describe(&[at(&a, 7), at(&b, 0)]).unwrap(),
            format!(
                "input rows 7 of {} and 0 of {}, counting from 0",
                a.path.display(),
                b.path.display()
            )
        );
        assert_eq!(
            describe(&[at(&a, 7), at(&a, 9)]).unwrap(),
            format!("input rows 7 and 9 of {}, counting from 0", a.path.display())
        );
        assert_eq!(describe(&[]), None);
    }

    #[test]
    fn row_groups_outside_the_key_are_ruled_out() {
        let ints = RowGroupKeys {
            min: KeyBound::Int(3),
            max: KeyBound::Int(9),
            rows: 4,
        };
        assert!(may_hold(&ints, "3") && may_hold(&ints, "9") && !may_hold(&ints, "10"));
        assert!(!may_hold(&ints, "x") && may_hold(&ints, ""));
        let bytes = RowGroupKeys {
            min: KeyBound::Bytes(b"g1".to_vec()),
            max: KeyBound::Bytes(b"g5".to_vec()),
            rows: 4,
        };
        assert!(may_hold(&bytes, "g3") && !may_hold(&bytes, "g6") && !may_hold(&bytes, "a"));
    }
}
