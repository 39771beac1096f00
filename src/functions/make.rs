//! DuckDB's `make_timestamp(year, month, day, hour, minute, seconds)` (and
//! `make_timestamp(microseconds)`, since 1970) and `make_time(hour, minute, seconds)`, the
//! seconds with their fraction (rounded to the microsecond). DataFusion has no
//! `make_timestamp`, and its `make_time` takes whole seconds only (`make_time(10, 11, 12.5)`
//! was refused). As in DuckDB 2.0.1: a date the calendar has not (`2024-02-30`) or a time past
//! `24:00:00` (an hour past 24, a minute past 59, seconds below 0 or past 60) is an error naming
//! it; `24:00:00` is the next day's midnight, 60 seconds the next minute; a year before 1 is BC
//! (`-10` is 11 BC). And `to_timestamp(seconds)` of a float to the microsecond, as DuckDB's
//! ([`ToTimestamp`]).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Time64MicrosecondArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::dates::DAY;

/// `make_timestamp` or `make_time` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Make {
    name: &'static str,
    /// `make_time`: a time of day, of three arguments.
    time: bool,
    signature: Signature,
}

/// The microseconds of `hour:minute:seconds`, where it is a time of day (`24:00:00` the last).
fn time_of_day(hour: i64, minute: i64, seconds: f64) -> Option<i64> {
    let valid = (0..=24).contains(&hour) && (0..60).contains(&minute) && (0.0..=60.0).contains(&seconds);
    if !valid {
        return None;
    }
    let micros = (hour * 60 + minute) * 60_000_000 + (seconds * 1e6).round() as i64;
    (micros <= DAY).then_some(micros)
}

/// The microseconds since 1970 of the date `year-month-day`, where the calendar has it.
fn date(year: i64, month: i64, day: i64) -> Option<i64> {
    let d = NaiveDate::from_ymd_opt(
        year.try_into().ok()?,
        month.try_into().ok()?,
        day.try_into().ok()?,
    )?;
    (d - NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days()
        .checked_mul(DAY)
}

impl ScalarUDFImpl for Make {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let whole = |t: &DataType| t.is_integer() || t.is_null();
        let number = |t: &DataType| t.is_numeric() || t.is_null();
        let parts = if self.time { 3 } else { 6 };
        match args {
            [t] if !self.time && whole(t) => Ok(vec![DataType::Int64]),
            [whole_parts @ .., s] if args.len() == parts && whole_parts.iter().all(whole) && number(s) => {
                let mut types = vec![DataType::Int64; parts - 1];
                types.push(DataType::Float64);
                Ok(types)
            }
            _ if self.time => plan_err!(
                "make_time(hour, minute, seconds) takes two integers and a number, not {args:?}"
            ),
            _ => plan_err!(
                "make_timestamp takes (year, month, day, hour, minute, seconds): five integers and a number, or (microseconds) an integer, not {args:?}"
            ),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.time {
            DataType::Time64(TimeUnit::Microsecond)
        } else {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = (args.args.iter())
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        if let [micros] = arrays.as_slice() {
            // Microseconds since 1970: a timestamp as they are, where the calendar has it.
            let values = micros.as_primitive::<Int64Type>();
            if let Some(v) =
                (values.iter().flatten()).find(|v| chrono::DateTime::from_timestamp_micros(*v).is_none())
            {
                return exec_err!("make_timestamp: microseconds out of range: {v}");
            }
            let out = cast(micros, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            return super::columnar(out, scalar);
        }
        let (ints, seconds) = arrays.split_at(arrays.len() - 1);
        let ints: Vec<_> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
        let seconds = seconds[0].as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if seconds.is_null(row) || ints.iter().any(|a| a.is_null(row)) {
                out.push(None);
                continue;
            }
            let v: Vec<i64> = ints.iter().map(|a| a.value(row)).collect();
            let s = seconds.value(row);
            let (h, m) = (v[v.len() - 2], v[v.len() - 1]);
            let Some(time) = time_of_day(h, m, s) else {
                return exec_err!("{}: time out of range: {h}:{m}:{s}", self.name);
            };
            if self.time {
                if time == DAY {
                    // Arrow's TIME ends before it; DuckDB's holds 24:00:00.
                    return exec_err!(
                        "make_time: 24:00:00 is past the last time of a day here, 23:59:59.999999"
                    );
                }
                out.push(Some(time));
                continue;
            }
            let Some(day) = date(v[0], v[1], v[2]) else {
                return exec_err!("{}: date out of range: {}-{}-{}", self.name, v[0], v[1], v[2]);
            };
            let Some(t) = day.checked_add(time) else {
                return exec_err!("{}: timestamp out of range", self.name);
            };
            out.push(Some(t));
        }
        let result: ArrayRef = if self.time {
            Arc::new(Time64MicrosecondArray::from(out))
        } else {
            Arc::new(TimestampMicrosecondArray::from(out))
        };
        super::columnar(result, scalar)
    }
}

/// `to_timestamp(seconds)` of a float, as DuckDB computes it: the seconds since 1970 to the
/// microsecond (rounded), a TIMESTAMP; any other argument is DataFusion's `to_timestamp`'s.
/// DataFusion's took `seconds * 1e9` as nanoseconds with a saturating cast: `1704164645.0005`
/// was `...05.000499968`, a NaN 1970-01-01 and `1.7e12` (milliseconds given as seconds)
/// 2262-04-11, without a word; here the last two are errors naming the value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    inner: Arc<ScalarUDF>,
}

/// Whether `t` is a float type.
fn float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    /// DataFusion's, made for the session's time zone (a zoned result for other arguments).
    fn with_updated_config(&self, config: &datafusion::common::config::ConfigOptions) -> Option<ScalarUDF> {
        let inner = Arc::new(self.inner.inner().with_updated_config(config)?);
        Some(ScalarUDF::from(ToTimestamp { inner }))
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] if float(t) => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
            _ => self.inner.return_type(args),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [x] = args.args.as_slice() else {
            return self.inner.invoke_with_args(args);
        };
        if !float(&x.data_type()) {
            return self.inner.invoke_with_args(args);
        }
        let scalar = matches!(x, ColumnarValue::Scalar(_));
        let seconds = cast(&x.to_array(args.number_rows)?, &DataType::Float64)?;
        let seconds = seconds.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(seconds.len());
        for v in seconds.iter() {
            let Some(v) = v else {
                out.push(None);
                continue;
            };
            let micros = (v * 1e6).round();
            let fits = micros.is_finite() && micros.abs() < 9.2e18;
            // `as` saturates, so a float past an i64 is refused before it.
            match fits
                .then_some(micros as i64)
                .filter(|m| chrono::DateTime::from_timestamp_micros(*m).is_some())
            {
                Some(m) => out.push(Some(m)),
                None => return exec_err!("to_timestamp: seconds out of range: {v:?}"),
            }
        }
        super::columnar(Arc::new(TimestampMicrosecondArray::from(out)), scalar)
    }
}

/// `make_timestamp`, `make_time` and `to_timestamp` (in place of DataFusion's).
pub(super) fn udfs() -> [ScalarUDF; 3] {
    let make = |name, time| {
        ScalarUDF::from(Make {
            name,
            time,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    };
    let to_timestamp = ScalarUDF::from(ToTimestamp {
        inner: datafusion::functions::datetime::to_timestamp(
            &datafusion::common::config::ConfigOptions::default(),
        ),
    });
    [
        make("make_timestamp", false),
        make("make_time", true),
        to_timestamp,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as DuckDB 2.0.1 answers it.
    #[test]
    fn times_and_dates_are_checked_as_duckdb_checks_them() {
        let hour = 3_600_000_000;
        assert_eq!(
            time_of_day(10, 11, 12.5),
            Some(10 * hour + 11 * 60_000_000 + 12_500_000)
        );
        assert_eq!(time_of_day(24, 0, 0.0), Some(DAY));
        assert_eq!(time_of_day(10, 11, 60.0), Some(10 * hour + 12 * 60_000_000));
        assert_eq!(time_of_day(10, 11, 59.9999995), Some(10 * hour + 12 * 60_000_000));
        for (h, m, s) in [
            (24, 0, 1.0),
            (25, 0, 0.0),
            (10, 60, 0.0),
            (10, 11, 61.0),
            (10, 11, -1.0),
            (-1, 0, 0.0),
        ] {
            assert_eq!(time_of_day(h, m, s), None, "{h}:{m}:{s}");
        }
        assert_eq!(date(1970, 1, 2), Some(DAY));
        assert_eq!(date(2024, 2, 30), None);
        assert_eq!(date(2024, 13, 1), None);
        // Year -10 is 11 BC, 1981 years and 10 days before 1970 (of 365.2425 days).
        assert_eq!(date(-10, 1, 1).map(|m| m / DAY), Some(-723_180));
    }
}
