//! Input checks from the footers alone: each file readable and non-empty, the role columns
//! present with usable types (and one type across files), no nulls in key and score columns
//! where the statistics tell, and whether the file declares the key order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;

use crate::contract::ColumnNames;
use crate::engine::footer::{
    float_stats_constant, keys_out_of_order, metadata_declares_order, read_footer, row_group_keys,
    time_bounds,
};
use crate::engine::types::{self, describe_type, value_type};
use crate::error::{Error, Result};
use crate::source::{InputFile, Inputs};

#[derive(Clone, Copy)]
enum Kind {
    Key,
    Integer,
    Float,
    IdList,
    Text,
}

impl Kind {
    fn accepts(self, t: &DataType) -> bool {
        match self {
            // A 16-byte id (a UUID) is read as its text ([`super::register`]).
            Kind::Key => {
                t.is_integer()
                    || matches!(
                        t,
                        DataType::Utf8
                            | DataType::LargeUtf8
                            | DataType::Utf8View
                            | DataType::FixedSizeBinary(16)
                    )
            }
            Kind::Integer => t.is_integer(),
            // Read through a CAST to float64: half floats (numpy, polars) and decimals (DuckDB
            // writes `0.5` as DECIMAL, Spark its DECIMAL columns) widen as they are read.
            // Integers (a count of steps done right, polars' `cum_sum` of integer rewards) too:
            // exact up to 2^53.
            Kind::Float => t.is_numeric(),
            Kind::Text => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
            // Lists of any integer type: int32 and int64 are read as they are, the others
            // (uint16 token ids, int8 token type ids as Hugging Face `datasets` writes them)
            // widened to int64 as they are read.
            Kind::IdList => match t {
                DataType::List(f)
                | DataType::LargeList(f)
                | DataType::FixedSizeList(f, _)
                | DataType::ListView(f)
                | DataType::LargeListView(f) => f.data_type().is_integer(),
                _ => false,
            },
        }
    }
    fn expected(self) -> &'static str {
        match self {
            Kind::Key => "a string, an integer or a 16-byte UUID",
            Kind::Integer => "an integer",
            Kind::Float => "a float, decimal or integer",
            Kind::IdList => "a list (large, fixed-size or a view too) of integers",
            Kind::Text => "a string",
        }
    }
}

/// The table schema of the checked files ([`types::widened_schema`]: every file's columns, each
/// in its common type, a time column's unit as the footers' statistics allow); None when that is
/// the first file's schema. A column that no one type holds in every file is an error naming it
/// and two files.
pub fn table_schema(files: &[InputFile]) -> Result<Option<SchemaRef>> {
    let schemas: Vec<&Schema> = files.iter().map(|f| f.schema.as_ref()).collect();
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let bounds = |i: usize, path: &[crate::engine::units::Step]| {
        let file = files.get(i)?;
        file.time_bounds
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, b)| *b)
    };
    types::table_schema(&paths, &schemas, bounds)
}

/// A role column: (name in the files, canonical name, kind, role description, nulls forbidden).
fn roles(cols: &ColumnNames) -> Vec<(String, &'static str, Kind, &'static str, bool)> {
    let mut v = vec![
        (
            cols.generation_id.clone(),
            "generation_id",
            Kind::Key,
            "generation id",
            true,
        ),
        (
            cols.segment_index.clone(),
            "segment_index",
            Kind::Integer,
            "segment index",
            true,
        ),
        (
            cols.cumulative_score.clone(),
            "cumulative_score",
            Kind::Float,
            "cumulative score",
            true,
        ),
    ];
    match &cols.text {
        Some(t) => v.push((t.clone(), "text", Kind::Text, "segment text", false)),
        None => v.push((
            cols.input_ids.clone(),
            "input_ids",
            Kind::IdList,
            // Text input needs two flags: a file of texts run without them is told.
            "token ids column, or with --text-col and --tokenizer the text",
            false,
        )),
    }
    if let Some(p) = &cols.prompt {
        v.push((p.clone(), "prompt", Kind::Text, "prompt", false));
    }
    if let Some(b) = &cols.base_score {
        v.push((b.clone(), "base_score", Kind::Float, "base score", true));
    }
    if let Some(t) = &cols.token_type_ids {
        v.push((t.clone(), "token_type_ids", Kind::IdList, "token type ids", false));
    }
    v
}
/// Reads one file's footer and checks it against the contract. With `null_stats`, a key or
/// score column whose statistics count nulls is an error (quarantine runs leave nulls to the
/// row checks, which reject their generations). An object checked is pinned
/// ([`crate::store::RemoteFile::pin`]): the job's scan takes its size and time from this check.
pub fn check_file(path: &Path, cols: &ColumnNames, null_stats: bool) -> Result<InputFile> {
    let not_parquet = |reason: String| Error::NotParquet {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(url) = crate::store::remote(path) {
        let file = crate::store::RemoteFile::open(url)?;
        if file.is_empty() {
            return Err(not_parquet("the object is empty (0 bytes)".into()));
        }
        let meta = read_footer(&file).map_err(not_parquet)?;
        let checked = check_metadata(path, &meta, cols, null_stats, file.stamp())?;
        file.pin()?;
        return Ok(checked);
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let stat = file.metadata().map_err(|e| Error::io(path, e))?;
    if stat.len() == 0 {
        return Err(not_parquet("the file is empty (0 bytes)".into()));
    }
    let meta = read_footer(&file).map_err(not_parquet)?;
    check_metadata(
        path,
        &meta,
        cols,
        null_stats,
        crate::engine::footer::file_stamp(&stat),
    )
}
/// The most bytes of footers the check keeps for the scan ([`InputFile::footer`]): DataFusion's
/// metadata cache holds no more.
pub const FOOTERS_KEPT_BYTES: usize =
    datafusion::execution::cache::cache_manager::DEFAULT_METADATA_CACHE_LIMIT;

/// [`check_file`] on a footer already read (`path` names the file in errors; `stamp` is its
/// size and last-modified time, [`InputFile::stamp`]).
pub fn check_metadata(
    path: &Path,
    meta: &ArrowReaderMetadata,
    cols: &ColumnNames,
    null_stats: bool,
    stamp: (u64, u128),
) -> Result<InputFile> {
    let schema = Arc::clone(meta.schema());
    let pq = meta.metadata();
    let rows: i64 = pq.file_metadata().num_rows();
    if rows <= 0 {
        // No rows (Spark and Dask leave such files among the others): nothing to check; it is
        // skipped and counted.
        return Ok(InputFile {
            path: path.to_path_buf(),
            rows: 0,
            schema,
            sorted: false,
            out_of_order: false,
            float_stats_constant: false,
            key_ranges: Vec::new(),
            time_bounds: Vec::new(),
            stamp,
            footer: None,
        });
    }
    for (name, _, kind, role, no_nulls) in roles(cols) {
        let field = schema
            .field_with_name(&name)
            .map_err(|_| Error::missing_column(path, &name, role, &schema))?;
        if !kind.accepts(value_type(field.data_type())) {
            let bytes = matches!(
                value_type(field.data_type()),
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            );
            let binary = bytes || matches!(value_type(field.data_type()), DataType::FixedSizeBinary(_));
            let expected = match kind {
                // Text written as bytes, as older Hive and Impala write strings: say how to
                // convert the files.
                Kind::Key if bytes => format!(
                    "{}; a string written as binary (no UTF8 annotation, as older Hive and Impala write strings) is converted by `segscore sql \"COPY (FROM read_parquet('{}', binary_as_string = true)) TO 'fixed.parquet'\"`",
                    kind.expected(),
                    path.display()
                ),
                // Other binary ids: say how to write one as text.
                Kind::Key if binary => format!(
                    "{}; another binary id is not read: write it as text (DuckDB: `{name}::VARCHAR`)",
                    kind.expected()
                ),
                // pandas writes an integer column with a missing value as float64.
                Kind::Key | Kind::Integer if value_type(field.data_type()).is_floating() => format!(
                    "{}; pandas writes an integer column that has a missing value as float64: drop or fill the rows without one, or write it as `Int64` (nullable integers)",
                    kind.expected()
                ),
                _ => kind.expected().to_string(),
            };
            return Err(Error::WrongColumnType {
                path: path.to_path_buf(),
                column: name,
                found: describe_type(field.data_type()),
                expected,
            });
        }
        if no_nulls && null_stats {
            check_null_stats(path, pq, &name)?;
        }
    }
    let key_ranges = row_group_keys(pq, &cols.generation_id);
    let time_bounds = schema
        .fields()
        .iter()
        .flat_map(|f| crate::engine::units::time_leaves(f.name(), f.data_type()))
        .map(|leaf| {
            let bounds = time_bounds(pq, &leaf.path, &leaf.data_type);
            (leaf.path, bounds)
        })
        .collect();
    Ok(InputFile {
        path: path.to_path_buf(),
        rows: rows as u64,
        schema,
        sorted: declares_key_order(pq, cols),
        out_of_order: keys_out_of_order(&key_ranges),
        float_stats_constant: float_stats_constant(pq, &[]),
        key_ranges,
        time_bounds,
        stamp,
        footer: Some(meta.clone()),
    })
}
/// Whether every row group's `sorting_columns` start with the generation id and the segment
/// index, both ascending.
fn declares_key_order(pq: &datafusion::parquet::file::metadata::ParquetMetaData, cols: &ColumnNames) -> bool {
    metadata_declares_order(pq, &[&cols.generation_id, &cols.segment_index])
}

fn check_null_stats(
    path: &Path,
    pq: &datafusion::parquet::file::metadata::ParquetMetaData,
    column: &str,
) -> Result<()> {
    let mut first_row = 0u64;
    for (i, rg) in pq.row_groups().iter().enumerate() {
        let end_row = first_row + rg.num_rows() as u64;
        let chunk = rg
            .columns()
            .iter()
            .find(|c| c.column_path().parts().len() == 1 && c.column_path().parts()[0] == column);
        if let Some(count) = chunk
            .and_then(|c| c.statistics())
            .and_then(|s| s.null_count_opt())
        {
            if count > 0 {
                return Err(Error::NullsInFile {
                    path: path.to_path_buf(),
                    column: column.to_string(),
                    count,
                    row_group: i,
                    first_row,
                    end_row,
                });
            }
        }
        first_row = end_row;
    }
    Ok(())
}

/// Warns where token ids come in a fixed-size list (Hugging Face `datasets` writes
/// `Sequence(length=N)` so, mostly padded to N): every id in it is read as a token.
fn fixed_size_ids(files: &[InputFile], cols: &ColumnNames) {
    if cols.text.is_some() {
        return;
    }
    let id_cols = std::iter::once(&cols.input_ids).chain(cols.token_type_ids.as_ref());
    for column in id_cols {
        let fixed =
            files.iter().find_map(
                |f| match f.schema.field_with_name(column).map(|c| c.data_type()) {
                    Ok(DataType::FixedSizeList(_, n)) => Some((f, *n)),
                    _ => None,
                },
            );
        if let Some((file, n)) = fixed {
            tracing::warn!(
                column = %column,
                file = %file.path.display(),
                "column `{column}` is a fixed-size list of {n} ids in {}: every id in it is read as a token, padding too (strip padding before scoring)",
                file.path.display()
            );
        }
    }
}

/// Checks every file ([`check_file`]) and that one type holds each column's values in every
/// file ([`table_schema`]: one folder can hold files from pyarrow and from polars).
pub fn check_inputs(files: &[PathBuf], cols: &ColumnNames, null_stats: bool) -> Result<Inputs> {
    // Objects' footers are fetched side by side (a few round trips each); the first error in
    // the files' order is the one reported.
    let remote = files.iter().any(|p| crate::store::remote(p).is_some());
    let kept = std::sync::atomic::AtomicUsize::new(0);
    let check = |p: &PathBuf| {
        let mut file = check_file(p, cols, null_stats)?;
        file.footer = file.footer.take().filter(|meta| {
            let size = meta.metadata().memory_size();
            let before = kept.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            before + size <= FOOTERS_KEPT_BYTES
        });
        Ok(file)
    };
    let all: Vec<InputFile> = crate::store::side_by_side(files, remote, check)
        .into_iter()
        .collect::<Result<_>>()?;
    let (checked, empty): (Vec<InputFile>, Vec<InputFile>) = all.into_iter().partition(|f| f.rows > 0);
    let empty: Vec<PathBuf> = empty.into_iter().map(|f| f.path).collect();
    if checked.is_empty() {
        if let Some(first) = empty.first() {
            return Err(Error::EmptyInput {
                path: first.clone(),
                files: empty.len(),
            });
        }
    }
    for e in &empty {
        tracing::info!(file = %e.display(), "input file has no rows: skipped");
    }
    // Each column's types across the files: one type must hold them all.
    let schema = table_schema(&checked)?;
    fixed_size_ids(&checked, cols);
    Ok(Inputs {
        files: checked,
        empty,
        schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use DataType::*;

    #[test]
    fn a_table_schema_only_where_the_files_differ_from_the_first() {
        let file = |fields: Vec<Field>| InputFile {
            path: PathBuf::from("f.parquet"),
            rows: 1,
            schema: Arc::new(Schema::new(fields)),
            sorted: false,
            out_of_order: false,
            float_stats_constant: false,
            key_ranges: Vec::new(),
            time_bounds: Vec::new(),
            stamp: (0, 0),
            footer: None,
        };
        let a = file(vec![Field::new("g", Utf8, false), Field::new("x", Int32, false)]);
        let b = file(vec![
            Field::new("g", LargeUtf8, false),
            Field::new("y", Float64, false),
        ]);
        assert_eq!(table_schema(&[a.clone(), a.clone()]).unwrap(), None);
        let want = Schema::new(vec![
            Field::new("g", LargeUtf8, false),
            Field::new("x", Int32, true),
            Field::new("y", Float64, true),
        ]);
        assert_eq!(table_schema(&[a.clone(), b]).unwrap().as_deref(), Some(&want));
        // No one type holds text and integers: an error naming the column and both files.
        let mut c = file(vec![Field::new("g", Int64, false)]);
        c.path = PathBuf::from("c.parquet");
        let err = table_schema(&[a.clone(), c]).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "input file c.parquet: column `g` has type Int64, expected Utf8, as in f.parquet"
            ),
            "{err}"
        );
        // A column added in a later file, one that a later file lacks: all columns, nullable.
        let mut more = a.schema.fields().to_vec();
        more.push(Arc::new(Field::new("z", Int64, false)));
        let d = file(more.into_iter().map(|f| f.as_ref().clone()).collect());
        let want = Schema::new(vec![
            Field::new("g", Utf8, false),
            Field::new("x", Int32, false),
            Field::new("z", Int64, true),
        ]);
        assert_eq!(
            table_schema(&[a.clone(), d.clone()]).unwrap().as_deref(),
            Some(&want)
        );
        assert_eq!(table_schema(&[d, a]).unwrap().as_deref(), Some(&want));
    }
}
