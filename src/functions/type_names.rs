//! DuckDB's `typeof(x)`: the type of `x` by its SQL name, as DuckDB writes it (`BIGINT`,
//! `DOUBLE`, `VARCHAR`, `DECIMAL(10,2)`, `TIMESTAMP WITH TIME ZONE`, `BIGINT[]`, `STRUCT(a
//! INTEGER)`, `MAP(VARCHAR, BIGINT)`); DataFusion has only `arrow_typeof`, in arrow's names
//! (`Int64`, `Utf8View`). A categorical column is the type of its values.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `typeof(x)` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeOf {
    signature: Signature,
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [_] => Ok(DataType::Utf8),
            _ => plan_err!("typeof(x) takes one argument"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = sql_name(args.arg_fields[0].data_type());
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `t`'s name in DuckDB's SQL (`BIGINT`, `VARCHAR`, `DOUBLE[]`; a categorical column's, its
/// values'), as `typeof` and `SUMMARIZE` give it.
pub fn sql_name(t: &DataType) -> String {
    use DataType as T;
    let name = match t {
        T::Null => "NULL",
        T::Boolean => "BOOLEAN",
        T::Int8 => "TINYINT",
        T::Int16 => "SMALLINT",
        T::Int32 => "INTEGER",
        T::Int64 => "BIGINT",
        T::UInt8 => "UTINYINT",
        T::UInt16 => "USMALLINT",
        T::UInt32 => "UINTEGER",
        T::UInt64 => "UBIGINT",
        T::Float16 | T::Float32 => "FLOAT",
        T::Float64 => "DOUBLE",
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "VARCHAR",
        T::Binary | T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_) => "BLOB",
        T::Date32 | T::Date64 => "DATE",
        T::Time32(_) | T::Time64(_) => "TIME",
        T::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE",
        T::Timestamp(TimeUnit::Second, None) => "TIMESTAMP_S",
        T::Timestamp(TimeUnit::Millisecond, None) => "TIMESTAMP_MS",
        T::Timestamp(TimeUnit::Microsecond, None) => "TIMESTAMP",
        T::Timestamp(TimeUnit::Nanosecond, None) => "TIMESTAMP_NS",
        T::Interval(_) | T::Duration(_) => "INTERVAL",
        T::Decimal32(p, s) | T::Decimal64(p, s) => return format!("DECIMAL({p},{s})"),
        T::Decimal128(p, s) | T::Decimal256(p, s) => return format!("DECIMAL({p},{s})"),
        T::List(f) | T::LargeList(f) | T::ListView(f) | T::LargeListView(f) => {
            return format!("{}[]", sql_name(f.data_type()))
        }
        T::FixedSizeList(f, n) => return format!("{}[{n}]", sql_name(f.data_type())),
        T::Struct(fields) => {
            let fields: Vec<String> = (fields.iter())
                .map(|f| format!("{} {}", field_name(f.name()), sql_name(f.data_type())))
                .collect();
            return format!("STRUCT({})", fields.join(", "));
        }
        T::Map(entries, _) => match entries.data_type() {
            T::Struct(kv) if kv.len() == 2 => {
                return format!(
                    "MAP({}, {})",
                    sql_name(kv[0].data_type()),
                    sql_name(kv[1].data_type())
                )
            }
            other => return sql_name(other),
        },
        T::Dictionary(_, values) => return sql_name(values),
        T::RunEndEncoded(_, values) => return sql_name(values.data_type()),
        other => return other.to_string(),
    };
    name.to_string()
}

/// A struct field's name as DuckDB writes it in a type: as it is where it is a plain lower-case
/// identifier, quoted otherwise.
fn field_name(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match plain {
        true => name.to_string(),
        false => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// The `typeof` function.
pub(super) fn udf() -> ScalarUDF {
    ScalarUDF::from(TypeOf {
        signature: Signature::any(1, Volatility::Immutable),
    })
}
