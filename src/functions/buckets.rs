//! DuckDB's `time_bucket(width, t [, origin | offset])`: the start of the bucket of `width`
//! that holds `t`, a date for a date and a timestamp for a timestamp, buckets counted from
//! 2000-01-03 (a Monday: weeks start on Mondays) or, for a width of months, 2000-01-01, as
//! DuckDB counts them; an origin (a timestamp) or an offset (an interval) moves them. Computed by
//! DataFusion's `date_bin`, which lacks DuckDB's origins and takes no date (it gave a timestamp).

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Seconds from 1970-01-01 to DuckDB's origins: 2000-01-03 (a Monday), and 2000-01-01 for
/// widths of months.
const MONDAY_2000: i64 = 946_857_600;
const NEW_YEAR_2000: i64 = 946_684_800;
const NANOS: i64 = 1_000_000_000;

/// The function ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeBucket {
    signature: Signature,
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        let (width, t, rest) = match args {
            [w, t, rest @ ..] if rest.len() <= 1 => (w, t, rest),
            _ => return plan_err!("time_bucket(width, t [, origin]) takes two or three arguments"),
        };
        if !matches!(width, DataType::Interval(_) | DataType::Null | DataType::Utf8) {
            return plan_err!("time_bucket(width, t): the width is an INTERVAL, not {width}");
        }
        let t = match t {
            DataType::Date32 | DataType::Date64 => DataType::Date32,
            DataType::Timestamp(..) => t.clone(),
            DataType::Null => DataType::Timestamp(TimeUnit::Microsecond, None),
            t => return plan_err!("time_bucket(width, t): t is a date or a timestamp, not {t}"),
        };
        let zone = match &t {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let mut types = vec![interval.clone(), t];
        match rest {
            [] => {}
            [DataType::Interval(_)] => types.push(interval),
            [DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Null
            | DataType::Utf8] => types.push(DataType::Timestamp(TimeUnit::Nanosecond, zone)),
            [o] => {
                return plan_err!(
                    "time_bucket(width, t, origin): the origin is a timestamp or an interval, not {o}"
                )
            }
            _ => return plan_err!("time_bucket(width, t [, origin]) takes two or three arguments"),
        }
        Ok(types)
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[1].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let returns = args.return_field.data_type().clone();
        let null = || Ok(ColumnarValue::Scalar(ScalarValue::try_from(&returns)?));
        let width = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(w))) => *w,
            ColumnarValue::Scalar(s) if s.is_null() => return null(),
            _ => return exec_err!("time_bucket(width, t): the width is one interval for every row"),
        };
        if width.months != 0 && (width.days != 0 || width.nanoseconds != 0) {
            return exec_err!(
                "time_bucket: a width of months takes no days or time (as in DuckDB: \"Month intervals cannot have day or time component\")"
            );
        }
        let start = if width.months != 0 {
            NEW_YEAR_2000
        } else {
            MONDAY_2000
        } * NANOS;
        let origin = match args.args.get(2) {
            None => start,
            Some(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(Some(o), _))) => *o,
            Some(ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(offset)))) => {
                offset_origin(start, offset)?
            }
            Some(ColumnarValue::Scalar(s)) if s.is_null() => return null(),
            Some(_) => {
                return exec_err!("time_bucket(width, t, origin): the origin is one value for every row")
            }
        };
        let zone = match &returns {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        // A date is binned as a timestamp of microseconds (date_bin takes no date).
        let scalar = matches!(args.args[1], ColumnarValue::Scalar(_));
        let t = args.args[1].to_array(args.number_rows)?;
        let source = match returns {
            DataType::Date32 => cast(&t, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
            _ => Arc::clone(&t),
        };
        let source_type = source.data_type().clone();
        let binned = datafusion::functions::datetime::date_bin().invoke_with_args(ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(width))),
                ColumnarValue::Array(source.clone()),
                ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(Some(origin), zone.clone())),
            ],
            arg_fields: vec![
                Arc::new(Field::new(
                    "width",
                    DataType::Interval(IntervalUnit::MonthDayNano),
                    true,
                )),
                Arc::new(Field::new("t", source_type.clone(), true)),
                Arc::new(Field::new(
                    "origin",
                    DataType::Timestamp(TimeUnit::Nanosecond, zone),
                    true,
                )),
            ],
            return_field: Arc::new(Field::new("time_bucket", source_type, true)),
            ..args
        })?;
        let binned = binned.to_array(source.len())?;
        // date_bin computes in nanoseconds: a time past 1677-2262 came back NULL.
        if let Some(row) = (0..source.len()).find(|&i| source.is_valid(i) && binned.is_null(i)) {
            let at = ScalarValue::try_from_array(&t, row)?;
            return exec_err!(
                "time_bucket: {at} is past the years 1677 to 2262 that its buckets are computed in"
            );
        }
        super::columnar(cast(&binned, &returns)?, scalar)
    }
}

/// DuckDB's origin `start` moved by `offset` (days and time: a month has no fixed length).
fn offset_origin(start: i64, offset: &IntervalMonthDayNano) -> Result<i64> {
    if offset.months != 0 {
        return exec_err!("time_bucket(width, t, offset): the offset is days or a time, not months");
    }
    let moved = (offset.days as i64)
        .checked_mul(86_400 * NANOS)
        .and_then(|d| d.checked_add(offset.nanoseconds))
        .and_then(|d| d.checked_add(start));
    match moved {
        Some(o) => Ok(o),
        None => exec_err!("time_bucket(width, t, offset): the offset is past the years 1677 to 2262"),
    }
}

/// The `time_bucket` function.
pub(super) fn udf() -> ScalarUDF {
    ScalarUDF::from(TimeBucket {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}
