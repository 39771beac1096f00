//! `segscore_text(x)`: DuckDB's text of a date, a time, a timestamp, an interval, a duration or
//! a float, which a cast of one to text gives in `segscore sql`
//! ([`segscore_plan::text_casts`]): `2024-01-01 10:00:00.5` (a space between the date and the
//! time, the fraction of a second without its trailing zeros), a time zone's `+00` (UTC),
//! `0045-03-15 (BC)`, `10:11:12.5`, `1 year 2 months 3 days 04:05:06.5`, `-01:30:00`, and a
//! difference of two timestamps (a duration here, an interval in DuckDB) as `29 days
//! 01:00:00`. Arrow's cast writes ISO 8601 (`2024-01-01T10:00:00.500`) and intervals as `1
//! hours 30 mins`. A float is written as DuckDB (and Python's `repr`) writes it: the fewest
//! digits that read back as the same float, as a decimal from 1e-4 up to 1e16 (`0.0001`,
//! `3.0`, `1000000000000000.0`), with an exponent of at least two digits outside it (`1e-05`,
//! `1.5e-07`, `1e+16`), `nan`, `inf`, `-inf`; arrow's wrote `0.00001`, `1.5e-7`, `1e16`, `NaN`.

use std::fmt::Write;
use std::sync::Arc;

use chrono::Datelike;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit,
    Time64NanosecondType, TimeUnit,
};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function's name.
const NAME: &str = "segscore_text";

/// Nanoseconds in a second and in a day.
const SECOND: i128 = 1_000_000_000;
const DAY: i128 = 86_400 * SECOND;

/// `segscore_text` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DuckDbText {
    signature: Signature,
}

impl ScalarUDFImpl for DuckDbText {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t] if segscore_plan::text_casts::has_duckdb_text(t) => Ok(vec![t.clone()]),
            [t] => plan_err!("{NAME}(x) takes a date, time, timestamp, interval, duration or float, not {t}"),
            _ => plan_err!("{NAME}(x) takes one argument, not {}", args.len()),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [x] = args.args.as_slice() else {
            return exec_err!("{NAME}(x) takes one argument");
        };
        let scalar = matches!(x, ColumnarValue::Scalar(_));
        let text = texts(&x.to_array(1)?)?;
        super::columnar(text, scalar)
    }
}

/// The `segscore_text` function.
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(DuckDbText {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// A value of `x` as nanoseconds: `v` counted in `unit`.
fn nanos(v: i64, unit: TimeUnit) -> i128 {
    v as i128 * crate::engine::units::nanos(&unit)
}

/// Each value of `x` as DuckDB's text, nulls kept.
pub(super) fn texts(x: &ArrayRef) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(x.len(), x.len() * 20);
    let mut line = String::with_capacity(48);
    // Each value's text into `line`, from its index (called for the non-null ones).
    let mut each = |write: &mut dyn FnMut(usize, &mut String) -> Result<()>| -> Result<ArrayRef> {
        for i in 0..x.len() {
            if x.is_null(i) {
                out.append_null();
                continue;
            }
            line.clear();
            write(i, &mut line)?;
            out.append_value(&line);
        }
        Ok(Arc::new(out.finish()))
    };
    match x.data_type() {
        DataType::Date32 | DataType::Date64 => {
            let days = cast(x, &DataType::Date32)?;
            let days = days.as_primitive::<Date32Type>();
            each(&mut |i, s| date(days.value(i) as i64, s))
        }
        DataType::Timestamp(unit, tz) => {
            let (unit, zoned) = (*unit, tz.is_some());
            let v = cast(x, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            each(&mut |i, s| {
                let n = nanos(v.value(i), unit);
                let (days, of_day) = (n.div_euclid(DAY), n.rem_euclid(DAY));
                date(days as i64, s)?;
                s.push(' ');
                clock(of_day, s);
                if zoned {
                    s.push_str("+00");
                }
                Ok(())
            })
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let v = cast(x, &DataType::Time64(TimeUnit::Nanosecond))?;
            let v = v.as_primitive::<Time64NanosecondType>();
            each(&mut |i, s| {
                clock(v.value(i) as i128, s);
                Ok(())
            })
        }
        DataType::Interval(_) => {
            let v = cast(x, &DataType::Interval(IntervalUnit::MonthDayNano))?;
            let v = v.as_primitive::<IntervalMonthDayNanoType>();
            each(&mut |i, s| {
                let m = v.value(i);
                interval(m.months as i64, m.days as i64, m.nanoseconds as i128, s);
                Ok(())
            })
        }
        DataType::Duration(unit) => {
            let unit = *unit;
            let v = cast(x, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            // As DuckDB gives the difference of two timestamps: whole days, then the rest.
            each(&mut |i, s| {
                let n = nanos(v.value(i), unit);
                interval(0, (n / DAY) as i64, n % DAY, s);
                Ok(())
            })
        }
        // A half float is read as DuckDB reads one, a FLOAT.
        DataType::Float16 => {
            let v = cast(x, &DataType::Float32)?;
            let v = v.as_primitive::<Float32Type>();
            each(&mut |i, s| {
                float(v.value(i), s);
                Ok(())
            })
        }
        DataType::Float32 => {
            let v = x.as_primitive::<Float32Type>();
            each(&mut |i, s| {
                float(v.value(i), s);
                Ok(())
            })
        }
        DataType::Float64 => {
            let v = x.as_primitive::<Float64Type>();
            each(&mut |i, s| {
                float(v.value(i), s);
                Ok(())
            })
        }
        t => exec_err!("{NAME}(x) takes a date, time, timestamp, interval, duration or float, not {t}"),
    }
}

/// Writes the float `x` as DuckDB (and Python's `repr`) does ([module docs](self)).
pub(super) fn float<F: ryu::Float + Copy + Into<f64>>(x: F, s: &mut String) {
    let wide: f64 = x.into();
    if !wide.is_finite() {
        s.push_str(match (wide.is_nan(), wide > 0.0) {
            (true, _) => "nan",
            (false, true) => "inf",
            (false, false) => "-inf",
        });
        return;
    }
    // ryu gives the fewest digits that read back as `x` (`1.5e-7`, `1e16`, `0.001`,
    // `1234.0`): its digits and where the decimal point goes, then DuckDB's layout of them.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(x);
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    // Most floats (from 1e-4 up to 1e16) ryu writes as DuckDB does: `0.37`, `12.5`, `3.0`.
    let integer_digits = unsigned.find('.').unwrap_or(usize::MAX);
    if !unsigned.contains('e') && integer_digits <= 16 && !unsigned.starts_with("0.0000") {
        s.push_str(text);
        return;
    }
    let text = unsigned;
    let (mantissa, shift) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let before_point = mantissa.find('.').unwrap_or(mantissa.len()) as i32;
    let mut digits = [0u8; 32];
    let mut n = 0;
    for &c in mantissa.as_bytes().iter().filter(|c| c.is_ascii_digit()) {
        if n < digits.len() {
            digits[n] = c;
            n += 1;
        }
    }
    let zeros = digits[..n].iter().take_while(|&&c| c == b'0').count();
    let end = n - digits[..n].iter().rev().take_while(|&&c| c == b'0').count();
    if negative {
        s.push('-');
    }
    if zeros == n {
        s.push_str("0.0");
        return;
    }
    // Digits `first..end`, the first of them at 10^exponent.
    let (first, exponent) = (zeros, before_point - 1 - zeros as i32 + shift);
    let digits = std::str::from_utf8(&digits[first..end]).unwrap_or("0");
    if !(-4..16).contains(&exponent) {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(s, "e{sign}{:02}", exponent.abs());
    } else if exponent < 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        s.push_str(digits);
    } else {
        let point = exponent as usize + 1;
        if digits.len() > point {
            s.push_str(&digits[..point]);
            s.push('.');
            s.push_str(&digits[point..]);
        } else {
            s.push_str(digits);
            s.extend(std::iter::repeat_n('0', point - digits.len()));
            s.push_str(".0");
        }
    }
}

/// Writes the date `days` after 1970-01-01 as DuckDB does: `2024-03-05`, a year before 1 as
/// `0045-03-15 (BC)` (the year 0 is 1 BC).
fn date(days: i64, s: &mut String) -> Result<()> {
    let Some(d) = i32::try_from(days + 719_163)
        .ok()
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
    else {
        return exec_err!("{NAME}: a date {days} days from 1970-01-01 is past the calendar's range");
    };
    let (y, bc) = match d.year() {
        y if y <= 0 => (1 - y, true),
        y => (y, false),
    };
    match y {
        0..=9999 => {
            digits(y as u64, 4, s);
        }
        _ => {
            let _ = write!(s, "{y}");
        }
    }
    s.push('-');
    digits(d.month() as u64, 2, s);
    s.push('-');
    digits(d.day() as u64, 2, s);
    if bc {
        s.push_str(" (BC)");
    }
    Ok(())
}

/// Writes `n` nanoseconds as `HH:MM:SS`, hours past 24 as they are (`30:00:00`), then the
/// fraction of a second without trailing zeros (`.5`, `.000001`), if any.
fn clock(n: i128, s: &mut String) {
    let (secs, frac) = ((n / SECOND) as u64, (n % SECOND) as u64);
    digits(secs / 3600, 2, s);
    s.push(':');
    digits(secs / 60 % 60, 2, s);
    s.push(':');
    digits(secs % 60, 2, s);
    if frac > 0 {
        s.push('.');
        // The nine digits of the fraction, less its trailing zeros.
        let (mut frac, mut width) = (frac, 9);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        digits(frac, width, s);
    }
}

/// Writes `n` in decimal digits, zeros before it to `width` digits.
fn digits(n: u64, width: usize, s: &mut String) {
    let mut buf = [b'0'; 20];
    let (mut n, mut at) = (n, buf.len());
    while n > 0 {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = at.min(buf.len() - width.min(buf.len()));
    // Only ASCII digits were written.
    s.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
}

/// Writes an interval as DuckDB does: `1 year 2 months 3 days 04:05:06.5`, each part that is
/// not zero (the time's sign before it: `-01:30:00`), or `00:00:00` if none is.
fn interval(months: i64, days: i64, nanos: i128, s: &mut String) {
    let part = |n: i64, word: &str, s: &mut String| {
        if n != 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            let plural = if n.abs() == 1 { "" } else { "s" };
            let _ = write!(s, "{n} {word}{plural}");
        }
    };
    part(months / 12, "year", s);
    part(months % 12, "month", s);
    part(days, "day", s);
    if nanos != 0 || s.is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        if nanos < 0 {
            s.push('-');
        }
        clock(nanos.abs(), s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval_text(months: i64, days: i64, nanos: i128) -> String {
        let mut s = String::new();
        interval(months, days, nanos, &mut s);
        s
    }

    #[test]
    fn intervals_read_as_duckdb_writes_them() {
        // Each expected text is DuckDB 2.0.1's `CAST(INTERVAL ... AS VARCHAR)`.
        let hour = 3600 * SECOND;
        assert_eq!(interval_text(0, 0, 90 * 60 * SECOND), "01:30:00");
        assert_eq!(interval_text(0, 0, -90 * 60 * SECOND), "-01:30:00");
        assert_eq!(interval_text(0, 1, 0), "1 day");
        assert_eq!(interval_text(0, 1, -hour), "1 day -01:00:00");
        assert_eq!(interval_text(14, 0, 0), "1 year 2 months");
        assert_eq!(interval_text(-14, 0, 0), "-1 year -2 months");
        assert_eq!(interval_text(-1, 2, 0), "-1 month 2 days");
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(0, 0, 1_000), "00:00:00.000001");
        assert_eq!(interval_text(0, 0, 100 * hour), "100:00:00");
        assert_eq!(
            interval_text(14, 3, 4 * hour + 5 * 60 * SECOND + 6 * SECOND + SECOND / 2),
            "1 year 2 months 3 days 04:05:06.5"
        );
    }

    #[test]
    fn floats_read_as_duckdb_writes_them() {
        // Each expected text is DuckDB 2.0.1's `CAST(x AS VARCHAR)` (Python's `repr` agrees).
        let text = |x: f64| {
            let mut s = String::new();
            float(x, &mut s);
            s
        };
        let cases = [
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e20, "1.2345678901234568e+20"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.5e-5, "-2.5e-05"),
            (3.0, "3.0"),
            (12345678.9, "12345678.9"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (1234567890123456.0, "1234567890123456.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(text(x), want, "{x}");
        }
        let mut s = String::new();
        float(0.1f32, &mut s);
        s.push(' ');
        float(16_777_216f32, &mut s);
        s.push(' ');
        float(3.402_823_5e38_f32, &mut s);
        assert_eq!(s, "0.1 16777216.0 3.4028235e+38");
    }

    #[test]
    fn a_floats_text_reads_back_as_the_float() {
        // Doubles and floats of every magnitude: bit patterns from a fixed sequence.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (x, y) = (f64::from_bits(bits), f32::from_bits((bits >> 32) as u32));
            let (mut a, mut b) = (String::new(), String::new());
            float(x, &mut a);
            float(y, &mut b);
            match x.is_nan() {
                true => assert_eq!(a, "nan"),
                false => assert_eq!(a.parse::<f64>().map(f64::to_bits), Ok(x.to_bits()), "{a}"),
            }
            match y.is_nan() {
                true => assert_eq!(b, "nan"),
                false => assert_eq!(b.parse::<f32>().map(f32::to_bits), Ok(y.to_bits()), "{b}"),
            }
        }
    }

    #[test]
    fn dates_before_the_year_one_are_bc() {
        let text = |days: i64| {
            let mut s = String::new();
            date(days, &mut s).unwrap();
            s
        };
        assert_eq!(text(0), "1970-01-01");
        assert_eq!(text(-719_162), "0001-01-01");
        assert_eq!(text(-719_163), "0001-12-31 (BC)");
        assert_eq!(text(2_932_897), "10000-01-01");
        let mut s = String::new();
        assert!(date(i64::MAX / 2, &mut s).is_err());
    }
}
