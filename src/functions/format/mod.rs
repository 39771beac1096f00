//! DuckDB's `printf(format, args...)` (C's `%` specifiers: `printf('%s: %.3f', name, mse)`) and
//! `format(format, args...)` (the fmt library's `{}`: `format('{}: {:.3f}', name, mse)`), which
//! DataFusion lacks. Each conversion takes the argument types DuckDB's does, and refuses the
//! others as it does ("Invalid type specifier "d" for formatting a value of type float"):
//! integers (`d`, `i`, `u`, `x`, `X`, `o`, `b`, `c`), floats and decimals (`f`, `e`, `g`, and
//! `{}`: the shortest text that reads back, as a cast gives it), text (`s`), booleans (`s`,
//! or `d` as 1 and 0); other values (dates, lists) as their text. A NULL format or argument
//! gives NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use parse::{fmt_pieces, printf_pieces, Piece, Spec};

mod parse;

/// One argument's value, as the conversions read it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Text(_) => "string",
        }
    }
}

/// Which of the two syntaxes a function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Syntax {
    Printf,
    Fmt,
}

/// `printf` and `format` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    name: &'static str,
    syntax: Syntax,
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let Some((format, _)) = args.split_first() else {
            return plan_err!("{}(format, ...) takes a format", self.name);
        };
        if !(format.is_string() || format.is_null()) {
            return plan_err!("{}(format, ...): the format is a text, not {format}", self.name);
        }
        let mut types = args.to_vec();
        types[0] = DataType::Utf8;
        Ok(types)
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let formats = arrays[0].as_string::<i32>();
        let values = arrays[1..]
            .iter()
            .map(values_of)
            .collect::<Result<Vec<Vec<Option<Value>>>>>()?;
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        // A format written in the query is parsed once.
        let mut parsed: Option<(String, Vec<Piece>)> = None;
        for row in 0..formats.len() {
            if formats.is_null(row) || values.iter().any(|v| v[row].is_none()) {
                out.append_null();
                continue;
            }
            let text = formats.value(row);
            if parsed.as_ref().is_none_or(|(t, _)| t != text) {
                let pieces = match self.syntax {
                    Syntax::Printf => printf_pieces(text),
                    Syntax::Fmt => fmt_pieces(text),
                };
                match pieces {
                    Ok(p) => parsed = Some((text.to_string(), p)),
                    Err(e) => return exec_err!("{}('{text}', ...): {e}", self.name),
                }
            }
            let pieces = parsed.as_ref().map(|(_, p)| p.as_slice()).unwrap_or_default();
            let row_values: Vec<&Value> = values.iter().filter_map(|v| v[row].as_ref()).collect();
            match render(pieces, &row_values, self.syntax) {
                Ok(s) => out.append_value(s),
                Err(e) => return exec_err!("{}('{text}', ...): {e}", self.name),
            }
        }
        let result: ArrayRef = Arc::new(out.finish());
        super::columnar(result, scalar)
    }
}

/// `printf` and `format`.
pub(super) fn udfs() -> [ScalarUDF; 2] {
    [("printf", Syntax::Printf), ("format", Syntax::Fmt)].map(|(name, syntax)| {
        ScalarUDF::from(Format {
            name,
            syntax,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
}

/// An argument column's values as the conversions read them (`None` for NULL).
fn values_of(a: &ArrayRef) -> Result<Vec<Option<Value>>> {
    let t = a.data_type().clone();
    // A NULL's column (`printf('%s', NULL)`) has no null buffer: its logical nulls say so.
    let nulls = a.logical_nulls();
    let null = |i: usize| nulls.as_ref().is_some_and(|n| n.is_null(i));
    let each = |f: &dyn Fn(usize) -> Value| (0..a.len()).map(|i| (!null(i)).then(|| f(i))).collect();
    Ok(match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let v = cast(a, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            each(&|i| Value::Int(v.value(i)))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let v = cast(a, &DataType::UInt64)?;
            let v = v.as_primitive::<UInt64Type>();
            each(&|i| Value::UInt(v.value(i)))
        }
        t if t.is_floating() || t.is_decimal() => {
            let v = cast(a, &DataType::Float64)?;
            let v = v.as_primitive::<Float64Type>();
            each(&|i| Value::Float(v.value(i)))
        }
        DataType::Boolean => {
            let v = a.as_boolean();
            each(&|i| Value::Bool(v.value(i)))
        }
        t => {
            // Text, and every other value as its text (DuckDB's for a date or a time).
            let text = match segscore_plan::text_casts::has_duckdb_text(&t) {
                true => super::duckdb_text::texts(a)?,
                false => cast(a, &DataType::Utf8)?,
            };
            let text = text.as_string::<i32>();
            each(&|i| Value::Text(text.value(i).to_string()))
        }
    })
}

/// The text of `pieces` with `values` converted.
fn render(pieces: &[Piece], values: &[&Value], syntax: Syntax) -> std::result::Result<String, String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Arg(i, spec) => {
                let arg = |i: usize| {
                    values
                        .get(i)
                        .ok_or_else(|| format!("argument index \"{i}\" out of range"))
                };
                let spec = with_arguments(spec, arg)?;
                out.push_str(&converted(arg(*i)?, &spec, syntax)?);
            }
        }
    }
    Ok(out)
}

/// `spec` with a `*` width or precision taken from its argument (an integer, as DuckDB wants
/// it: "width is not integer"); a negative width aligns left.
fn with_arguments<'a>(
    spec: &Spec,
    arg: impl Fn(usize) -> std::result::Result<&'a &'a Value, String>,
) -> std::result::Result<Spec, String> {
    let mut spec = spec.clone();
    let integer = |i: usize, what: &str| match arg(i)? {
        Value::Int(n) => Ok(*n as i128),
        Value::UInt(n) => Ok(*n as i128),
        _ => Err(format!("{what} is not integer")),
    };
    if let Some(i) = spec.width_arg {
        let w = integer(i, "width")?;
        if w < 0 {
            spec.align = Some('<');
            spec.zero = false;
        }
        spec.width = usize::try_from(w.unsigned_abs()).unwrap_or(usize::MAX);
    }
    if let Some(i) = spec.precision_arg {
        // A negative precision is none, as in C.
        spec.precision = usize::try_from(integer(i, "precision")?).ok();
    }
    parse::within_limits(&spec)?;
    Ok(spec)
}

/// `v` converted as `spec` says.
fn converted(v: &Value, spec: &Spec, syntax: Syntax) -> std::result::Result<String, String> {
    let refused = |k: char| {
        Err(format!(
            "invalid type specifier \"{k}\" for formatting a value of type {}",
            v.kind()
        ))
    };
    // A number's sign and digits (the sign apart, for zeros and padding between them).
    let (negative, body, numeric) = match (v, spec.kind) {
        (Value::Text(s), None | Some('s')) => (false, truncated(s, spec.precision), false),
        (Value::Bool(b), None | Some('s')) => (false, b.to_string(), false),
        (Value::Bool(b), Some('d' | 'i' | 'u')) => (false, u8::from(*b).to_string(), true),
        // The fmt library writes no character of a number (DuckDB: "Invalid type specifier").
        (Value::Int(_) | Value::UInt(_), Some('c')) if syntax == Syntax::Fmt => return refused('c'),
        (Value::Int(n), k @ (None | Some('d' | 'i' | 'u' | 'x' | 'X' | 'o' | 'b' | 'c'))) => {
            // printf writes a negative number's bits for `u`, `x`, `o`, as C does.
            match (syntax, k) {
                (Syntax::Printf, Some('u' | 'x' | 'X' | 'o')) if *n < 0 => {
                    (false, whole(*n as u64, k, spec)?, true)
                }
                _ => (*n < 0, whole(n.unsigned_abs(), k, spec)?, true),
            }
        }
        (Value::UInt(n), k @ (None | Some('d' | 'i' | 'u' | 'x' | 'X' | 'o' | 'b' | 'c'))) => {
            (false, whole(*n, k, spec)?, true)
        }
        (Value::Float(x), k @ (None | Some('f' | 'F' | 'e' | 'E' | 'g' | 'G'))) => {
            let body = fractional(x.abs(), k, spec);
            (x.is_sign_negative() && !x.is_nan(), body, true)
        }
        (_, Some(k)) => return refused(k),
    };
    let sign = match (numeric, negative, spec.sign) {
        (true, true, _) => "-",
        (true, false, Some('+')) => "+",
        (true, false, Some(' ')) => " ",
        _ => "",
    };
    let prefix = match (spec.alternate, spec.kind, numeric) {
        (true, Some('x'), true) => "0x",
        (true, Some('X'), true) => "0X",
        (true, Some('b'), true) => "0b",
        (true, Some('o'), true) if !body.starts_with('0') => "0",
        _ => "",
    };
    let len = sign.chars().count() + prefix.len() + body.chars().count();
    let pad = spec.width.saturating_sub(len);
    let finite = !matches!(body.as_str(), "inf" | "nan" | "INF" | "NAN");
    if spec.zero && numeric && finite && spec.align.is_none() {
        return Ok(format!("{sign}{prefix}{}{body}", "0".repeat(pad)));
    }
    let fill = spec.fill.unwrap_or(' ').to_string();
    // printf pads on the left unless `-` says otherwise; fmt a text on the right.
    let align = spec.align.unwrap_or(if numeric || syntax == Syntax::Printf {
        '>'
    } else {
        '<'
    });
    let (left, right) = match align {
        '<' => (0, pad),
        '^' => (pad / 2, pad - pad / 2),
        _ => (pad, 0),
    };
    Ok(format!(
        "{}{sign}{prefix}{body}{}",
        fill.repeat(left),
        fill.repeat(right)
    ))
}

/// A whole number's digits as conversion `k` writes them.
fn whole(n: u64, k: Option<char>, spec: &Spec) -> std::result::Result<String, String> {
    let digits = match k {
        Some('x') => format!("{n:x}"),
        Some('X') => format!("{n:X}"),
        Some('o') => format!("{n:o}"),
        Some('b') => format!("{n:b}"),
        Some('c') => match u8::try_from(n).ok().filter(u8::is_ascii) {
            Some(b) => char::from(b).to_string(),
            None => return Err(format!("%c writes a single byte, and {n} is none: use chr({n})")),
        },
        _ => grouped(&n.to_string(), spec.grouping),
    };
    Ok(digits)
}

/// `digits` (of a whole number) with `separator` between its groups of three.
fn grouped(digits: &str, separator: Option<char>) -> String {
    let Some(sep) = separator else {
        return digits.to_string();
    };
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// A float's digits (not negative: the sign is apart) as conversion `k` writes them, as C's
/// printf and the fmt library do.
fn fractional(x: f64, k: Option<char>, spec: &Spec) -> String {
    let upper = matches!(k, Some('F' | 'E' | 'G'));
    if !x.is_finite() {
        let t = if x.is_nan() { "nan" } else { "inf" };
        return if upper { t.to_uppercase() } else { t.to_string() };
    }
    let body = match (k, spec.precision) {
        // The shortest text that reads back, as a cast to text writes it.
        (None, None) => {
            let mut s = String::new();
            super::duckdb_text::float(x, &mut s);
            s
        }
        (Some('f' | 'F'), p) => format!("{x:.*}", p.unwrap_or(6)),
        (Some('e' | 'E'), p) => exponent(x, p.unwrap_or(6)),
        // `g`, and a precision without a type, as C's `%g`.
        (_, p) => {
            let p = p.unwrap_or(6).max(1);
            let e = exponent(x, p - 1);
            let power: i32 = e.rsplit_once('e').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
            let text = match power < -4 || power >= p as i32 {
                true => e,
                false => format!("{x:.*}", (p as i32 - 1 - power).max(0) as usize),
            };
            match spec.alternate {
                true => text,
                false => without_trailing_zeros(&text),
            }
        }
    };
    let body = match (spec.grouping, body.contains('e')) {
        (Some(sep), false) => match body.split_once('.') {
            Some((w, f)) => format!("{}.{f}", grouped(w, Some(sep))),
            None => grouped(&body, Some(sep)),
        },
        _ => body,
    };
    if upper {
        body.to_uppercase()
    } else {
        body
    }
}

/// `x` in C's `%e` form with `precision` digits after the point: `1.234568e+04`.
fn exponent(x: f64, precision: usize) -> String {
    let text = format!("{x:.precision$e}");
    match text.split_once('e') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => text,
    }
}

/// A `%g` text without the zeros that end its fraction (and a point left alone).
fn without_trailing_zeros(text: &str) -> String {
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, format!("e{e}")),
        None => (text, String::new()),
    };
    let mantissa = match mantissa.contains('.') {
        true => mantissa.trim_end_matches('0').trim_end_matches('.'),
        false => mantissa,
    };
    format!("{mantissa}{exp}")
}

/// `s` cut to `precision` characters, if given.
fn truncated(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

#[cfg(test)]
// 3.14159 is the value DuckDB's cases were run with, not an approximation of pi.
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    fn printf(format: &str, values: &[Value]) -> String {
        let v: Vec<&Value> = values.iter().collect();
        render(&printf_pieces(format).unwrap(), &v, Syntax::Printf).unwrap_or_else(|e| e)
    }

    fn fmt(format: &str, values: &[Value]) -> String {
        let v: Vec<&Value> = values.iter().collect();
        match fmt_pieces(format) {
            Ok(p) => render(&p, &v, Syntax::Fmt).unwrap_or_else(|e| e),
            Err(e) => e,
        }
    }

    #[test]
    fn printf_writes_as_duckdb_does() {
        use Value::*;
        // Each expected text is DuckDB 2.0.1's.
        assert_eq!(
            printf(
                "%5.2f|%-5d|%05d|%x|%X|%o|%e|%g|%c|%%|%+d",
                &[
                    Float(3.14159),
                    Int(42),
                    Int(42),
                    Int(255),
                    Int(255),
                    Int(8),
                    Float(12345.678),
                    Float(0.0001),
                    Int(65),
                    Int(5)
                ]
            ),
            " 3.14|42   |00042|ff|FF|10|1.234568e+04|0.0001|A|%|+5"
        );
        assert_eq!(
            printf(
                "%g|%g|%g|%g|%g",
                &[
                    Float(0.0001),
                    Float(123456789.0),
                    Float(1e-5),
                    Float(100000.0),
                    Float(1e6)
                ]
            ),
            "0.0001|1.23457e+08|1e-05|100000|1e+06"
        );
        assert_eq!(
            printf("%.3g|%#g|%G", &[Float(3.14159), Float(1.0), Float(1e-10)]),
            "3.14|1.00000|1E-10"
        );
        assert_eq!(
            printf("% d|%+.1f|%-8.3e|", &[Int(5), Float(-2.25), Float(12345.678)]),
            " 5|-2.2|1.235e+04|"
        );
        assert_eq!(
            printf("%05.1f|%x|%#x|%#o", &[Float(-2.5), Int(-1), Int(255), Int(8)]),
            "-02.5|ffffffffffffffff|0xff|010"
        );
        assert_eq!(
            printf(
                "%10s|%-10s|%.3s",
                &[Text("ab".into()), Text("cd".into()), Text("abcdef".into())]
            ),
            "        ab|cd        |abc"
        );
        assert_eq!(
            printf("%s|%d|%u|%lld", &[Bool(true), Bool(true), Int(-1), Int(5)]),
            "true|1|18446744073709551615|5"
        );
        assert_eq!(
            printf(
                "%.2f|%.0f|%.0f|%e",
                &[Float(2.675), Float(0.5), Float(1.5), Float(0.0)]
            ),
            "2.67|0|2|0.000000e+00"
        );
        assert_eq!(
            printf("%s", &[Float(3.5)]),
            "invalid type specifier \"s\" for formatting a value of type float"
        );
        assert_eq!(
            printf("%d", &[Text("12".into())]),
            "invalid type specifier \"d\" for formatting a value of type string"
        );
        assert_eq!(
            printf("%s %s", &[Text("a".into())]),
            "argument index \"1\" out of range"
        );
        assert_eq!(printf("%s", &[Text("a".into()), Text("b".into())]), "a");
    }

    #[test]
    fn format_writes_as_duckdb_does() {
        use Value::*;
        // Each expected text is DuckDB 2.0.1's.
        assert_eq!(fmt("{} + {} = {}", &[Int(1), Int(2), Int(3)]), "1 + 2 = 3");
        assert_eq!(
            fmt(
                "{:.2f}|{:05d}|{:,}|{:x}",
                &[Float(3.14159), Int(42), Int(1234567), Int(255)]
            ),
            "3.14|00042|1,234,567|ff"
        );
        assert_eq!(
            fmt(
                "{:>8}|{:<8}|{:^8}",
                &[Text("a".into()), Text("b".into()), Text("c".into())]
            ),
            "       a|b       |   c    "
        );
        assert_eq!(
            fmt("{1} {0}|{{}}{0}", &[Text("a".into()), Text("b".into())]),
            "b a|{}a"
        );
        assert_eq!(
            fmt(
                "{}|{}|{}|{:e}",
                &[Float(1.0), Float(0.1), Float(1e20), Float(12345.678)]
            ),
            "1.0|0.1|1e+20|1.234568e+04"
        );
        assert_eq!(
            fmt(
                "{:*^9}|{:#x}|{:08.3f}|{: d}|{:b}",
                &[Text("ab".into()), Int(255), Float(-3.14159), Int(5), Int(5)]
            ),
            "***ab****|0xff|-003.142| 5|101"
        );
        assert_eq!(
            fmt(
                "{:,}|{:.2e}|{:10}|{:10}|{:<10}|",
                &[
                    Float(-1234567.891),
                    Float(1234.5),
                    Int(42),
                    Text("ab".into()),
                    Int(42)
                ]
            ),
            "-1,234,567.891|1.23e+03|        42|ab        |42        |"
        );
        assert_eq!(
            fmt(
                "{:.3g}|{:G}|{:x}|{:10.2}|{:d}|{:>5}|{:_}",
                &[
                    Float(3.14159),
                    Float(1e-10),
                    Int(-255),
                    Text("abcdef".into()),
                    Bool(true),
                    Bool(true),
                    Int(1234)
                ]
            ),
            "3.14|1E-10|-ff|ab        |1| true|1_234"
        );
        assert_eq!(
            fmt("{:d}", &[Float(3.7)]),
            "invalid type specifier \"d\" for formatting a value of type float"
        );
        assert_eq!(
            fmt("{:c}", &[Int(65)]),
            "invalid type specifier \"c\" for formatting a value of type int"
        );
        assert_eq!(
            fmt("{} {}", &[Text("a".into())]),
            "argument index \"1\" out of range"
        );
        assert_eq!(fmt("{", &[Int(1)]), "invalid format string: an unclosed '{'");
        assert_eq!(
            fmt("{} {0}", &[Int(1)]),
            "cannot switch from automatic to manual argument indexing"
        );
        // A width or precision that would take any memory asked for is refused.
        assert_eq!(
            fmt("{:999999999999}", &[Int(1)]),
            "a width of 999999999999 is past the 100000 characters a conversion may take"
        );
        let v = [Float(1.0)];
        let refs: Vec<&Value> = v.iter().collect();
        assert_eq!(
            printf_pieces("%.999999999f").and_then(|p| render(&p, &refs, Syntax::Printf)),
            Err("a precision of 999999999 is past the 100000 characters a conversion may take".into())
        );
    }
}
