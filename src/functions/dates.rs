//! DuckDB's date functions that DataFusion has none for: a date part by its own name (`year(t)`,
//! `month(t)`, `dayofweek(t)`, `epoch(t)`, ...; DataFusion's `date_part` computes each),
//! `dayname` and `monthname` (`to_char` formats them), `date_diff(part, start, end)` (`datediff`)
//! and `epoch_ms`, `epoch_us`, `epoch_ns`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::text::text;

/// DuckDB's date part functions and the `date_part` part each is: `year(t)` is `date_part('year',
/// t)` (as BIGINT, DuckDB's type; `epoch` as DOUBLE, seconds with their fraction).
const PARTS: [(&str, &str); 19] = [
    ("year", "year"),
    ("month", "month"),
    ("day", "day"),
    ("dayofmonth", "day"),
    ("hour", "hour"),
    ("minute", "minute"),
    ("second", "second"),
    ("millisecond", "millisecond"),
    ("microsecond", "microsecond"),
    ("nanosecond", "nanosecond"),
    ("dayofweek", "dow"),
    ("weekday", "dow"),
    ("isodow", "isodow"),
    ("dayofyear", "doy"),
    ("week", "week"),
    ("weekofyear", "week"),
    ("quarter", "quarter"),
    ("isoyear", "isoyear"),
    ("epoch", "epoch"),
];

/// The DataFusion function a [`Preset`] calls.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Inner {
    /// `date_part(part, t)`.
    DatePart,
    /// `to_char(t, format)`.
    ToChar,
}

/// A DuckDB function computed by a DataFusion one with a constant argument: `year(t)` is
/// `date_part('year', t)`, `dayname(t)` is `to_char(t, '%A')`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Preset {
    name: &'static str,
    inner: Inner,
    /// The constant: `date_part`'s part (the first argument) or `to_char`'s format (the last).
    constant: &'static str,
    returns: DataType,
    signature: Signature,
}

impl Preset {
    fn inner(&self) -> Arc<ScalarUDF> {
        match self.inner {
            Inner::DatePart => datafusion::functions::datetime::date_part(),
            Inner::ToChar => datafusion::functions::datetime::to_char(),
        }
    }

    /// The call's arguments with the constant in its place.
    fn with_constant<T>(&self, arg: T, constant: T) -> Vec<T> {
        match self.inner {
            Inner::DatePart => vec![constant, arg],
            Inner::ToChar => vec![arg, constant],
        }
    }
}

impl ScalarUDFImpl for Preset {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let t = match args {
            // `year(NULL)`: a NULL timestamp.
            [DataType::Null] => &DataType::Timestamp(TimeUnit::Microsecond, None),
            [t] => t,
            _ => return plan_err!("{}(time) takes one argument", self.name),
        };
        let fields: Vec<_> = self
            .with_constant(t.clone(), DataType::Utf8)
            .into_iter()
            .map(|t| Arc::new(Field::new("x", t, true)))
            .collect();
        let coerced = fields_with_udf(&fields, self.inner().as_ref()).map_err(|_| {
            datafusion::error::DataFusionError::Plan(format!(
                "{}(time) takes a date, time or timestamp, not {t}",
                self.name
            ))
        })?;
        let at = if self.inner == Inner::DatePart { 1 } else { 0 };
        Ok(vec![coerced[at].data_type().clone()])
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let inner = self.inner();
        // What `date_part` gives for the part, cast to DuckDB's type below.
        let returned = match (self.inner, self.constant) {
            (Inner::DatePart, "nanosecond") => DataType::Int64,
            (Inner::DatePart, "epoch") => DataType::Float64,
            (Inner::DatePart, _) => DataType::Int32,
            (Inner::ToChar, _) => self.returns.clone(),
        };
        let constant = ColumnarValue::Scalar(ScalarValue::Utf8(Some(self.constant.into())));
        let value = inner.invoke_with_args(ScalarFunctionArgs {
            args: self.with_constant(args.args[0].clone(), constant),
            arg_fields: self.with_constant(
                args.arg_fields[0].clone(),
                Arc::new(Field::new("c", DataType::Utf8, false)),
            ),
            return_field: Arc::new(Field::new(self.name, returned, true)),
            ..args
        })?;
        value.cast_to(&self.returns, None)
    }
}

/// DuckDB's `date_diff(part, start, end)` (`datediff`): how many boundaries of `part` lie
/// between the two times, as DuckDB counts them: `date_diff('month', DATE '2024-01-31', DATE
/// '2024-02-01')` is 1, `date_diff('day', ...)` the days between the dates whatever the hours.
/// Weeks start on Monday. Times with a time zone are counted in UTC.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDiff {
    name: &'static str,
    signature: Signature,
}

/// A time's (microseconds since the epoch) count of one part's boundaries ([`units`]).
type Units = fn(i64) -> i64;

/// The boundaries of `part` a time (microseconds since the epoch) has passed since the epoch's:
/// its count of years, months, days, ... (weeks from the epoch's Monday), or `None` for a part
/// that is not DuckDB's.
fn units(part: &str) -> Option<Units> {
    use chrono::Datelike;
    const DAY: i64 = 86_400_000_000;
    fn date(micros: i64) -> chrono::NaiveDate {
        chrono::DateTime::from_timestamp_micros(micros).map_or(chrono::NaiveDate::MIN, |t| t.date_naive())
    }
    Some(match part.to_ascii_lowercase().as_str() {
        "year" | "years" | "yr" | "yrs" | "y" => |t| date(t).year() as i64,
        "quarter" | "quarters" => |t| {
            let d = date(t);
            d.year() as i64 * 4 + d.month0() as i64 / 3
        },
        "month" | "months" | "mon" | "mons" => |t| {
            let d = date(t);
            d.year() as i64 * 12 + d.month0() as i64
        },
        // 1970-01-01 was a Thursday: day 3 of the week that began on Monday 1969-12-29.
        "week" | "weeks" | "w" => |t| (t.div_euclid(DAY) + 3).div_euclid(7),
        "day" | "days" | "d" | "dayofmonth" => |t| t.div_euclid(DAY),
        "hour" | "hours" | "h" | "hr" | "hrs" => |t| t.div_euclid(3_600_000_000),
        "minute" | "minutes" | "m" | "min" | "mins" => |t| t.div_euclid(60_000_000),
        "second" | "seconds" | "s" | "sec" | "secs" => |t| t.div_euclid(1_000_000),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => |t| t.div_euclid(1_000),
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" => |t| t,
        _ => return None,
    })
}

/// Whether `t` is a type whose values are points in time.
fn time_point(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        match args {
            [p, a, b] if text(p) && [a, b].iter().all(|t| time_point(t) || t == &&DataType::Null) => {
                Ok(vec![DataType::Utf8, micros.clone(), micros])
            }
            [p, a, b] => plan_err!(
                "{}(part, start, end) takes a text and two dates or timestamps, not {p}, {a} and {b}",
                self.name
            ),
            _ => plan_err!("{}(part, start, end) takes three arguments", self.name),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = (args.args.iter())
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        // Times with a zone: the same instants, without it (UTC).
        let micros = |a: &ArrayRef| cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None));
        let (parts, start, end) = (
            arrays[0].as_string::<i32>(),
            micros(&arrays[1])?,
            micros(&arrays[2])?,
        );
        let (start, end) = (
            start.as_primitive::<TimestampMicrosecondType>(),
            end.as_primitive::<TimestampMicrosecondType>(),
        );
        let mut last: Option<(&str, Units)> = None;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if parts.is_null(row) || start.is_null(row) || end.is_null(row) {
                out.push(None);
                continue;
            }
            let part = parts.value(row);
            let count = match last {
                Some((p, f)) if p == part => f,
                _ => {
                    let Some(f) = units(part) else {
                        return exec_err!(
                            "{}: '{part}' is not a date part (year, quarter, month, week, day, hour, minute, second, millisecond, microsecond)",
                            self.name
                        );
                    };
                    last = Some((part, f));
                    f
                }
            };
            out.push(Some(count(end.value(row)) - count(start.value(row))));
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// DuckDB's `epoch_ms(t)`, `epoch_us(t)`, `epoch_ns(t)`: a timestamp's milliseconds
/// (microseconds, nanoseconds) since 1970-01-01, as BIGINT; `epoch_ms(n)` of an integer is the
/// timestamp `n` milliseconds after it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Epoch {
    unit: TimeUnit,
    signature: Signature,
}

impl Epoch {
    fn name_of(unit: &TimeUnit) -> &'static str {
        match unit {
            TimeUnit::Millisecond => "epoch_ms",
            TimeUnit::Microsecond => "epoch_us",
            _ => "epoch_ns",
        }
    }
}

impl ScalarUDFImpl for Epoch {
    fn name(&self) -> &str {
        Epoch::name_of(&self.unit)
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            // A time with a zone keeps it: its value is the instant's, in UTC.
            [DataType::Timestamp(_, zone)] => Ok(vec![DataType::Timestamp(self.unit, zone.clone())]),
            [t] if time_point(t) => Ok(vec![DataType::Timestamp(self.unit, None)]),
            [t] if self.unit == TimeUnit::Millisecond && (t.is_integer() || t == &DataType::Null) => {
                Ok(vec![DataType::Int64])
            }
            [t] => plan_err!("{}(time) takes a date or timestamp, not {t}", self.name()),
            _ => plan_err!("{}(time) takes one argument", self.name()),
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match args {
            [DataType::Int64] => DataType::Timestamp(TimeUnit::Millisecond, None),
            _ => DataType::Int64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let to = match args.args[0].data_type() {
            DataType::Int64 => DataType::Timestamp(TimeUnit::Millisecond, None),
            _ => DataType::Int64,
        };
        args.args[0].cast_to(&to, None)
    }
}

/// The date part functions, `dayname`, `monthname`, `date_diff`, `datediff` and the epochs.
pub(super) fn udfs() -> Vec<ScalarUDF> {
    let signature = Signature::user_defined(Volatility::Immutable);
    let preset = |name, inner, constant, returns| {
        ScalarUDF::from(Preset {
            name,
            inner,
            constant,
            returns,
            signature: signature.clone(),
        })
    };
    let mut udfs: Vec<ScalarUDF> = PARTS
        .iter()
        .map(|&(name, part)| {
            let returns = if part == "epoch" {
                DataType::Float64
            } else {
                DataType::Int64
            };
            preset(name, Inner::DatePart, part, returns)
        })
        .collect();
    udfs.push(preset("dayname", Inner::ToChar, "%A", DataType::Utf8));
    udfs.push(preset("monthname", Inner::ToChar, "%B", DataType::Utf8));
    for name in ["date_diff", "datediff"] {
        udfs.push(ScalarUDF::from(DateDiff {
            name,
            signature: signature.clone(),
        }));
    }
    for unit in [TimeUnit::Millisecond, TimeUnit::Microsecond, TimeUnit::Nanosecond] {
        udfs.push(ScalarUDF::from(Epoch {
            unit,
            signature: signature.clone(),
        }));
    }
    udfs
}

#[cfg(test)]
mod tests {
    use super::units;

    #[test]
    fn date_diff_counts_boundaries() {
        let at = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let diff = |p: &str, a: &str, b: &str| units(p).unwrap()(at(b)) - units(p).unwrap()(at(a));
        assert_eq!(diff("month", "2024-01-31 23:00:00", "2024-02-01 00:00:00"), 1);
        assert_eq!(diff("years", "2023-12-31 00:00:00", "2025-01-01 00:00:00"), 2);
        assert_eq!(diff("quarter", "2024-03-31 00:00:00", "2024-04-01 00:00:00"), 1);
        assert_eq!(diff("day", "2024-03-01 23:59:59", "2024-03-02 00:00:00"), 1);
        // Sunday 2024-03-10 to Monday 2024-03-11: a new week; Monday to Sunday: none.
        assert_eq!(diff("week", "2024-03-10 12:00:00", "2024-03-11 00:00:00"), 1);
        assert_eq!(diff("week", "2024-03-11 00:00:00", "2024-03-17 23:00:00"), 0);
        assert_eq!(diff("week", "1969-12-28 00:00:00", "1969-12-29 00:00:00"), 1);
        assert_eq!(diff("hour", "1969-12-31 23:30:00", "1970-01-01 00:10:00"), 1);
        assert_eq!(diff("second", "2024-03-01 00:00:05", "2024-03-01 00:00:02"), -3);
        assert!(units("fortnight").is_none());
    }
}
