//! A timestamp of seconds or milliseconds (`TIMESTAMP_S`, `TIMESTAMP_MS`: what pyarrow, Java
//! tools and Spark's `outputTimestampType=TIMESTAMP_MILLIS` write, what a CSV's
//! `2024-01-02 03:04:05` is read as) beside a finer time gives the exact answer, as in DuckDB,
//! which reads such columns as microseconds. DataFusion kept the coarse unit and lost the finer
//! digits without a word:
//!
//! - `ts + INTERVAL 1 MICROSECOND` (and `-`, `date_add`) gave `ts` itself: the sum was kept in
//!   the column's unit. Here the timestamp is cast to microseconds first (its zone kept).
//! - `ts = TIMESTAMP '2024-01-02 03:04:05.0005'` was true for `03:04:05.000`: DataFusion's
//!   optimizer compares the column with the value cast to its unit, cut to `05.000`
//!   (`unwrap_cast_in_comparison`, which guards only the narrowing direction). So were
//!   `ts >= ...`, `BETWEEN`, `IN (...)`, a text value (`ts = '...05.0005'`) too. Here a
//!   comparison of such a column with a value its unit cannot hold is written as the
//!   comparison it is, in the column's unit: `=` is false (NULL for a NULL), `<>` true, `<` and
//!   `<=` are `<=` the value's floor, `>` and `>=` are `>` it; in `IN (...)` the value is left
//!   out. A value the unit holds is left to DataFusion, which compares it exactly.
//! - A window's `RANGE BETWEEN INTERVAL 500 MICROSECOND PRECEDING AND CURRENT ROW` over `ORDER
//!   BY ts` computed its bounds in the column's unit (`05.001` less 500 µs was `05.000`, taking
//!   in the row before). Here the ORDER BY of such a frame is in microseconds.
//!
//! A time of day (`TIME`) takes the same care, and more: DataFusion could not compare two times
//! of different units, so a Parquet `TIME` column (microseconds, as DuckDB and pyarrow write it)
//! beside `TIME '10:00'` (nanoseconds) was an error ("Cannot infer common argument type for
//! comparison operation Time64(µs) > Time64(ns)"). Times of different units, or one of seconds
//! or milliseconds beside a text, are compared in nanoseconds here (a day's nanoseconds fit),
//! in a comparison, a `BETWEEN`, an `IN (...)` and a difference; one of seconds or milliseconds
//! plus or minus an interval is in microseconds, as DuckDB's `TIME`.
//!
//! An analyzer rule before DataFusion's type coercion, and an expression planner for the
//! comparisons DataFusion's SQL planner types as it plans them, in every session segscore makes.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Between, BinaryExpr, Cast, InList, ScalarFunction, TryCast};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    and, cast, lit, not, or, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF, WindowFrameBound,
    WindowFrameUnits,
};
use datafusion::optimizer::AnalyzerRule;

/// The rule ([module docs](self)).
#[derive(Debug, Default)]
pub struct CoarseTimestamps;

impl AnalyzerRule for CoarseTimestamps {
    fn name(&self) -> &str {
        "segscore_coarse_timestamps"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::casts::rewrite_named(plan, |e, schema| {
            times(e, schema).transform_data(|e| Ok(exact(e, schema)))
        })
    }
}

/// A timestamp type of seconds or milliseconds: its unit and zone.
fn coarse(t: Option<DataType>) -> Option<(TimeUnit, Option<Arc<str>>)> {
    match t? {
        DataType::Timestamp(unit @ (TimeUnit::Second | TimeUnit::Millisecond), tz) => Some((unit, tz)),
        _ => None,
    }
}

/// Nanoseconds in one of `u`.
pub fn nanos(u: &TimeUnit) -> i128 {
    match u {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// `e` rewritten as the [module docs](self) say, where it is a coarse timestamp plus or minus
/// an interval, or a comparison of one with a value its unit cannot hold.
fn exact(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let coarse_of = |x: &Expr| coarse(x.get_type(schema).ok());
    let interval = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Interval(_)));
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let micros =
                |x: Box<Expr>, tz| Box::new(cast(*x, DataType::Timestamp(TimeUnit::Microsecond, tz)));
            match (coarse_of(&left), coarse_of(&right)) {
                (Some((_, tz)), _) if matches!(op, Operator::Plus | Operator::Minus) && interval(&right) => {
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(micros(left, tz), op, right)))
                }
                (_, Some((_, tz))) if op == Operator::Plus && interval(&left) => {
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, op, micros(right, tz))))
                }
                (Some(unit), _) => match floor_of(&right, &unit).zip(compared(*left.clone(), op)) {
                    Some((floor, compare)) => Transformed::yes(compare(floor)),
                    None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
                },
                (_, Some(unit)) => match op
                    .swap()
                    .and_then(|swapped| floor_of(&left, &unit).zip(compared(*right.clone(), swapped)))
                {
                    Some((floor, compare)) => Transformed::yes(compare(floor)),
                    None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
                },
                _ => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
            }
        }
        Expr::Between(b) => {
            let unit = coarse_of(&b.expr);
            let cut = |x: &Expr| unit.as_ref().and_then(|u| floor_of(x, u)).is_some();
            if !cut(&b.low) && !cut(&b.high) {
                return Transformed::no(Expr::Between(b));
            }
            let Between {
                expr,
                negated,
                low,
                high,
            } = b;
            let bound =
                |op, x: Box<Expr>| exact(Expr::BinaryExpr(BinaryExpr::new(expr.clone(), op, x)), schema).data;
            let within = and(bound(Operator::GtEq, low), bound(Operator::LtEq, high));
            Transformed::yes(if negated { not(within) } else { within })
        }
        Expr::WindowFunction(mut w) => {
            // A RANGE frame of an interval over a coarse timestamp: the bounds are computed in
            // the ORDER BY's unit, so it is in microseconds.
            let p = &mut w.params;
            let offset = |b: &WindowFrameBound| match b {
                WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => !v.is_null(),
                WindowFrameBound::CurrentRow => false,
            };
            let ranged = p.window_frame.units == WindowFrameUnits::Range
                && (offset(&p.window_frame.start_bound) || offset(&p.window_frame.end_bound));
            if let (true, [sort]) = (ranged, p.order_by.as_mut_slice()) {
                if let Some((_, tz)) = coarse_of(&sort.expr) {
                    let e = std::mem::replace(&mut sort.expr, lit(ScalarValue::Null));
                    sort.expr = cast(e, DataType::Timestamp(TimeUnit::Microsecond, tz));
                    return Transformed::yes(Expr::WindowFunction(w));
                }
            }
            Transformed::no(Expr::WindowFunction(w))
        }
        Expr::InList(l) => {
            let Some(unit) = coarse_of(&l.expr) else {
                return Transformed::no(Expr::InList(l));
            };
            let (cut, kept): (Vec<Expr>, Vec<Expr>) =
                l.list.into_iter().partition(|x| floor_of(x, &unit).is_some());
            if cut.is_empty() {
                return Transformed::no(Expr::InList(InList::new(l.expr, kept, l.negated)));
            }
            let e = match (!kept.is_empty(), l.negated) {
                (true, negated) => Expr::InList(InList::new(l.expr, kept, negated)),
                (false, false) => and(l.expr.is_null(), lit(ScalarValue::Boolean(None))),
                (false, true) => or(l.expr.is_not_null(), lit(ScalarValue::Boolean(None))),
            };
            Transformed::yes(e)
        }
        e => Transformed::no(e),
    }
}

/// Whether `v` is a text.
fn text_value(v: &ScalarValue) -> bool {
    matches!(
        v,
        ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_)
    )
}

/// The unit of `x`'s type where it is a time of day.
fn time_unit(x: &Expr, schema: &DFSchema) -> Option<TimeUnit> {
    match x.get_type(schema) {
        Ok(DataType::Time32(u) | DataType::Time64(u)) => Some(u),
        _ => None,
    }
}

/// Whether operands `xs`, compared together, need their times in nanoseconds: times of
/// different units, or one of seconds or milliseconds beside a text.
fn mixed_times(xs: &[&Expr], schema: &DFSchema) -> bool {
    let text = |x: &Expr| matches!(x, Expr::Literal(v, _) if text_value(v));
    let units: Vec<TimeUnit> = xs.iter().filter_map(|x| time_unit(x, schema)).collect();
    let coarse = units
        .iter()
        .any(|u| matches!(u, TimeUnit::Second | TimeUnit::Millisecond));
    units.windows(2).any(|w| w[0] != w[1]) || (coarse && xs.iter().any(|x| text(x)))
}

/// `x` in nanoseconds where it is a time of another unit.
fn time_nanos(x: Expr, schema: &DFSchema) -> Expr {
    match time_unit(&x, schema) {
        Some(TimeUnit::Nanosecond) | None => x,
        Some(_) => cast(x, DataType::Time64(TimeUnit::Nanosecond)),
    }
}

/// The planner of comparisons of times ([module docs](self)): DataFusion's SQL planner types
/// a comparison as it plans it, so one of times of different units failed before any analyzer
/// rule could see it.
#[derive(Debug, Default)]
pub struct TimeComparisons;

impl ExprPlanner for TimeComparisons {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        use datafusion::sql::sqlparser::ast::BinaryOperator as B;
        let compares = matches!(expr.op, B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq);
        if !compares || !mixed_times(&[&expr.left, &expr.right], schema) {
            return Ok(PlannerResult::Original(expr));
        }
        Ok(PlannerResult::Original(RawBinaryExpr {
            op: expr.op,
            left: time_nanos(expr.left, schema),
            right: time_nanos(expr.right, schema),
        }))
    }
}

/// The planner of an interval times or divided by a number (`n * INTERVAL 1 DAY`,
/// `INTERVAL 1 MONTH / 2`), which DataFusion's SQL planner refused ("Cannot get result type for
/// temporal operation"): they are planned as the functions given (segscore's `interval_mul`
/// and `interval_div`, as DuckDB computes them).
#[derive(Debug)]
pub struct IntervalScaling {
    /// `f(interval, number)`: the interval times the number.
    pub mul: Arc<ScalarUDF>,
    /// `f(interval, number)`: the interval divided by the number.
    pub div: Arc<ScalarUDF>,
}

impl ExprPlanner for IntervalScaling {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        use datafusion::sql::sqlparser::ast::BinaryOperator as B;
        let interval = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Interval(_)));
        let number = |x: &Expr| x.get_type(schema).is_ok_and(|t| t.is_numeric() || t.is_null());
        let call = |f: &Arc<ScalarUDF>, i: Expr, n: Expr| {
            Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(f), vec![i, n]))
        };
        let (left, right) = (&expr.left, &expr.right);
        Ok(match expr.op {
            B::Multiply if interval(left) && number(right) => {
                PlannerResult::Planned(call(&self.mul, expr.left, expr.right))
            }
            B::Multiply if number(left) && interval(right) => {
                PlannerResult::Planned(call(&self.mul, expr.right, expr.left))
            }
            B::Divide if interval(left) && number(right) => {
                PlannerResult::Planned(call(&self.div, expr.left, expr.right))
            }
            _ => PlannerResult::Original(expr),
        })
    }
}

/// `e` with its times in nanoseconds where it compares (or subtracts) times of different
/// units, or a time of seconds or milliseconds with a text ([`mixed_times`]); with a time of
/// seconds or milliseconds in microseconds where an interval is added to it or subtracted
/// from it.
fn times(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let coarse = |x: &Expr| {
        matches!(
            time_unit(x, schema),
            Some(TimeUnit::Second | TimeUnit::Millisecond)
        )
    };
    let nanos = |x: Expr| time_nanos(x, schema);
    let mixed = |xs: &[&Expr]| mixed_times(xs, schema);
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let interval = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Interval(_)));
            let micros = |x: Box<Expr>| Box::new(cast(*x, DataType::Time64(TimeUnit::Microsecond)));
            let compares = comparison(&op) || op == Operator::Minus;
            let e = if matches!(op, Operator::Plus | Operator::Minus) && coarse(&left) && interval(&right) {
                BinaryExpr::new(micros(left), op, right)
            } else if op == Operator::Plus && coarse(&right) && interval(&left) {
                BinaryExpr::new(left, op, micros(right))
            } else if compares && mixed(&[&left, &right]) {
                BinaryExpr::new(Box::new(nanos(*left)), op, Box::new(nanos(*right)))
            } else {
                return Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }));
            };
            Transformed::yes(Expr::BinaryExpr(e))
        }
        Expr::Between(b) if mixed(&[&b.expr, &b.low, &b.high]) => {
            Transformed::yes(Expr::Between(Between::new(
                Box::new(nanos(*b.expr)),
                b.negated,
                Box::new(nanos(*b.low)),
                Box::new(nanos(*b.high)),
            )))
        }
        Expr::InList(l)
            if mixed(
                &std::iter::once(l.expr.as_ref())
                    .chain(&l.list)
                    .collect::<Vec<_>>(),
            ) =>
        {
            let list = l.list.into_iter().map(nanos).collect();
            Transformed::yes(Expr::InList(InList::new(
                Box::new(nanos(*l.expr)),
                list,
                l.negated,
            )))
        }
        e => Transformed::no(e),
    }
}

/// Whether `op` compares its operands.
pub(crate) fn comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

/// How `c op v` reads, given `v`'s floor in `c`'s unit, where `c`'s unit cannot hold `v`:
/// None for an operator other than a comparison.
fn compared(c: Expr, op: Operator) -> Option<impl FnOnce(ScalarValue) -> Expr> {
    if !comparison(&op) {
        return None;
    }
    Some(move |floor: ScalarValue| match op {
        // Never equal: NULL for a NULL, as `=` gives.
        Operator::Eq => and(c.is_null(), lit(ScalarValue::Boolean(None))),
        Operator::NotEq => or(c.is_not_null(), lit(ScalarValue::Boolean(None))),
        Operator::Lt | Operator::LtEq => c.lt_eq(lit(floor)),
        Operator::Gt | Operator::GtEq => c.gt(lit(floor)),
        Operator::IsDistinctFrom => lit(true),
        _ => lit(false),
    })
}

/// The floor of `v` in `unit` (a coarse timestamp type's unit and zone), where `v` is a
/// timestamp written in the query (a literal, a text, `TIMESTAMP '...'`), zoned where `unit`
/// is, that `unit` cannot hold; None for anything else.
fn floor_of(v: &Expr, (unit, tz): &(TimeUnit, Option<Arc<str>>)) -> Option<ScalarValue> {
    let value = match v {
        Expr::Literal(s, _) if text_value(s) => s
            .cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()))
            .ok()?,
        Expr::Literal(s, _) => s.clone(),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => match expr.as_ref() {
            Expr::Literal(s, _) if matches!(field.data_type(), DataType::Timestamp(..)) => {
                s.cast_to(field.data_type()).ok()?
            }
            _ => return None,
        },
        _ => return None,
    };
    // A zoneless value beside a zoned column is read in the column's zone, as DataFusion's
    // coercion casts it (a `TIMESTAMPTZ '...+00'` is such a value, in UTC).
    let value = match (&value.data_type(), tz) {
        (DataType::Timestamp(_, None), Some(_)) => value
            .cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()))
            .ok()?,
        _ => value,
    };
    let (n, its_tz) = match value {
        ScalarValue::TimestampSecond(Some(n), z) => (n as i128 * nanos(&TimeUnit::Second), z),
        ScalarValue::TimestampMillisecond(Some(n), z) => (n as i128 * nanos(&TimeUnit::Millisecond), z),
        ScalarValue::TimestampMicrosecond(Some(n), z) => (n as i128 * nanos(&TimeUnit::Microsecond), z),
        ScalarValue::TimestampNanosecond(Some(n), z) => (n as i128, z),
        _ => return None,
    };
    let step = nanos(unit);
    // A zoned timestamp counts from 1970 in UTC whatever its zone; a zoned value beside a
    // zoneless column is DataFusion's to compare.
    if its_tz.is_some() != tz.is_some() || n % step == 0 {
        return None;
    }
    let floor = i64::try_from(n.div_euclid(step)).ok()?;
    Some(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(floor), tz.clone()),
        _ => ScalarValue::TimestampMillisecond(Some(floor), tz.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(Some(n), None))
    }

    fn us(n: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(n), None))
    }

    #[test]
    fn a_value_the_unit_holds_is_left_alone_and_one_it_cannot_is_floored() {
        let unit = (TimeUnit::Millisecond, None);
        assert_eq!(floor_of(&ms(5), &unit), None);
        assert_eq!(floor_of(&us(5000), &unit), None);
        assert_eq!(
            floor_of(&us(5500), &unit),
            Some(ScalarValue::TimestampMillisecond(Some(5), None))
        );
        // Before 1970 the floor is the earlier millisecond, not the one towards zero.
        assert_eq!(
            floor_of(&us(-5500), &unit),
            Some(ScalarValue::TimestampMillisecond(Some(-6), None))
        );
        // A zoned value beside a zoneless column is DataFusion's to compare; beside a zoned
        // one, whatever its zone, it is the same instant; a zoneless one is read in the
        // column's zone.
        let zoned = lit(ScalarValue::TimestampMicrosecond(
            Some(5500),
            Some("+00:00".into()),
        ));
        assert_eq!(floor_of(&zoned, &unit), None);
        assert_eq!(
            floor_of(&zoned, &(TimeUnit::Second, Some("Europe/Paris".into()))),
            Some(ScalarValue::TimestampSecond(Some(0), Some("Europe/Paris".into())))
        );
        assert_eq!(
            floor_of(&us(3_600_005_500), &(TimeUnit::Second, Some("+01:00".into()))),
            Some(ScalarValue::TimestampSecond(Some(0), Some("+01:00".into())))
        );
        assert_eq!(
            floor_of(&lit("1970-01-01 00:00:00.0055"), &unit),
            floor_of(&us(5500), &unit)
        );
        assert_eq!(floor_of(&lit("not a time"), &unit), None);
    }
}
