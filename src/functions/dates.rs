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
/// between the two times, as DuckDB 2 counts them: `date_diff('month', DATE '2024-01-31', DATE
/// '2024-02-01')` is 1, `date_diff('day', ...)` the days between the dates whatever the hours,
/// and `date_diff('week', ...)` those days' whole weeks (DuckDB counts no Monday). Times with a
/// time zone are counted in UTC.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct DateDiff {
    pub(super) name: &'static str,
    pub(super) signature: Signature,
    /// What it counts: the boundaries crossed (`date_diff`), or the whole parts (`date_sub`).
    pub(super) whole: bool,
}

/// One part's count between two times (microseconds since the epoch): start, then end
/// ([`part_diff`]); None where it is past a BIGINT (microseconds between times 300,000 years
/// apart).
pub(super) type PartDiff = fn(i64, i64) -> Option<i64>;

/// A date part, as `date_diff` and `date_sub` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Millennium,
    Century,
    Decade,
    Year,
    IsoYear,
    Quarter,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
}

/// The part `name` is, by any of DuckDB's names for it (`yrs`, `mons`, `dow`, `epoch`, ...).
pub(super) fn part(name: &str) -> Option<Part> {
    Some(match name.to_ascii_lowercase().as_str() {
        "year" | "years" | "yr" | "yrs" | "y" => Part::Year,
        "decade" | "decades" | "dec" | "decs" => Part::Decade,
        "century" | "centuries" | "cent" | "c" => Part::Century,
        "millennium" | "millennia" | "millenniums" | "millenium" | "mil" | "mils" => Part::Millennium,
        "isoyear" => Part::IsoYear,
        "quarter" | "quarters" => Part::Quarter,
        "month" | "months" | "mon" | "mons" => Part::Month,
        "week" | "weeks" | "w" | "weekofyear" | "yearweek" => Part::Week,
        "day" | "days" | "d" | "dayofmonth" | "dow" | "dayofweek" | "weekday" | "isodow" | "doy"
        | "dayofyear" | "julian" => Part::Day,
        "hour" | "hours" | "h" | "hr" | "hrs" => Part::Hour,
        "minute" | "minutes" | "m" | "min" | "mins" => Part::Minute,
        "second" | "seconds" | "s" | "sec" | "secs" | "epoch" => Part::Second,
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "msecond" | "mseconds" => {
            Part::Millisecond
        }
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "usecond" | "useconds" => {
            Part::Microsecond
        }
        _ => return None,
    })
}

/// Microseconds in a day.
pub(super) const DAY: i64 = 86_400_000_000;

/// How `date_diff` counts `part` between two times (microseconds since the epoch), as DuckDB
/// 2.0 does, or `None` for a part that is not DuckDB's. Most count the boundaries passed (the
/// difference of each time's count of the part since the epoch's); decades, centuries and
/// millennia divide the years as DuckDB does (toward zero), and weeks are the whole weeks in the
/// days between the dates.
fn part_diff(name: &str) -> Option<PartDiff> {
    use chrono::Datelike;
    fn date(micros: i64) -> chrono::NaiveDate {
        civil(micros).map_or(chrono::NaiveDate::MIN, |t| t.date())
    }
    fn year(t: i64) -> i64 {
        date(t).year() as i64
    }
    fn days(t: i64) -> i64 {
        t.div_euclid(DAY)
    }
    fn months(t: i64) -> i64 {
        let d = date(t);
        d.year() as i64 * 12 + d.month0() as i64
    }
    fn seconds(t: i64) -> i64 {
        t.div_euclid(1_000_000)
    }
    Some(match part(name)? {
        Part::Year => |a, b| Some(year(b) - year(a)),
        Part::Decade => |a, b| Some(year(b) / 10 - year(a) / 10),
        Part::Century => |a, b| Some(year(b) / 100 - year(a) / 100),
        Part::Millennium => |a, b| Some(year(b) / 1000 - year(a) / 1000),
        Part::IsoYear => |a, b| Some(date(b).iso_week().year() as i64 - date(a).iso_week().year() as i64),
        Part::Quarter => |a, b| Some(months(b).div_euclid(3) - months(a).div_euclid(3)),
        Part::Month => |a, b| Some(months(b) - months(a)),
        Part::Week => |a, b| Some((days(b) - days(a)) / 7),
        Part::Day => |a, b| Some(days(b) - days(a)),
        Part::Hour => |a, b| Some(b.div_euclid(3_600_000_000) - a.div_euclid(3_600_000_000)),
        Part::Minute => |a, b| Some(b.div_euclid(60_000_000) - a.div_euclid(60_000_000)),
        Part::Second => |a, b| Some(seconds(b) - seconds(a)),
        Part::Millisecond => |a, b| b.div_euclid(1_000).checked_sub(a.div_euclid(1_000)),
        Part::Microsecond => |a, b| b.checked_sub(a),
    })
}

/// Whether `t` is a type whose values are points in time.
pub(super) fn time_point(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))
}

/// Points in time as microseconds since 1970 in UTC (a zoned time: the same instant, without
/// its zone).
pub(super) fn utc_micros(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?)
}

/// A time (microseconds since 1970) as a date and a time of day, where the calendar has it.
pub(super) fn civil(micros: i64) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
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
        let (parts, start, end) = (
            arrays[0].as_string::<i32>(),
            utc_micros(&arrays[1])?,
            utc_micros(&arrays[2])?,
        );
        let (start, end) = (
            start.as_primitive::<TimestampMicrosecondType>(),
            end.as_primitive::<TimestampMicrosecondType>(),
        );
        let mut last: Option<(&str, PartDiff)> = None;
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
                    let count = if self.whole {
                        super::age::part_sub
                    } else {
                        part_diff
                    };
                    let Some(f) = count(part) else {
                        return exec_err!(
                            "{}: '{part}' is not a date part (millennium, century, decade, year, isoyear, quarter, month, week, day, hour, minute, second, millisecond, microsecond, or DuckDB's other names for them)",
                            self.name
                        );
                    };
                    last = Some((part, f));
                    f
                }
            };
            let Some(n) = count(start.value(row), end.value(row)) else {
                return exec_err!("{}: the count of '{part}' is past a BIGINT", self.name);
            };
            out.push(Some(n));
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
            whole: false,
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
    use super::part_diff;

    /// Every expected count is DuckDB 2.0.1's `date_diff` of the same times.
    #[test]
    fn date_diff_counts_as_duckdb() {
        let at = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let diff = |p: &str, a: &str, b: &str| part_diff(p).unwrap()(at(a), at(b)).unwrap();
        assert_eq!(diff("month", "2024-01-31 23:00:00", "2024-02-01 00:00:00"), 1);
        assert_eq!(diff("years", "2023-12-31 00:00:00", "2025-01-01 00:00:00"), 2);
        assert_eq!(diff("quarter", "2024-03-31 00:00:00", "2024-04-01 00:00:00"), 1);
        assert_eq!(diff("day", "2024-03-01 23:59:59", "2024-03-02 00:00:00"), 1);
        // Weeks are the days' whole weeks, toward zero: no Monday is counted.
        assert_eq!(diff("week", "2023-12-31 00:00:00", "2024-01-01 00:00:00"), 0);
        assert_eq!(diff("week", "2023-12-31 00:00:00", "2024-02-10 00:00:00"), 5);
        assert_eq!(diff("week", "2024-01-01 23:00:00", "2024-01-08 01:00:00"), 1);
        assert_eq!(diff("weeks", "2024-01-10 00:00:00", "2024-01-04 00:00:00"), 0);
        assert_eq!(diff("yearweek", "2024-01-10 00:00:00", "2024-01-03 00:00:00"), -1);
        assert_eq!(diff("week", "1969-12-20 00:00:00", "1970-01-02 00:00:00"), 1);
        assert_eq!(diff("hour", "1969-12-31 23:30:00", "1970-01-01 00:10:00"), 1);
        assert_eq!(diff("second", "2024-03-01 00:00:05", "2024-03-01 00:00:02"), -3);
        assert_eq!(diff("epoch", "1969-12-31 23:59:59.5", "1970-01-01 00:00:00.5"), 1);
        assert_eq!(diff("decade", "2019-12-31 00:00:00", "2020-01-01 00:00:00"), 1);
        // Year -14 (15 BC) is decade -1 to DuckDB, as C++ divides.
        assert_eq!(diff("decade", "-0014-01-01 00:00:00", "0005-01-01 00:00:00"), 1);
        assert_eq!(diff("century", "1999-12-31 00:00:00", "2000-01-01 00:00:00"), 1);
        assert_eq!(diff("century", "2000-12-31 00:00:00", "2001-01-01 00:00:00"), 0);
        assert_eq!(
            diff("millennium", "1999-12-31 00:00:00", "2000-01-01 00:00:00"),
            1
        );
        assert_eq!(diff("isoyear", "2024-12-29 00:00:00", "2024-12-30 00:00:00"), 1);
        assert_eq!(diff("isoyear", "2021-01-03 00:00:00", "2021-01-04 00:00:00"), 1);
        assert_eq!(diff("dow", "2024-01-01 23:00:00", "2024-01-02 01:00:00"), 1);
        assert_eq!(
            diff("mseconds", "2024-01-01 23:00:00", "2024-01-02 01:00:00"),
            7_200_000
        );
        assert!(part_diff("fortnight").is_none());
        assert!(part_diff("qtrs").is_none());
        // Microseconds between times 400,000 years apart are past a BIGINT (they wrapped, or
        // panicked in a debug build); their days are not.
        let (far, near) = (-6_400_000_000_000_000_000, 6_400_000_000_000_000_000);
        assert_eq!(part_diff("microsecond").unwrap()(far, near), None);
        assert_eq!(part_diff("day").unwrap()(far, near), Some(148_148_149));
    }
}
