//! DuckDB's `strftime(time, format)`, `strptime(text, format)` and `try_strptime`: DataFusion's
//! `to_char` formats, chrono parses (each reading chrono's format), given the format with
//! DuckDB's specifiers written as chrono's where the two differ; `strptime` fills what a format
//! leaves out as DuckDB does.

use std::sync::Arc;

use chrono::format::{Item, Parsed, StrftimeItems};
use datafusion::arrow::array::{Array, AsArray, StringArray, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::text::text;

/// A DuckDB format string as chrono reads it: DuckDB's `%f` (microseconds, six digits), `%g`
/// (milliseconds), `%n` (nanoseconds) are chrono's `%6f`, `%3f`, `%9f` (chrono's `%f` is nine
/// digits and its `%n` a newline); `%c`, `%x`, `%X` are DuckDB's ISO forms (chrono's are
/// `Sun Jul  8 00:34:60 2001`, `07/08/01`); every other specifier means the same in both.
/// `zoneless`: the format of a time without a time zone, whose offset DuckDB writes as UTC's
/// (`%z` is `+00`, `%Z` nothing), where chrono has none to write and fails.
pub fn chrono_format(duckdb: &str, zoneless: bool) -> String {
    let mut out = String::with_capacity(duckdb.len() + 8);
    let mut chars = duckdb.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str("%6f"),
            Some('g') => out.push_str("%3f"),
            Some('n') => out.push_str("%9f"),
            Some('c') => out.push_str("%Y-%m-%d %H:%M:%S"),
            Some('x') => out.push_str("%Y-%m-%d"),
            Some('X') => out.push_str("%H:%M:%S"),
            Some('z') if zoneless => out.push_str("+00"),
            Some('Z') if zoneless => {}
            // `%-d`: no padding, the same in both; `%%` a percent sign.
            Some(next) => {
                out.push('%');
                out.push(next);
                if next == '-' {
                    out.extend(chars.next());
                }
            }
            None => out.push('%'),
        }
    }
    out
}

/// `strftime`'s format argument, a text or a column of texts, with each DuckDB format written as
/// chrono's ([`chrono_format`]; `zoneless` for a time without a zone).
fn chrono_format_arg(format: &ColumnarValue, zoneless: bool) -> Result<ColumnarValue> {
    let chrono = |f: &str| chrono_format(f, zoneless);
    Ok(match format {
        ColumnarValue::Scalar(ScalarValue::Utf8(f)) => {
            ColumnarValue::Scalar(ScalarValue::Utf8(f.as_deref().map(chrono)))
        }
        ColumnarValue::Array(a) => {
            let translated: StringArray = a.as_string::<i32>().iter().map(|f| f.map(chrono)).collect();
            ColumnarValue::Array(Arc::new(translated))
        }
        other => return exec_err!("strftime: the format is a text, not {}", other.data_type()),
    })
}

/// DuckDB's `strftime(time, format)`: a date, time or timestamp as text, in DuckDB's format
/// specifiers; DataFusion's `to_char` formats it. As in DuckDB, the format may come first
/// (`strftime('%Y', t)`, SQLite's order).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Strftime {
    signature: Signature,
}

/// Whether `t` is a type `to_char` formats.
fn temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(..)
            | DataType::Duration(_)
    )
}

impl ScalarUDFImpl for Strftime {
    fn name(&self) -> &str {
        "strftime"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        // A NULL time (`strftime(NULL, '%Y')`, `strftime('%Y', NULL)`) is a NULL timestamp.
        let null = DataType::Timestamp(TimeUnit::Microsecond, None);
        match args {
            [t, f] if temporal(t) && text(f) => Ok(vec![t.clone(), DataType::Utf8]),
            [f, t] if text(f) && temporal(t) => Ok(vec![DataType::Utf8, t.clone()]),
            [DataType::Null, f] if text(f) => Ok(vec![null, DataType::Utf8]),
            [f, DataType::Null] if text(f) => Ok(vec![DataType::Utf8, null]),
            [a, b] => plan_err!(
                "strftime(time, format) takes a date, time or timestamp and a text, not {a} and {b}"
            ),
            _ => plan_err!("strftime(time, format) takes two arguments"),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !temporal(&args.args[0].data_type()) {
            args.args.swap(0, 1);
            args.arg_fields.swap(0, 1);
        }
        // An error names the format as written and as chrono read it (DataFusion's names
        // chrono's).
        let written = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(f))) => Some(f.clone()),
            _ => None,
        };
        let zoneless = !matches!(args.args[0].data_type(), DataType::Timestamp(_, Some(_)));
        args.args[1] = chrono_format_arg(&args.args[1], zoneless)?;
        datafusion::functions::datetime::to_char()
            .invoke_with_args(args)
            .map_err(|e| match written {
                Some(f) => e.context(format!(
                    "strftime with the format '{f}' (chrono's '{}')",
                    chrono_format(&f, zoneless)
                )),
                None => e,
            })
    }
}

/// DuckDB's `strptime(text, format)`: the timestamp (microseconds) a text gives read in DuckDB's
/// format specifiers, or in the first of a list of formats that reads it
/// (`strptime(t, ['%d/%m/%Y', '%Y-%m-%d'])`); an error naming the text where no format reads
/// it, or (`try_strptime`) NULL. As in DuckDB (and C's and Python's strptime), what the format
/// leaves out is 1900-01-01 00:00:00 (`strptime('2024-03', '%Y-%m')` is March 1st, which chrono
/// alone refuses); a text with an offset (`%z`) gives its time in UTC.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Strptime {
    /// `try_strptime`: NULL for a text no format reads.
    try_: bool,
    signature: Signature,
}

/// A format, read as chrono's items once per distinct format.
struct Format {
    duckdb: String,
    items: Vec<Item<'static>>,
}

impl Format {
    fn new(duckdb: &str, function: &str) -> Result<Format> {
        let chrono = chrono_format(duckdb, false);
        match StrftimeItems::new(&chrono).parse_to_owned() {
            Ok(items) => Ok(Format {
                duckdb: duckdb.to_owned(),
                items,
            }),
            Err(_) => exec_err!(
                "{function}: '{duckdb}' is not a format (a specifier neither DuckDB nor chrono reads)"
            ),
        }
    }

    /// Microseconds since the epoch of `text` read in this format, the fields it leaves out
    /// as DuckDB fills them.
    fn parse(&self, text: &str) -> std::result::Result<i64, chrono::format::ParseError> {
        let mut p = Parsed::new();
        chrono::format::parse(&mut p, text, self.items.iter())?;
        if p.timestamp().is_none() {
            let weeks = p.week_from_sun().is_some() || p.week_from_mon().is_some() || p.isoweek().is_some();
            if p.year().is_none()
                && p.year_div_100().is_none()
                && p.year_mod_100().is_none()
                && p.isoyear().is_none()
            {
                p.set_year(1900)?;
            }
            if p.month().is_none() && p.ordinal().is_none() && !weeks {
                p.set_month(1)?;
            }
            if p.day().is_none() && p.ordinal().is_none() && !weeks {
                p.set_day(1)?;
            }
            match (p.hour_div_12(), p.hour_mod_12()) {
                (None, None) => p.set_hour(0)?,
                // `%I` without `%p`: before noon.
                (None, Some(_)) => p.set_ampm(false)?,
                _ => {}
            }
            if p.minute().is_none() {
                p.set_minute(0)?;
            }
        }
        let time = match p.offset() {
            Some(_) => p.to_datetime()?.naive_utc(),
            None => p.to_naive_datetime_with_offset(0)?,
        };
        Ok(time.and_utc().timestamp_micros())
    }
}

impl ScalarUDFImpl for Strptime {
    fn name(&self) -> &str {
        if self.try_ {
            "try_strptime"
        } else {
            "strptime"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t, f] if text(t) && text(f) => Ok(vec![DataType::Utf8, DataType::Utf8]),
            [t, DataType::List(item)] if text(t) && text(item.data_type()) => Ok(vec![
                DataType::Utf8,
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            ]),
            [t, f] => plan_err!(
                "{}(text, format) takes a text and a format (a text or a list of texts), not {t} and {f}",
                self.name()
            ),
            _ => plan_err!("{}(text, format) takes two arguments", self.name()),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let texts = args.args[0].to_array(rows)?;
        let texts = texts.as_string::<i32>();
        let name = self.name();
        // A column of formats: each row's own (the last read kept); else one set for every row
        // (none for a NULL format).
        let per_row = match &args.args[1] {
            ColumnarValue::Array(a) => Some(a.as_string::<i32>().clone()),
            ColumnarValue::Scalar(_) => None,
        };
        let constant: Vec<Format> = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(f))) => vec![Format::new(f, name)?],
            ColumnarValue::Scalar(ScalarValue::List(list)) => {
                let formats = list.value(0);
                let formats: Vec<Format> = (formats.as_string::<i32>().iter().flatten())
                    .map(|f| Format::new(f, name))
                    .collect::<Result<_>>()?;
                if formats.is_empty() {
                    return exec_err!("{name}: the list of formats is empty");
                }
                formats
            }
            _ => vec![],
        };
        let mut last: Option<Format> = None;
        let mut out = TimestampMicrosecondBuilder::with_capacity(rows);
        for row in 0..rows {
            let formats: &[Format] = match &per_row {
                None => &constant,
                Some(column) if column.is_valid(row) => {
                    let f = column.value(row);
                    if last.as_ref().is_none_or(|l| l.duckdb != f) {
                        last = Some(Format::new(f, name)?);
                    }
                    std::slice::from_ref(last.as_ref().expect("set above"))
                }
                Some(_) => &[],
            };
            if texts.is_null(row) || formats.is_empty() {
                out.append_null();
                continue;
            }
            let text = texts.value(row);
            let mut first_error = None;
            let parsed = formats.iter().find_map(|f| match f.parse(text) {
                Ok(micros) => Some(micros),
                Err(e) => {
                    first_error.get_or_insert(e);
                    None
                }
            });
            match (parsed, first_error) {
                (Some(micros), _) => out.append_value(micros),
                (None, _) if self.try_ => out.append_null(),
                (None, e) => {
                    let tried: Vec<String> = formats.iter().map(|f| format!("'{}'", f.duckdb)).collect();
                    return exec_err!(
                        "{name}: '{text}' does not read as {} ({})",
                        tried.join(" or "),
                        e.map(|e| e.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `strftime`, `strptime` and `try_strptime`.
pub(super) fn udfs() -> [ScalarUDF; 3] {
    let signature = Signature::user_defined(Volatility::Immutable);
    [
        ScalarUDF::from(Strftime {
            signature: signature.clone(),
        }),
        ScalarUDF::from(Strptime {
            try_: false,
            signature: signature.clone(),
        }),
        ScalarUDF::from(Strptime {
            try_: true,
            signature,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::chrono_format;

    #[test]
    fn duckdb_specifiers_become_chronos() {
        assert_eq!(
            chrono_format("%Y-%m-%d %H:%M:%S.%f", false),
            "%Y-%m-%d %H:%M:%S.%6f"
        );
        assert_eq!(
            chrono_format("%g|%n|%c|%x|%X", false),
            "%3f|%9f|%Y-%m-%d %H:%M:%S|%Y-%m-%d|%H:%M:%S"
        );
        // `%%f` is a percent sign and an f; `%-d` passes as it is; a lone `%` stays for chrono
        // to refuse.
        assert_eq!(chrono_format("100%%f %-d %", false), "100%%f %-d %");
        assert_eq!(chrono_format("%-m/%Y", false), "%-m/%Y");
        // A time without a zone is written at UTC's offset, as DuckDB writes it; `%%z` stays.
        assert_eq!(chrono_format("%H%z|%Z|%%z", true), "%H+00||%%z");
        assert_eq!(chrono_format("%H%z|%Z", false), "%H%z|%Z");
    }
}
