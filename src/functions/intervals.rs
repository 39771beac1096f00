//! An interval times or divided by a number, as in DuckDB (`ts + n * INTERVAL 1 DAY`,
//! `INTERVAL 1 MONTH / 2`): DataFusion refused both ("Cannot get result type for temporal
//! operation Int64 * Interval(MonthDayNano)"). `interval_mul(i, n)` and `interval_div(i, n)`,
//! which `i * n`, `n * i` and `i / n` are planned as ([`segscore_plan::timestamps::IntervalScaling`]).
//!
//! By an integer, each of the months, days and nanoseconds is multiplied, exactly
//! (`INTERVAL '1 month 2 days' * 3` is `3 months 6 days`); a part past its range is an error. By
//! any other number, and in a division, as DuckDB 2.0.1 does it: the fraction of the months
//! goes to the days at 30 days a month (rounded to a millionth of a day), the fraction of the
//! days to the nanoseconds, which are rounded half to even (`INTERVAL 1 MONTH * 1.5` is
//! `1 month 15 days`, `INTERVAL 7 MONTH / 2` `3 months 15 days`, `INTERVAL 1 DAY / 3` 8
//! hours). DuckDB rounds to the microsecond, segscore to the nanosecond of DataFusion's
//! intervals. A division by zero is an error, as in DuckDB.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::compute::kernels::arity::try_binary;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Days in a month, where a fraction of months becomes days (DuckDB's `DAYS_PER_MONTH`).
const DAYS_PER_MONTH: f64 = 30.0;
/// Nanoseconds in a day.
const NANOS_PER_DAY: f64 = 86_400e9;

/// `interval_mul` or `interval_div` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Scale {
    name: &'static str,
    divide: bool,
    signature: Signature,
}

impl ScalarUDFImpl for Scale {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        let (i, n) = match args {
            [i, n] => (i, n),
            _ => {
                return plan_err!(
                    "{}(interval, number) takes two arguments, not {}",
                    self.name,
                    args.len()
                )
            }
        };
        if !matches!(i, DataType::Interval(_) | DataType::Null) {
            return plan_err!("{}(interval, number) takes an interval first, not {i}", self.name);
        }
        let n = match n {
            t if t.is_integer() && !self.divide => DataType::Int64,
            DataType::Null if !self.divide => DataType::Int64,
            t if t.is_numeric() || t.is_null() => DataType::Float64,
            t => return plan_err!("{}(interval, number) takes a number second, not {t}", self.name),
        };
        Ok(vec![interval, n])
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [i, n] = args.args.as_slice() else {
            return exec_err!("{}(interval, number) takes two arguments", self.name);
        };
        let scalar = matches!((i, n), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let (i, n) = (i.to_array(args.number_rows)?, n.to_array(args.number_rows)?);
        let intervals = i.as_primitive::<IntervalMonthDayNanoType>();
        let scaled: PrimitiveArray<IntervalMonthDayNanoType> = match n.data_type() {
            DataType::Int64 => try_binary(intervals, n.as_primitive::<Int64Type>(), times),
            DataType::Float64 => {
                let divide = self.divide;
                try_binary(intervals, n.as_primitive::<Float64Type>(), |i, n| {
                    fraction(i, n, divide)
                })
            }
            t => return exec_err!("{}(interval, number) takes a number second, not {t}", self.name),
        }?;
        super::columnar(Arc::new(scaled) as ArrayRef, scalar)
    }
}

/// The error of a part past its range.
fn overflow() -> ArrowError {
    ArrowError::ComputeError("Overflow in multiplication of INTERVAL".into())
}

/// `i` times the integer `n`, each part exactly.
fn times(i: IntervalMonthDayNano, n: i64) -> Result<IntervalMonthDayNano, ArrowError> {
    let part = |x: i64| x.checked_mul(n).ok_or_else(overflow);
    let narrow = |x: i64| i32::try_from(x).map_err(|_| overflow());
    Ok(IntervalMonthDayNano::new(
        narrow(part(i.months.into())?)?,
        narrow(part(i.days.into())?)?,
        part(i.nanoseconds)?,
    ))
}

/// `i` times (or, with `divide`, divided by) `f`, the fractions of its months and days carried
/// down as DuckDB carries them ([module docs](self)).
fn fraction(i: IntervalMonthDayNano, f: f64, divide: bool) -> Result<IntervalMonthDayNano, ArrowError> {
    if divide && f == 0.0 {
        return Err(ArrowError::DivideByZero);
    }
    let by = |x: f64| if divide { x / f } else { x * f };
    let months = by(i.months.into());
    let whole_months = months.trunc();
    let carried = ((months - whole_months) * DAYS_PER_MONTH * 1e6).round() / 1e6;
    let days = by(i.days.into()) + carried;
    let whole_days = days.trunc();
    let nanos = (by(i.nanoseconds as f64) + (days - whole_days) * NANOS_PER_DAY).round_ties_even();
    let int32 = |x: f64| {
        (x.is_finite() && x >= i32::MIN as f64 && x <= i32::MAX as f64)
            .then_some(x as i32)
            .ok_or_else(overflow)
    };
    // i64::MAX as f64 rounds up to 2^63, past the range.
    let int64 = (nanos.is_finite() && nanos >= i64::MIN as f64 && nanos < i64::MAX as f64)
        .then_some(nanos as i64)
        .ok_or_else(overflow)?;
    Ok(IntervalMonthDayNano::new(
        int32(whole_months)?,
        int32(whole_days)?,
        int64,
    ))
}

/// `interval_mul(interval, number)` and `interval_div(interval, number)`.
pub fn udfs() -> [ScalarUDF; 2] {
    let scale = |name, divide| {
        ScalarUDF::from(Scale {
            name,
            divide,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    };
    [scale("interval_mul", false), scale("interval_div", true)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(months: i32, days: i32, nanos: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, nanos)
    }

    /// Each case DuckDB 2.0.1's answer, in nanoseconds (to the microsecond, DuckDB's).
    #[test]
    fn fractions_carry_down_as_in_duckdb() {
        let hour = 3_600_000_000_000;
        let cases = [
            (interval(1, 0, 0), 1.5, false, interval(1, 15, 0)),
            (interval(1, 0, 0), -1.5, false, interval(-1, -15, 0)),
            (
                interval(1, 0, 0),
                0.01,
                false,
                interval(0, 0, 7 * hour + 12 * 60_000_000_000),
            ),
            (interval(1, 0, 0), 0.333333333, false, interval(0, 10, 0)),
            (interval(-1, 2, 0), 0.5, false, interval(0, -14, 0)),
            (interval(1, 0, 0), 7.0, true, interval(0, 4, 24_685_689_600_000)),
            (interval(7, 0, 0), 2.0, true, interval(3, 15, 0)),
            (interval(0, 1, 0), 3.0, true, interval(0, 0, 8 * hour)),
            // DuckDB: -12 hours, its half microsecond rounded to even.
            (
                interval(0, 1, 1_000),
                -0.5,
                false,
                interval(0, 0, -12 * hour - 500),
            ),
            (
                interval(1, 1, 0),
                0.123456789,
                false,
                interval(0, 3, 71_466_692_169_600),
            ),
        ];
        for (i, f, divide, want) in cases {
            assert_eq!(
                fraction(i, f, divide).unwrap(),
                want,
                "{i:?} {} {f}",
                if divide { "/" } else { "*" }
            );
        }
        assert!(matches!(
            fraction(interval(0, 1, 0), 0.0, true),
            Err(ArrowError::DivideByZero)
        ));
        assert!(fraction(interval(1, 0, 0), 1e300, false).is_err());
    }

    #[test]
    fn an_integer_multiplies_each_part_exactly() {
        assert_eq!(times(interval(1, 2, 3), 3).unwrap(), interval(3, 6, 9));
        assert_eq!(times(interval(1, 2, 3), -2).unwrap(), interval(-2, -4, -6));
        assert!(times(interval(0, i32::MAX, 0), 2).is_err());
        assert!(times(interval(0, 0, i64::MAX / 2 + 1), 2).is_err());
    }
}
