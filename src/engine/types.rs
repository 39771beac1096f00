//! A column's type across files: the one type that holds every file's values ([`common_type`]),
//! a table's schema over files whose types differ ([`widened_schema`]), or where no type holds
//! them ([`Conflict`]); and a type as messages name it ([`describe_type`]).

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use super::units::{self, Coarsened};

/// The type a column's values have: a dictionary-encoded (categorical) column's value type.
pub fn value_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v.as_ref(),
        t => t,
    }
}

/// Whether `t` is a text type (or NULL, or a categorical column of texts, which coerce to
/// one).
pub fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, values) => is_text(values),
        t => matches!(
            t,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ),
    }
}

/// A type as messages name it: a dictionary-encoded column by its value type.
pub fn describe_type(t: &DataType) -> String {
    match t {
        DataType::Dictionary(k, v) => format!("{v} (categorical: dictionary-encoded, {k} keys)"),
        t => t.to_string(),
    }
}

/// A decimal's precision and scale.
fn decimal(t: &DataType) -> Option<(u8, i8)> {
    use DataType::*;
    match t {
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => Some((*p, *s)),
        _ => None,
    }
}

/// The digits an integer type's values need, as a decimal of scale 0.
fn integer_digits(t: &DataType) -> Option<u8> {
    use DataType::*;
    Some(match t {
        Int8 | UInt8 => 3,
        Int16 | UInt16 => 5,
        Int32 | UInt32 => 10,
        Int64 => 19,
        UInt64 => 20,
        _ => return None,
    })
}

/// The finer of two time units (every value of the coarser one is one of the finer).
fn finer(a: &TimeUnit, b: &TimeUnit) -> TimeUnit {
    let rank = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    if rank(a) >= rank(b) {
        *a
    } else {
        *b
    }
}

/// The type that holds a column's values in files where it has types `a` and `b`, every value
/// exactly (or, for a float beside an integer or a decimal, as a float64 holds it), as a table
/// over the files reads it:
///
/// - a column of nulls alone (`Null`, as pandas and pyarrow write an all-None column) and any
///   type; a categorical (dictionary-encoded) column and its value type;
/// - `Utf8`, `LargeUtf8` (polars writes the large kinds) and `Utf8View`; the binary kinds, a
///   fixed size one among them;
/// - integers of one signedness (the wider), a signed one beside an unsigned one below 64 bits
///   (`Int64`); an integer or a decimal beside a float (`Float64`, as pandas, polars and DuckDB
///   widen); decimals, an integer among them (a decimal with the integer digits and the scale of
///   both, up to 76 digits);
/// - times of one kind in different units (the finer), a date beside a timestamp without a time
///   zone (the timestamp), two kinds of date (`Date32`);
/// - `List` and `LargeList` of items with a common type, by any item name (pyarrow and DuckDB
///   call them `element`, polars and arrow-rs `item`), a fixed-size list among them (a list, but
///   for two of one size); structs whose fields by name have common
///   types (every field of both: a field added in later files is kept); maps whose keys and
///   values have common types.
///
/// None otherwise: types of different kinds, timestamps in different time zones (or with and
/// without one; UTC by any of its names is one zone), an unsigned 64-bit integer beside a
/// signed one.
pub fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a.equals_datatype(b) {
        return Some(a.clone());
    }
    let width = |t: &DataType| t.primitive_width().unwrap_or(0);
    Some(match (a, b) {
        (Null, t) | (t, Null) => t.clone(),
        (Dictionary(_, v), t) | (t, Dictionary(_, v)) => return common_type(v, t),
        // Views (pyarrow's `string_view`) read as plain strings.
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => match (a, b) {
            (LargeUtf8, _) | (_, LargeUtf8) => LargeUtf8,
            _ => Utf8,
        },
        (
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_),
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_),
        ) => match (a, b) {
            (LargeBinary, _) | (_, LargeBinary) => LargeBinary,
            _ => Binary,
        },
        (x, y) if x.is_numeric() && y.is_numeric() && (x.is_floating() || y.is_floating()) => Float64,
        (x, y) if decimal(x).is_some() || decimal(y).is_some() => {
            // Decimals, or a decimal beside an integer: the integer digits and scale of both.
            let (dx, dy) = (
                decimal(x).or_else(|| integer_digits(x).map(|d| (d, 0)))?,
                decimal(y).or_else(|| integer_digits(y).map(|d| (d, 0)))?,
            );
            let scale = dx.1.max(dy.1);
            let int_digits = (dx.0 as i16 - dx.1 as i16).max(dy.0 as i16 - dy.1 as i16);
            let precision = (int_digits + scale as i16).max(1);
            match precision {
                ..=38 => Decimal128(precision as u8, scale),
                39..=76 => Decimal256(precision as u8, scale),
                _ => return None,
            }
        }
        (x, y)
            if (x.is_signed_integer() && y.is_signed_integer())
                || (x.is_unsigned_integer() && y.is_unsigned_integer()) =>
        {
            if width(x) >= width(y) {
                x.clone()
            } else {
                y.clone()
            }
        }
        // Signed beside unsigned (uint16 token ids beside int32 ones): int64 holds both, the
        // unsigned up to 32 bits.
        (x, y)
            if x.is_integer() && y.is_integer() && width(if x.is_unsigned_integer() { x } else { y }) < 8 =>
        {
            Int64
        }
        (Timestamp(u, tz), Timestamp(v, tz2)) if same_zone(tz, tz2) => Timestamp(finer(u, v), tz.clone()),
        (Timestamp(u, None), Date32 | Date64) | (Date32 | Date64, Timestamp(u, None)) => Timestamp(*u, None),
        // A date64 holds whole days (milliseconds divisible by a day's): a date32 holds them all.
        (Date32 | Date64, Date32 | Date64) => Date32,
        (Time32(u) | Time64(u), Time32(v) | Time64(v)) => match finer(u, v) {
            unit @ (TimeUnit::Second | TimeUnit::Millisecond) => Time32(unit),
            unit => Time64(unit),
        },
        (Duration(u), Duration(v)) => Duration(finer(u, v)),
        (
            List(f) | LargeList(f) | FixedSizeList(f, _) | ListView(f) | LargeListView(f),
            List(g) | LargeList(g) | FixedSizeList(g, _) | ListView(g) | LargeListView(g),
        ) => {
            let item = Arc::new(Field::new(
                f.name(),
                common_type(f.data_type(), g.data_type())?,
                f.is_nullable() || g.is_nullable(),
            ));
            match (a, b) {
                (FixedSizeList(_, n), FixedSizeList(_, m)) if n == m => FixedSizeList(item, *n),
                (ListView(_), ListView(_)) => ListView(item),
                (LargeListView(_), LargeListView(_)) => LargeListView(item),
                (LargeList(_) | LargeListView(_), _) | (_, LargeList(_) | LargeListView(_)) => {
                    LargeList(item)
                }
                _ => List(item),
            }
        }
        (Struct(f), Struct(g)) => Struct(common_fields(f, g)?),
        // Maps: the keys' and the values' common types, by place (writers name them apart).
        (Map(f, s), Map(g, t)) if s == t => match (f.data_type(), g.data_type()) {
            (Struct(x), Struct(y)) if x.len() == 2 && y.len() == 2 => {
                let part = |i: usize| -> Option<Field> {
                    let t = common_type(x[i].data_type(), y[i].data_type())?;
                    Some(Field::new(
                        x[i].name(),
                        t,
                        x[i].is_nullable() || y[i].is_nullable(),
                    ))
                };
                let entries = Struct(vec![part(0)?, part(1)?].into());
                Map(Arc::new(Field::new(f.name(), entries, false)), *s)
            }
            _ => return None,
        },
        _ => return None,
    })
}

/// Whether two timestamps' time zones are one: the same name, or both UTC by any of its names
/// (pyarrow, polars and a Parquet timestamp adjusted to UTC say `UTC`; an Arrow schema written
/// by other tools may say `+00:00` or `Etc/UTC`).
fn same_zone(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
    let utc = |z: &str| matches!(z, "UTC" | "Etc/UTC" | "Z" | "+00:00" | "+0000" | "00:00");
    match (a.as_deref(), b.as_deref()) {
        (Some(x), Some(y)) => x == y || (utc(x) && utc(y)),
        (None, None) => true,
        _ => false,
    }
}

/// A struct's fields in files where it has fields `a` and `b`: every field of both by name (in
/// `a`'s order, then `b`'s new ones), each of their common type, nullable where one lacks it.
fn common_fields(a: &Fields, b: &Fields) -> Option<Fields> {
    let mut fields: Vec<Field> = Vec::with_capacity(a.len().max(b.len()));
    for f in a.iter() {
        fields.push(match b.find(f.name()) {
            Some((_, g)) => Field::new(
                f.name(),
                common_type(f.data_type(), g.data_type())?,
                f.is_nullable() || g.is_nullable(),
            ),
            None => f.as_ref().clone().with_nullable(true),
        });
    }
    for g in b.iter().filter(|g| a.find(g.name()).is_none()) {
        fields.push(g.as_ref().clone().with_nullable(true));
    }
    Some(fields.into())
}

/// Why the files cannot be read as one table ([`widened_schema`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Conflict {
    /// A column whose types in two files no one type holds ([`common_type`]).
    Types {
        /// The column.
        column: String,
        /// The schema (file) where the types stopped going together.
        file: usize,
        /// Its type there.
        found: DataType,
        /// The first schema that has the column with a type other than `Null`.
        first: usize,
        /// Its type there.
        expected: DataType,
    },
    /// A file with two columns of one name (pyarrow writes such files): a table reads one.
    Duplicate {
        /// The column.
        column: String,
        /// The schema (file) that has it twice.
        file: usize,
    },
}

impl Conflict {
    /// The error naming the column and the files, `files` being the schemas' files in order.
    pub fn error(self, files: &[std::path::PathBuf]) -> crate::error::Error {
        let path = |i: usize| files.get(i).cloned().unwrap_or_default();
        match self {
            Conflict::Types {
                column,
                file,
                found,
                first,
                expected,
            } => crate::error::Error::WrongColumnType {
                path: path(file),
                column,
                found: describe_type(&found),
                expected: format!(
                    "{}, as in {} (no one type holds the values of both: convert one file's column, or leave one file out)",
                    describe_type(&expected),
                    path(first).display()
                ),
            },
            Conflict::Duplicate { column, file } => crate::error::Error::DuplicateColumn {
                path: path(file),
                column,
            },
        }
    }
}

/// The schema of a table over files with `schemas`: every column of every file, with its common
/// type ([`common_type`]: the files' types may differ in width), nullable where some file
/// lacks it or allows nulls, in the order the files first have them; `schema` None when that is
/// the first file's schema, the one DataFusion infers for a table of several paths (it reads the
/// first path alone: a column that only later files have would be left out, one that they lack
/// would fail the scan when the first file has it non-nullable, and each file's column would be
/// cast to the first file's type: a float to an integer, microseconds to milliseconds).
/// A time column that files hold in different units (or a time inside a column: a struct's
/// field, a list's items) is read in the finest unless `bounds` (a file's index and the time's
/// path: its least and greatest value in nanoseconds, from its footer) shows a value that unit
/// cannot hold ([`units::choose`], listed in `coarsened`). A [`Conflict`] when no type holds a
/// column's values in every file, or a file has two columns of one name.
pub fn widened_schema(
    schemas: &[&Schema],
    bounds: impl Fn(usize, &[units::Step]) -> Option<(i128, i128)>,
) -> Result<Widened, Conflict> {
    // Each column with the number of files that have it, and its place by name (a wide table
    // over many files would make a search through the columns quadratic).
    struct Column {
        field: Field,
        files: usize,
        /// The first schema with a type other than Null, and that type.
        first: (usize, DataType),
        /// The time values in it (itself, or inside it) and each file's unit of each.
        units: units::FileUnits,
    }
    let mut columns: Vec<Column> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, schema) in schemas.iter().enumerate() {
        let mut names = std::collections::HashSet::with_capacity(schema.fields().len());
        for field in schema.fields() {
            if !names.insert(field.name()) {
                return Err(Conflict::Duplicate {
                    column: field.name().clone(),
                    file: i,
                });
            }
            let t = field.data_type();
            let Some(c) = at.get(field.name().as_str()).map(|&k| &mut columns[k]) else {
                at.insert(field.name(), columns.len());
                let mut file_units = Vec::new();
                units::note_units(&mut file_units, i, field.name(), t);
                columns.push(Column {
                    field: field.as_ref().clone(),
                    files: 1,
                    first: (i, t.clone()),
                    units: file_units,
                });
                continue;
            };
            c.files += 1;
            units::note_units(&mut c.units, i, field.name(), t);
            if c.first.1 == DataType::Null {
                c.first = (i, t.clone());
            }
            if !c.field.data_type().equals_datatype(t) {
                let common = common_type(c.field.data_type(), t).ok_or_else(|| Conflict::Types {
                    column: field.name().clone(),
                    file: i,
                    found: t.clone(),
                    first: c.first.0,
                    expected: c.first.1.clone(),
                })?;
                c.field = c.field.clone().with_data_type(common);
            }
            if field.is_nullable() {
                c.field = c.field.clone().with_nullable(true);
            }
        }
    }
    let mut coarsened = Vec::new();
    let fields: Vec<Field> = columns
        .into_iter()
        .map(|c| {
            let nullable = c.field.is_nullable() || c.files < schemas.len();
            let field = c.field.with_nullable(nullable);
            units::choose(field, &c.units, &bounds, &mut coarsened)
        })
        .collect();
    let Some(first) = schemas.first() else {
        return Ok(Widened::default());
    };
    let first = first.fields();
    let same = fields.len() == first.len() && fields.iter().zip(first.iter()).all(|(a, b)| a == b.as_ref());
    Ok(Widened {
        schema: (!same).then(|| Arc::new(Schema::new(fields))),
        coarsened,
    })
}

/// A table's schema over files ([`widened_schema`]).
#[derive(Debug, Default)]
pub struct Widened {
    /// The schema, None when it is the first file's.
    pub schema: Option<SchemaRef>,
    /// The time columns read in a coarser unit than their finest file's.
    pub coarsened: Vec<Coarsened>,
}

/// The schema of a table over `files` with `schemas` ([`widened_schema`], `bounds` as there),
/// None when it is the first file's; a column read in a coarser unit than some file's is
/// logged, a [`Conflict`] is the error naming the column and the files.
pub fn table_schema(
    files: &[PathBuf],
    schemas: &[&Schema],
    bounds: impl Fn(usize, &[units::Step]) -> Option<(i128, i128)>,
) -> crate::error::Result<Option<SchemaRef>> {
    let widened = widened_schema(schemas, bounds).map_err(|c| c.error(files))?;
    for c in &widened.coarsened {
        c.log(files);
    }
    Ok(widened.schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;

    #[test]
    fn a_common_type_holds_every_value_of_both() {
        let list = |name: &str, t: DataType| List(Arc::new(Field::new(name, t, true)));
        let large = |name: &str, t: DataType| LargeList(Arc::new(Field::new(name, t, true)));
        let dict = |v: DataType| Dictionary(Box::new(Int32), Box::new(v));
        let ts = |u: TimeUnit, tz: Option<&str>| Timestamp(u, tz.map(Into::into));
        let st = |fields: Vec<(&str, DataType, bool)>| {
            Struct(
                fields
                    .into_iter()
                    .map(|(n, t, null)| Field::new(n, t, null))
                    .collect::<Vec<_>>()
                    .into(),
            )
        };
        use TimeUnit::*;
        for (a, b, common) in [
            (Utf8, LargeUtf8, Some(LargeUtf8)),
            (Utf8View, Utf8, Some(Utf8)),
            (Utf8View, LargeUtf8, Some(LargeUtf8)),
            (BinaryView, Binary, Some(Binary)),
            (FixedSizeBinary(16), Binary, Some(Binary)),
            (FixedSizeBinary(16), FixedSizeBinary(8), Some(Binary)),
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
            // A float beside an integer: float64 (a float column's values are not integers).
            (Int64, Float64, Some(Float64)),
            (Int32, Float32, Some(Float64)),
            (
                list("item", Int64),
                list("item", Float64),
                Some(list("item", Float64)),
            ),
            // Decimals: the integer digits and the scale of both.
            (Decimal128(12, 6), Decimal128(10, 2), Some(Decimal128(14, 6))),
            (Decimal128(5, 2), Decimal64(10, 4), Some(Decimal128(10, 4))),
            (Decimal128(5, 2), Int64, Some(Decimal128(21, 2))),
            (UInt64, Decimal128(3, 0), Some(Decimal128(20, 0))),
            (Decimal128(38, 10), Decimal128(38, 0), Some(Decimal256(48, 10))),
            (Decimal256(76, 0), Decimal256(76, 76), None),
            (Decimal128(5, -2), Int32, Some(Decimal128(10, 0))),
            // Times: the finer unit; a date is midnight of a timestamp without a time zone.
            (
                ts(Millisecond, None),
                ts(Microsecond, None),
                Some(ts(Microsecond, None)),
            ),
            (
                ts(Second, Some("UTC")),
                ts(Nanosecond, Some("UTC")),
                Some(ts(Nanosecond, Some("UTC"))),
            ),
            (ts(Microsecond, Some("UTC")), ts(Microsecond, None), None),
            (
                ts(Microsecond, Some("UTC")),
                ts(Millisecond, Some("+00:00")),
                Some(ts(Microsecond, Some("UTC"))),
            ),
            (
                ts(Microsecond, Some("UTC")),
                ts(Microsecond, Some("Europe/Paris")),
                None,
            ),
            (Date32, ts(Millisecond, None), Some(ts(Millisecond, None))),
            (Date32, ts(Millisecond, Some("UTC")), None),
            (Date32, Date64, Some(Date32)),
            (Time32(Second), Time64(Nanosecond), Some(Time64(Nanosecond))),
            (Time32(Second), Time32(Millisecond), Some(Time32(Millisecond))),
            (
                Duration(Millisecond),
                Duration(Second),
                Some(Duration(Millisecond)),
            ),
            // Structs: every field of both, by name, each of a common type.
            (
                st(vec![("x", Int32, false)]),
                st(vec![("y", Utf8, false), ("x", Int64, false)]),
                Some(st(vec![("x", Int64, false), ("y", Utf8, true)])),
            ),
            (st(vec![("x", Int32, false)]), st(vec![("x", Utf8, false)]), None),
            (Utf8, Int64, None),
            (Int32, UInt64, None),
            (Int64, UInt64, None),
            (Boolean, Int8, None),
            (Date32, Utf8, None),
            (list("item", Int64), list("item", Utf8), None),
            (
                FixedSizeList(Arc::new(Field::new("element", Int32, true)), 2),
                list("item", Int64),
                Some(list("element", Int64)),
            ),
            (
                FixedSizeList(Arc::new(Field::new("element", Int32, true)), 2),
                FixedSizeList(Arc::new(Field::new("item", Int64, true)), 2),
                Some(FixedSizeList(Arc::new(Field::new("element", Int64, true)), 2)),
            ),
            (
                FixedSizeList(Arc::new(Field::new("element", Int32, true)), 2),
                FixedSizeList(Arc::new(Field::new("element", Int32, true)), 3),
                Some(list("element", Int32)),
            ),
        ] {
            assert_eq!(common_type(&a, &b), common, "{a} and {b}");
            assert_eq!(common_type(&b, &a).is_some(), common.is_some(), "{b} and {a}");
        }
    }

    #[test]
    fn a_conflict_names_the_first_file_with_values() {
        let schema = |t: DataType| Schema::new(vec![Field::new("note", t, true)]);
        let (nulls, text, ints, floats) = (schema(Null), schema(Utf8), schema(Int64), schema(Float64));
        let none = |_: usize, _: &[units::Step]| None;
        // Nulls, then text, then integers: the integers are named against the text.
        assert_eq!(
            widened_schema(&[&nulls, &text, &ints], none).unwrap_err(),
            Conflict::Types {
                column: "note".into(),
                file: 2,
                found: Int64,
                first: 1,
                expected: Utf8,
            }
        );
        // Integers and floats widen; text does not go with either.
        let wide = widened_schema(&[&ints, &floats], none).unwrap().schema.unwrap();
        assert_eq!(wide.field(0).data_type(), &Float64);
        let c = widened_schema(&[&ints, &floats, &text], none).unwrap_err();
        assert!(
            matches!(
                &c,
                Conflict::Types {
                    file: 2,
                    first: 0,
                    expected: Int64,
                    ..
                }
            ),
            "{c:?}"
        );
        let err = c
            .error(&["a.parquet".into(), "b.parquet".into(), "c.parquet".into()])
            .to_string();
        assert!(
            err.starts_with(
                "input file c.parquet: column `note` has type Utf8, expected Int64, as in a.parquet"
            ),
            "{err}"
        );
        // A file with two columns of one name.
        let twice = Schema::new(vec![
            Field::new("note", Int64, true),
            Field::new("note", Float64, true),
        ]);
        assert_eq!(
            widened_schema(&[&ints, &twice], none).unwrap_err(),
            Conflict::Duplicate {
                column: "note".into(),
                file: 1
            }
        );
    }
}
