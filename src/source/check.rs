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
};
use crate::engine::tables::{common_type, widened_schema};
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
            Kind::Float => matches!(
                t,
                DataType::Float16
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Decimal32(..)
                    | DataType::Decimal64(..)
                    | DataType::Decimal128(..)
                    | DataType::Decimal256(..)
            ),
            Kind::Text => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
            // Lists of any integer type: int32 and int64 are read as they are, the others
            // (uint16 token ids, int8 token type ids as Hugging Face `datasets` writes them)
            // widened to int64 as they are read.
            Kind::IdList => match t {
                DataType::List(f) | DataType::LargeList(f) => f.data_type().is_integer(),
                _ => false,
            },
        }
    }
    fn expected(self) -> &'static str {
        match self {
            Kind::Key => "a string, an integer or a 16-byte UUID",
            Kind::Integer => "an integer",
            Kind::Float => "a float or decimal",
            Kind::IdList => "a list or large_list of integers",
            Kind::Text => "a string",
        }
    }
}

/// The table schema of the checked files ([`widened_schema`]: every file's columns, each in its
/// common type); None when that is the first file's schema, or a column has types of different
/// kinds.
pub fn table_schema(files: &[InputFile]) -> Option<SchemaRef> {
    let schemas: Vec<&Schema> = files.iter().map(|f| f.schema.as_ref()).collect();
    widened_schema(&schemas)
}

/// The type a column's values have: a dictionary-encoded (categorical) column's value type.
pub fn value_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v.as_ref(),
        t => t,
    }
}

/// A type as messages name it: a dictionary-encoded column by its value type.
pub fn describe_type(t: &DataType) -> String {
    match t {
        DataType::Dictionary(k, v) => format!("{v} (categorical: dictionary-encoded, {k} keys)"),
        t => t.to_string(),
    }
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
/// row checks, which reject their generations).
pub fn check_file(path: &Path, cols: &ColumnNames, null_stats: bool) -> Result<InputFile> {
    let not_parquet = |reason: String| Error::NotParquet {
        path: path.to_path_buf(),
        reason,
    };
    let meta = if let Some(url) = crate::store::remote(path) {
        let file = crate::store::RemoteFile::open(url)?;
        if file.is_empty() {
            return Err(not_parquet("the object is empty (0 bytes)".into()));
        }
        read_footer(&file).map_err(not_parquet)?
    } else {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Err(not_parquet("the file is empty (0 bytes)".into()));
        }
        read_footer(&file).map_err(not_parquet)?
    };
    check_metadata(path, &meta, cols, null_stats)
}
/// [`check_file`] on a footer already read (`path` names the file in errors).
pub fn check_metadata(
    path: &Path,
    meta: &ArrowReaderMetadata,
    cols: &ColumnNames,
    null_stats: bool,
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
        });
    }
    for (name, _, kind, role, no_nulls) in roles(cols) {
        let field = schema
            .field_with_name(&name)
            .map_err(|_| Error::missing_column(path, &name, role, &schema))?;
        if !kind.accepts(value_type(field.data_type())) {
            let binary = matches!(
                value_type(field.data_type()),
                DataType::FixedSizeBinary(_)
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
            );
            let expected = match kind {
                // Other binary ids: say how to write one as text.
                Kind::Key if binary => format!(
                    "{}; another binary id is not read: write it as text (DuckDB: `{name}::VARCHAR`)",
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
    Ok(InputFile {
        path: path.to_path_buf(),
        rows: rows as u64,
        schema,
        sorted: declares_key_order(pq, cols),
        out_of_order: keys_out_of_order(&key_ranges),
        float_stats_constant: float_stats_constant(pq, &[]),
        key_ranges,
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

/// Checks every file ([`check_file`]) and that each column's types across files go together
/// (role columns in a [`common_type`], others of one kind: one folder can hold files from
/// pyarrow and from polars).
pub fn check_inputs(files: &[PathBuf], cols: &ColumnNames, null_stats: bool) -> Result<Inputs> {
    let all: Vec<InputFile> = files
        .iter()
        .map(|p| check_file(p, cols, null_stats))
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
    let role_names: Vec<String> = roles(cols).into_iter().map(|(name, ..)| name).collect();
    columns_agree(&checked, &role_names)?;
    Ok(Inputs {
        files: checked,
        empty,
    })
}

/// What a column's values are, coarsely: text, numbers, times, lists... Files whose column
/// has types of one kind are read as one table (DataFusion casts each file's column to the
/// table's type; the role columns are held to [`common_type`]). Of two kinds, the cast would
/// fail on some value (`'chat'` as an integer), or turn numbers into text, depending on which
/// file came first.
fn kind(t: &DataType) -> &'static str {
    use DataType::*;
    match value_type(t) {
        Utf8 | LargeUtf8 | Utf8View => "text",
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary",
        Boolean => "boolean",
        t if t.is_numeric() => "number",
        Date32 | Date64 | Timestamp(..) | Time32(_) | Time64(_) | Duration(_) | Interval(_) => "time",
        List(_) | LargeList(_) | ListView(_) | LargeListView(_) | FixedSizeList(..) => "list",
        Struct(_) => "struct",
        Map(..) => "map",
        Null => "null",
        _ => "other",
    }
}

/// Refuses a column whose types in two files do not go together, naming both files: a role
/// column (`roles`) must have a [`common_type`] in all of them, another column one [`kind`] of
/// values (a column of nulls alone, as pandas writes, takes the kind of the next file's).
fn columns_agree(files: &[InputFile], roles: &[String]) -> Result<()> {
    // Per column: the first file that has it, its type there, and the common type so far.
    let mut first: std::collections::HashMap<&str, (&InputFile, &DataType, DataType)> =
        std::collections::HashMap::new();
    for f in files {
        for field in f.schema.fields() {
            let t = field.data_type();
            let seen = first
                .entry(field.name().as_str())
                .or_insert_with(|| (f, t, t.clone()));
            if kind(seen.1) == "null" {
                *seen = (f, t, t.clone());
            }
            let (by, t0, common) = seen;
            let agree = if roles.contains(field.name()) {
                common_type(common, t).map(|c| *common = c).is_some()
            } else {
                kind(t) == kind(t0) || kind(t) == "null"
            };
            if !agree {
                return Err(Error::WrongColumnType {
                    path: f.path.clone(),
                    column: field.name().clone(),
                    found: describe_type(t),
                    expected: format!("{}, as in {}", describe_type(t0), by.path.display()),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use DataType::*;

    #[test]
    fn types_that_differ_in_width_encoding_or_names_have_a_common_type() {
        let list = |name: &str, t: DataType| List(Arc::new(Field::new(name, t, true)));
        let large = |name: &str, t: DataType| LargeList(Arc::new(Field::new(name, t, true)));
        let dict = |v: DataType| Dictionary(Box::new(Int32), Box::new(v));
        for (a, b, common) in [
            (Utf8, LargeUtf8, Some(LargeUtf8)),
            (Utf8View, Utf8, Some(Utf8)),
            (Utf8View, LargeUtf8, Some(LargeUtf8)),
            (BinaryView, Binary, Some(Binary)),
            (Int32, Int64, Some(Int64)),
            (Int64, Int8, Some(Int64)),
            (UInt16, UInt32, Some(UInt32)),
            (Float32, Float64, Some(Float64)),
            (dict(Utf8), Utf8, Some(Utf8)),
            (dict(Utf8), dict(LargeUtf8), Some(LargeUtf8)),
            (Null, Utf8, Some(Utf8)),
            (Int32, Null, Some(Int32)),
            (
                list("item", Null),
                list("element", Int64),
                Some(list("item", Int64)),
            ),
            (
                list("item", Int64),
                list("element", Int64),
                Some(list("item", Int64)),
            ),
            (
                list("element", Int32),
                large("item", Int64),
                Some(large("element", Int64)),
            ),
            (Int32, UInt32, Some(Int64)),
            (UInt16, Int8, Some(Int64)),
            (Decimal128(12, 6), Float64, Some(Float64)),
            (Float32, Decimal256(40, 2), Some(Float64)),
            (
                list("element", UInt16),
                list("item", Int32),
                Some(list("element", Int64)),
            ),
            (Utf8, Int64, None),
            (Int64, UInt32, Some(Int64)),
            (Int32, UInt64, None),
            (Decimal128(12, 6), Decimal128(10, 2), None),
            (Int64, Float64, None),
            (list("item", Int64), list("item", Utf8), None),
        ] {
            assert_eq!(common_type(&a, &b), common, "{a} and {b}");
            assert_eq!(common_type(&b, &a).is_some(), common.is_some(), "{b} and {a}");
        }
    }

    #[test]
    fn a_column_of_two_kinds_is_refused_naming_both_files() {
        let file = |name: &str, t: DataType| InputFile {
            path: PathBuf::from(name),
            rows: 1,
            schema: Arc::new(Schema::new(vec![Field::new("note", t, true)])),
            sorted: false,
            out_of_order: false,
            float_stats_constant: false,
            key_ranges: Vec::new(),
        };
        let dict = Dictionary(Box::new(Int32), Box::new(Utf8));
        // Widths, encodings and all-null columns are one kind.
        let same = [
            file("a", Utf8),
            file("b", dict),
            file("c", Null),
            file("d", LargeUtf8),
        ];
        assert!(columns_agree(&same, &[]).is_ok());
        assert!(columns_agree(&[file("a", Int32), file("b", Float64)], &[]).is_ok());
        // A role column is held to a common type: integers and floats do not go together.
        let role = ["note".to_string()];
        let err = columns_agree(&[file("a", Int32), file("b", Float64)], &role)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input file b: column `note`") && err.contains("as in a"),
            "{err}"
        );
        assert!(columns_agree(&[file("a", Int32), file("b", Int64)], &role).is_ok());
        // Nulls first, then text, then numbers: the numbers are named against the text.
        let err = columns_agree(&[file("a", Null), file("b", Utf8), file("c", Int64)], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input file c: column `note`") && err.contains("as in b"),
            "{err}"
        );
    }

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
        };
        let a = file(vec![Field::new("g", Utf8, false), Field::new("x", Int32, false)]);
        let b = file(vec![
            Field::new("g", LargeUtf8, false),
            Field::new("y", Float64, false),
        ]);
        assert_eq!(table_schema(&[a.clone(), a.clone()]), None);
        let want = Schema::new(vec![
            Field::new("g", LargeUtf8, false),
            Field::new("x", Int32, true),
            Field::new("y", Float64, true),
        ]);
        assert_eq!(table_schema(&[a.clone(), b]).as_deref(), Some(&want));
        let c = file(vec![Field::new("g", Int64, false)]);
        assert_eq!(table_schema(&[a.clone(), c]), None);
        // A column added in a later file, one that a later file lacks: all columns, nullable.
        let mut more = a.schema.fields().to_vec();
        more.push(Arc::new(Field::new("z", Int64, false)));
        let d = file(more.into_iter().map(|f| f.as_ref().clone()).collect());
        let want = Schema::new(vec![
            Field::new("g", Utf8, false),
            Field::new("x", Int32, false),
            Field::new("z", Int64, true),
        ]);
        assert_eq!(table_schema(&[a.clone(), d.clone()]).as_deref(), Some(&want));
        assert_eq!(table_schema(&[d, a]).as_deref(), Some(&want));
    }
}
