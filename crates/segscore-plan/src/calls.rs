//! DuckDB's functions that DataFusion's of the same name answer otherwise, or that it lacks,
//! written before planning as the DataFusion calls that compute them (a column keeps the call's
//! text as its name). Lists: `list_sort(l)` (`array_sort`) puts NULLs last, with or without
//! `'DESC'`, as DuckDB's default null order does (DataFusion's put them first, so a sorted list
//! of scores began with its missing ones); `list_reverse_sort(l[, nulls])` sorts descending;
//! `list_distinct(l)` (`array_distinct`) leaves NULL out, as DuckDB's does (DataFusion's kept
//! one); `list_unique(l)` counts the distinct values that are not NULL. Dates: `last_day(t)`,
//! the month's last day (a DATE); `date_add(t, interval)`, `t + interval`. `geomean(x)`
//! (`geometric_mean`), `exp(avg(ln(x)))` (0 with a 0 among the values, NaN with a negative one,
//! as DuckDB's), without FILTER or OVER. `list_cosine_similarity(a, b)` (`array_...`), `1 -
//! cosine_distance(a, b)`. `regexp_split_to_table(s, p)`, `unnest(regexp_split_to_array(s,
//! p))`. Text: `substr(s, start[, length])` (`substring`,
//! `SUBSTRING(s FROM start FOR length)`) counts a negative start from the end, as DuckDB does
//! (`substr('hello', -3)` is `llo`; DataFusion's, as PostgreSQL's, read it as a position before
//! the first character and gave `hello`). A list's slice with a bound left out (`l[:2]`). A
//! LIKE pattern's backslash is a backslash, as in DuckDB; `s ^@ prefix` is `starts_with`.
//! DuckDB's top-n aggregates (`max(x, n)`, `arg_max(a, v, n)`) as a sorted `array_agg`, cut. Types: DuckDB's names that DataFusion's planner
//! refused in a cast ("Unsupported SQL type UBIGINT") as the types DataFusion names otherwise
//! (`UBIGINT`, `UINTEGER`, `USMALLINT`, `UTINYINT` unsigned, `INT1`, `SHORT`, `LONG`, `SIGNED`,
//! `DATETIME`, `BLOB` and `VARBINARY` as BYTEA, `HUGEINT` as DECIMAL(38, 0), DataFusion having no
//! 128-bit integer).
use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, BinaryOperator, DataType, ExactNumberInfo, Expr, Function, Subscript,
    TimezoneInfo, Value,
};

use crate::duckdb::calls;

/// The DataFusion expression for `f` where it calls one of the module's functions with plain
/// arguments, as many as it takes.
pub(crate) fn rewritten(f: &Function) -> Result<Option<Expr>> {
    let Some(args) = crate::walk::plain_args(f) else {
        return Ok(None);
    };
    if f.over.is_some() || f.filter.is_some() {
        return Ok(None);
    }
    let args: Vec<String> = args.iter().map(|e| e.to_string()).collect();
    let named = |name: &str| calls(f, &format!("list_{name}")) || calls(f, &format!("array_{name}"));
    let text = match args.as_slice() {
        [l] if named("sort") => format!("array_sort({l}, 'ASC', 'NULLS LAST')"),
        [l, order] if named("sort") => format!("array_sort({l}, {order}, 'NULLS LAST')"),
        [l] if named("reverse_sort") => format!("array_sort({l}, 'DESC', 'NULLS LAST')"),
        [l, nulls] if named("reverse_sort") => format!("array_sort({l}, 'DESC', {nulls})"),
        [l] if named("distinct") => format!("array_except({l}, [NULL])"),
        [l] if named("unique") => format!("cardinality(array_except({l}, [NULL]))"),
        [t] if calls(f, "last_day") => {
            format!("CAST(date_trunc('month', {t}) + INTERVAL '1 month' - INTERVAL '1 day' AS DATE)")
        }
        [t, interval] if calls(f, "date_add") => format!("(({t}) + ({interval}))"),
        [x] if calls(f, "geomean") || calls(f, "geometric_mean") => format!("exp(avg(ln({x})))"),
        [a, b] if named("cosine_similarity") => format!("(1 - cosine_distance({a}, {b}))"),
        [s, p] if calls(f, "regexp_split_to_table") => format!("unnest(regexp_split_to_array({s}, {p}))"),
        [s, start, rest @ ..] if rest.len() < 2 && (calls(f, "substr") || calls(f, "substring")) => {
            match from_end(s, start, rest.first()) {
                Some(text) => text,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    crate::walk::parsed(&text).map(Some)
}

/// DuckDB's top-n aggregates, as DataFusion computes them: `max(x, n)` and `min(x, n)`, the `n`
/// greatest (least) values, and `arg_max(a, v, n)` (`max_by`) and `arg_min(a, v, n)`
/// (`min_by`), the `a` of the `n` rows of greatest (least) `v`, each a list in that order, rows
/// with a NULL left out, NULL for no rows (DataFusion: "max(UserDefined)"). Written as
/// `array_slice(array_agg(a ORDER BY v DESC) FILTER (WHERE ...), 1, n)`, the call's FILTER
/// kept; not over a window (DataFusion orders no window aggregate). `n` is a whole number
/// above 0 written in the query, as in DuckDB.
pub(crate) fn top_n(f: &Function) -> Result<Option<Expr>> {
    let Some((args, distinct)) = crate::walk::args_distinct(f) else {
        return Ok(None);
    };
    if f.over.is_some() {
        return Ok(None);
    }
    let (order, arg, value, n) = match args.as_slice() {
        [x, n] if calls(f, "max") => ("DESC", *x, *x, *n),
        [x, n] if calls(f, "min") => ("ASC", *x, *x, *n),
        [a, v, n] if calls(f, "arg_max") || calls(f, "max_by") => ("DESC", *a, *v, *n),
        [a, v, n] if calls(f, "arg_min") || calls(f, "min_by") => ("ASC", *a, *v, *n),
        _ => return Ok(None),
    };
    let count = match n {
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => text.parse::<u64>().ok().filter(|&c| c > 0),
            _ => None,
        },
        _ => None,
    };
    let Some(count) = count else {
        return Err(datafusion::error::DataFusionError::Plan(format!(
            "{}: n is a whole number above 0 written in the query, not {n}",
            f.name
        )));
    };
    // `max(DISTINCT x, n)`: the n greatest distinct values, as in DuckDB.
    let distinct = match distinct {
        false => "",
        true if arg == value => "DISTINCT ",
        true => {
            return Err(datafusion::error::DataFusionError::Plan(format!(
                "{}(DISTINCT arg, val, n) is not taken here: give {}(arg, val, n) over the distinct rows \
                 (SELECT DISTINCT arg, val ... in a subquery)",
                f.name, f.name
            )))
        }
    };
    let mut keep = format!("({value}) IS NOT NULL");
    if arg != value {
        keep += &format!(" AND ({arg}) IS NOT NULL");
    }
    if let Some(filter) = &f.filter {
        keep = format!("({filter}) AND {keep}");
    }
    crate::walk::parsed(&format!(
        "array_slice(array_agg({distinct}{arg} ORDER BY {value} {order}) FILTER (WHERE {keep}), 1, {count})"
    ))
    .map(Some)
}

/// `SUBSTRING(s FROM start [FOR length])` as [`rewritten`] writes `substr`.
pub(crate) fn substring(e: &Expr) -> Result<Option<Expr>> {
    let Expr::Substring {
        expr,
        substring_from: Some(start),
        substring_for,
        ..
    } = e
    else {
        return Ok(None);
    };
    let length = substring_for.as_ref().map(|l| l.to_string());
    match from_end(&expr.to_string(), &start.to_string(), length.as_ref()) {
        Some(text) => crate::walk::parsed(&text).map(Some),
        None => Ok(None),
    }
}

/// DataFusion's `substr` of `s` from `start`, counted from the end where it is negative, or
/// `None` where `start` is a number 0 or more (DataFusion's call computes DuckDB's there).
fn from_end(s: &str, start: &str, length: Option<&String>) -> Option<String> {
    if start.trim().parse::<i64>().is_ok_and(|n| n >= 0) {
        return None;
    }
    let start =
        format!("CASE WHEN ({start}) < 0 THEN character_length({s}) + ({start}) + 1 ELSE ({start}) END");
    Some(match length {
        Some(l) => format!("substr({s}, {start}, {l})"),
        None => format!("substr({s}, {start})"),
    })
}

/// `e`, a slice of a list with a bound left out (`l[:2]`, `l[2:]`, `l[-2:]`), with the bound
/// DuckDB reads there: the first element, the last (`-1`). DataFusion refused it ("Slice
/// subscript requires a lower bound") and, with both given, slices as DuckDB does.
pub(crate) fn open_slice(e: &mut Expr) {
    let Expr::CompoundFieldAccess { access_chain, .. } = e else {
        return;
    };
    for access in access_chain {
        if let AccessExpr::Subscript(Subscript::Slice {
            lower_bound,
            upper_bound,
            ..
        }) = access
        {
            lower_bound.get_or_insert_with(|| Expr::value(Value::Number("1".into(), false)));
            upper_bound.get_or_insert_with(|| Expr::value(Value::Number("-1".into(), false)));
        }
    }
}

/// `e`, a `[NOT] LIKE` or `ILIKE` without an ESCAPE, as DuckDB reads it: a backslash in the
/// pattern is a backslash (DuckDB has no default escape; DataFusion, as PostgreSQL, took `\`
/// as one, so `'C:\Users\x' LIKE 'C:\Users\%'` was false without a word). The pattern's
/// backslashes are doubled, `\` staying DataFusion's escape: in a pattern written in the
/// query, in place; any other, as `replace(p, '\', '\\')`.
pub(crate) fn like_backslash(e: &mut Expr) -> Result<()> {
    let (Expr::Like {
        pattern,
        escape_char: None,
        any: false,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char: None,
        any: false,
        ..
    }) = e
    else {
        return Ok(());
    };
    match pattern.as_mut() {
        Expr::Value(v) => {
            if let Value::SingleQuotedString(s) = &mut v.value {
                *s = s.replace('\\', "\\\\");
            }
        }
        p => *p = crate::walk::parsed(&format!("replace({p}, '\\', '\\\\')"))?,
    }
    Ok(())
}

/// `e`, DuckDB's `s ^@ prefix` (PostgreSQL's too), as `starts_with(s, prefix)`: DataFusion's
/// planner refused the operator ("Unsupported binary operator: PGStartsWith").
pub(crate) fn starts_with_operator(e: &mut Expr) {
    if let Expr::BinaryOp {
        left,
        op: BinaryOperator::PGStartsWith,
        right,
    } = e
    {
        let (l, r) = (left.to_string(), right.to_string());
        if let Ok(call) = crate::walk::parsed(&format!("starts_with({l}, {r})")) {
            *e = call;
        }
    }
}

/// `e`'s type, where it is a cast to a type DuckDB names and DataFusion's planner knows by
/// another name, as that name.
pub(crate) fn duckdb_type(e: &mut Expr) {
    if let Expr::Cast { data_type, .. } = e {
        if let Some(t) = known(data_type) {
            *data_type = t;
        }
    }
}

/// DataFusion's name for DuckDB's type `t` (of a list's elements too), where they differ.
fn known(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::UTinyInt => DataType::TinyIntUnsigned(None),
        DataType::USmallInt => DataType::SmallIntUnsigned(None),
        DataType::UBigInt => DataType::BigIntUnsigned(None),
        DataType::Signed => DataType::Int(None),
        DataType::HugeInt => DataType::Decimal(ExactNumberInfo::PrecisionAndScale(38, 0)),
        DataType::Datetime(None) => DataType::Timestamp(None, TimezoneInfo::None),
        DataType::Blob(_) | DataType::Varbinary(_) | DataType::Binary(_) | DataType::Bytes(_) => {
            DataType::Bytea
        }
        DataType::Array(ArrayElemTypeDef::SquareBracket(inner, size)) => {
            DataType::Array(ArrayElemTypeDef::SquareBracket(Box::new(known(inner)?), *size))
        }
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_ascii_uppercase().as_str() {
                "UINTEGER" => DataType::IntUnsigned(None),
                "INT1" => DataType::TinyInt(None),
                "SHORT" => DataType::SmallInt(None),
                "LONG" => DataType::BigInt(None),
                _ => return None,
            }
        }
        _ => return None,
    })
}
