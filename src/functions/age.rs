//! DuckDB's `age(end, start)` and `date_sub(part, start, end)` (`datesub`), which DataFusion has
//! none for.
//!
//! `age` is the interval from `start` to `end` in years, months and days as a calendar reads
//! them, then the time (PostgreSQL's and DuckDB's `age`): each field's difference, a negative
//! one borrowed from the next (a day borrows the days of the start's month, or of the end's
//! where `end` is the earlier): `age(TIMESTAMP '2024-03-31', TIMESTAMP '2024-02-29')` is
//! `1 month 2 days`, `age(DATE '2024-01-01', DATE '2024-03-15')` `-2 months -14 days`.
//!
//! `date_sub` counts the whole parts between the two times, where `date_diff` counts the
//! boundaries crossed: the days, hours, ... and weeks of the time between them (toward zero), the
//! months of `age` (a month ending on a month's last day whole: 2024-01-31 to 2024-02-29 is 1),
//! and years, quarters, decades, centuries and millennia as those months divide. Times with a
//! time zone are counted in UTC. Both as DuckDB 2.0.1 computes them (its `Interval::GetAge` and
//! `DateSub`; every expected value in the tests is DuckDB's).

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::dates::{civil, part, time_point, utc_micros, DateDiff, Part, PartDiff, DAY};

/// Days in the month `month` (1 to 12) of `year`.
fn month_days(year: i32, month: u32) -> i64 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    first.zip(next).map_or(31, |(a, b)| (b - a).num_days())
}

/// `age(end, start)` ([module docs](self)): months (years in them), days and microseconds.
fn age(end: i64, start: i64) -> Option<(i64, i64, i64)> {
    let (a, b) = (civil(end)?, civil(start)?);
    let flip = if end < start { -1 } else { 1 };
    let field = |x: i64, y: i64| flip * (x - y);
    let mut years = field(a.year().into(), b.year().into());
    let mut months = field(a.month().into(), b.month().into());
    let mut days = field(a.day().into(), b.day().into());
    let mut hours = field(a.hour().into(), b.hour().into());
    let mut minutes = field(a.minute().into(), b.minute().into());
    let mut seconds = field(a.second().into(), b.second().into());
    let micros_of = |t: &NaiveDateTime| i64::from(t.nanosecond() / 1_000);
    let mut micros = field(micros_of(&a), micros_of(&b));
    let borrow = |low: &mut i64, high: &mut i64, by: i64| {
        while *low < 0 {
            *low += by;
            *high -= 1;
        }
    };
    borrow(&mut micros, &mut seconds, 1_000_000);
    borrow(&mut seconds, &mut minutes, 60);
    borrow(&mut minutes, &mut hours, 60);
    borrow(&mut hours, &mut days, 24);
    // The days of the start's month (of the end's, where the end is the earlier).
    let (y, m) = if end < start {
        (a.year(), a.month())
    } else {
        (b.year(), b.month())
    };
    borrow(&mut days, &mut months, month_days(y, m));
    borrow(&mut months, &mut years, 12);
    let time = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
    Some((flip * (years * 12 + months), flip * days, flip * time))
}

/// The whole months from `start` to `end` (DuckDB's `DateSub` of months): `age`'s months, a
/// start later in its month than the end's last day moved back to that day first.
fn months_between(start: i64, end: i64) -> i64 {
    if start > end {
        return -months_between(end, start);
    }
    let (Some(s), Some(e)) = (civil(start), civil(end)) else {
        return 0;
    };
    let last = month_days(e.year(), e.month());
    let mut start = start;
    if i64::from(e.day()) == last {
        let (day, time) = (i64::from(s.day()), s.time());
        if day > last || (day == last && time < e.time()) {
            let moved = NaiveDate::from_ymd_opt(s.year(), s.month(), last as u32).map(|d| d.and_time(time));
            if let Some(moved) = moved {
                start = moved.and_utc().timestamp_micros();
            }
        }
    }
    age(end, start).map_or(0, |(months, _, _)| months)
}

/// How `date_sub` counts `name` between two times (microseconds since the epoch), or `None`
/// for a part that is not DuckDB's ([module docs](self)).
pub(super) fn part_sub(name: &str) -> Option<PartDiff> {
    /// The whole `unit`s (microseconds) from `a` to `b`.
    fn whole(a: i64, b: i64, unit: i64) -> Option<i64> {
        i64::try_from((i128::from(b) - i128::from(a)) / i128::from(unit)).ok()
    }
    Some(match part(name)? {
        Part::Millennium => |a, b| Some(months_between(a, b) / 12_000),
        Part::Century => |a, b| Some(months_between(a, b) / 1_200),
        Part::Decade => |a, b| Some(months_between(a, b) / 120),
        Part::Year | Part::IsoYear => |a, b| Some(months_between(a, b) / 12),
        Part::Quarter => |a, b| Some(months_between(a, b) / 3),
        Part::Month => |a, b| Some(months_between(a, b)),
        Part::Week => |a, b| whole(a, b, 7 * DAY),
        Part::Day => |a, b| whole(a, b, DAY),
        Part::Hour => |a, b| whole(a, b, 3_600_000_000),
        Part::Minute => |a, b| whole(a, b, 60_000_000),
        Part::Second => |a, b| whole(a, b, 1_000_000),
        Part::Millisecond => |a, b| whole(a, b, 1_000),
        Part::Microsecond => |a, b| whole(a, b, 1),
    })
}

/// `age(end, start)` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Age {
    signature: Signature,
}

impl ScalarUDFImpl for Age {
    fn name(&self) -> &str {
        "age"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let point = |t: &DataType| time_point(t) || t.is_null();
        match args {
            [a, b] if point(a) && point(b) => Ok(vec![DataType::Timestamp(TimeUnit::Microsecond, None); 2]),
            [a, b] => plan_err!("age(end, start) takes two dates or timestamps, not {a} and {b}"),
            [_] => plan_err!("age(t) takes the time it counts to too: write age(current_date, t)"),
            _ => plan_err!("age(end, start) takes two arguments, not {}", args.len()),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [end, start] = args.args.as_slice() else {
            return exec_err!("age(end, start) takes two arguments");
        };
        let scalar = matches!((end, start), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let rows = args.number_rows;
        let (end, start) = (
            utc_micros(&end.to_array(rows)?)?,
            utc_micros(&start.to_array(rows)?)?,
        );
        let (end, start) = (
            end.as_primitive::<TimestampMicrosecondType>(),
            start.as_primitive::<TimestampMicrosecondType>(),
        );
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            if end.is_null(row) || start.is_null(row) {
                out.push(None);
                continue;
            }
            let Some((months, days, micros)) = age(end.value(row), start.value(row)) else {
                return exec_err!("age: a time outside the calendar's range");
            };
            let (Ok(months), Ok(days)) = (i32::try_from(months), i32::try_from(days)) else {
                return exec_err!("age: an interval outside its range");
            };
            out.push(Some(IntervalMonthDayNano::new(months, days, micros * 1_000)));
        }
        let result: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(out));
        super::columnar(result, scalar)
    }
}

/// `age`, `date_sub` and `datesub`.
pub(super) fn udfs() -> Vec<ScalarUDF> {
    let signature = Signature::user_defined(Volatility::Immutable);
    let sub = |name| {
        ScalarUDF::from(DateDiff {
            name,
            signature: signature.clone(),
            whole: true,
        })
    };
    vec![
        ScalarUDF::from(Age {
            signature: signature.clone(),
        }),
        sub("date_sub"),
        sub("datesub"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    /// Each expected value DuckDB 2.0.1's.
    #[test]
    fn age_borrows_as_duckdb() {
        let hour = 3_600_000_000;
        let cases = [
            ("2024-03-31 00:00:00", "2024-02-29 00:00:00", (1, 2, 0)),
            ("2024-01-31 00:00:00", "2023-02-28 10:00:00", (11, 2, 14 * hour)),
            ("2024-01-01 00:00:00", "2024-03-15 00:00:00", (-2, -14, 0)),
            ("2024-02-29 00:00:00", "2024-03-31 00:00:00", (-1, -2, 0)),
            (
                "2023-03-01 00:00:00",
                "2024-02-29 12:00:00",
                (-11, -28, -12 * hour),
            ),
            (
                "2024-03-01 00:00:00",
                "2024-01-31 00:00:00.5",
                (1, 0, 24 * hour - 500_000),
            ),
            ("2024-03-31 10:00:00", "2024-03-31 10:00:00", (0, 0, 0)),
        ];
        for (end, start, want) in cases {
            assert_eq!(age(t(end), t(start)), Some(want), "age({end}, {start})");
        }
    }

    /// Each expected value DuckDB 2.0.1's `date_sub`.
    #[test]
    fn date_sub_counts_whole_parts_as_duckdb() {
        let cases = [
            ("month", "2024-01-31 00:00:00", "2024-02-29 00:00:00", 1),
            ("month", "2024-01-31 00:00:00", "2024-03-01 00:00:00", 1),
            ("month", "2024-03-31 00:00:00", "2024-02-29 00:00:00", -1),
            ("month", "2024-02-29 00:00:00", "2024-01-31 00:00:00", -1),
            ("month", "2024-01-30 00:00:00", "2024-02-29 00:00:00", 1),
            ("month", "2024-03-31 10:00:00", "2024-04-30 09:00:00", 0),
            ("month", "2024-03-30 10:00:00", "2024-04-30 09:00:00", 0),
            ("month", "2024-04-30 09:00:00", "2024-03-31 10:00:00", 0),
            ("month", "2024-01-31 12:00:00", "2024-02-29 11:00:00", 0),
            ("month", "2024-01-31 12:00:00", "2024-02-29 13:00:00", 1),
            ("year", "2023-06-15 10:00:00", "2024-06-15 09:59:00", 0),
            ("year", "2023-06-15 10:00:00", "2024-06-15 10:00:00", 1),
            ("year", "2024-02-29 00:00:00", "2025-02-28 00:00:00", 1),
            ("quarter", "2024-01-15 00:00:00", "2024-04-14 00:00:00", 0),
            ("decade", "2000-05-01 00:00:00", "2010-04-30 00:00:00", 0),
            ("century", "1999-12-31 00:00:00", "2100-01-01 00:00:00", 1),
            ("millennium", "1000-01-01 00:00:00", "2999-12-31 00:00:00", 1),
            ("day", "2024-01-01 10:00:00", "2024-01-02 09:00:00", 0),
            ("day", "2024-01-02 09:00:00", "2024-01-01 10:00:00", 0),
            ("dow", "2024-01-01 00:00:00", "2024-01-05 00:00:00", 4),
            ("week", "2024-01-01 10:00:00", "2024-01-08 09:00:00", 0),
            ("yearweek", "2024-01-01 00:00:00", "2024-01-14 00:00:00", 1),
            ("hour", "2024-01-01 10:30:00", "2024-01-01 12:29:00", 1),
            ("second", "2024-01-01 00:00:01.5", "2024-01-01 00:00:00", -1),
            ("ms", "2024-01-01 00:00:00", "2024-01-01 00:00:00.0015", 1),
        ];
        for (p, start, end, want) in cases {
            let f = part_sub(p).unwrap();
            assert_eq!(f(t(start), t(end)), Some(want), "date_sub('{p}', {start}, {end})");
        }
        assert!(part_sub("fortnight").is_none());
        // Microseconds between times 400,000 years apart are past a BIGINT; their days are not.
        let (far, near) = (-6_400_000_000_000_000_000, 6_400_000_000_000_000_000);
        assert_eq!(part_sub("microsecond").unwrap()(far, near), None);
        assert_eq!(part_sub("day").unwrap()(far, near), Some(148_148_148));
    }
}
