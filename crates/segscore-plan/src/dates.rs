//! A date plus or minus an interval is a timestamp, as in DuckDB and PostgreSQL: `DATE
//! '2024-01-01' - INTERVAL 1 HOUR` is `2023-12-31 23:00:00`. DataFusion kept a DATE and dropped
//! the time without a word: that was `2024-01-01`, and `d + INTERVAL 36 HOUR` one day on, not a
//! day and a half. An analyzer rule before DataFusion's type coercion (which then types what
//! holds it, a comparison with a date column too): the date is cast to a timestamp first, of
//! microseconds (DuckDB's TIMESTAMP: a date past 2262 fits). Every session segscore makes runs
//! it, so a date plus a month is a timestamp too (`2024-02-29 00:00:00`), as in DuckDB. A
//! comparison (or a BETWEEN) of a date with a timestamp of microseconds or coarser compares
//! them in that timestamp's unit: DataFusion's coercion compares in nanoseconds, where a date
//! past 2262 (a `9999-12-31` "no end" date) is an error, so `valid_to > current_date -
//! INTERVAL 1 DAY` failed on such rows once the right side was a timestamp.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::{cast, lit, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The rule ([module docs](self)).
#[derive(Debug, Default)]
pub struct DateIntervals;

impl AnalyzerRule for DateIntervals {
    fn name(&self) -> &str {
        "segscore_date_intervals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::casts::rewrite_named(plan, |e, schema| Ok(timestamp_of_date(e, schema)))
    }
}

/// `e`, a date plus or minus an interval (or an interval plus a date), with the date cast to
/// a timestamp; a comparison of a date with a timestamp, in that timestamp's unit.
fn timestamp_of_date(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let type_of = |x: &Expr| x.get_type(schema).ok();
    let e = match e {
        Expr::Between(mut b) => {
            let types = [type_of(&b.expr), type_of(&b.low), type_of(&b.high)];
            let Some(to) = types.iter().flatten().find_map(coarse_timestamp) else {
                return Transformed::no(Expr::Between(b));
            };
            let mut changed = false;
            for (x, t) in [&mut b.expr, &mut b.low, &mut b.high].into_iter().zip(&types) {
                if t.as_ref().is_some_and(is_date) {
                    **x = cast(std::mem::replace(&mut **x, lit(ScalarValue::Null)), to.clone());
                    changed = true;
                }
            }
            return Transformed::new_transformed(Expr::Between(b), changed);
        }
        e => e,
    };
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Transformed::no(e);
    };
    let (l, r) = (type_of(&left), type_of(&right));
    let date = |t: &Option<DataType>| t.as_ref().is_some_and(is_date);
    let interval = |t: &Option<DataType>| matches!(t, Some(DataType::Interval(_)));
    let comparison = crate::timestamps::comparison(&op);
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let (left, right, changed) = match op {
        _ if comparison => match (
            r.as_ref().and_then(coarse_timestamp),
            l.as_ref().and_then(coarse_timestamp),
        ) {
            (Some(to), _) if date(&l) => (Box::new(cast(*left, to)), right, true),
            (_, Some(to)) if date(&r) => (left, Box::new(cast(*right, to)), true),
            _ => (left, right, false),
        },
        Operator::Plus | Operator::Minus if date(&l) && interval(&r) => {
            (Box::new(cast(*left, micros)), right, true)
        }
        Operator::Plus if interval(&l) && date(&r) => (left, Box::new(cast(*right, micros)), true),
        _ => (left, right, false),
    };
    Transformed::new_transformed(Expr::BinaryExpr(BinaryExpr::new(left, op, right)), changed)
}

/// Whether values of type `t` are dates.
fn is_date(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64)
}

/// `t`, where it is a timestamp without a time zone in microseconds or a coarser unit (one a
/// date past 2262 fits in).
fn coarse_timestamp(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Timestamp(unit, None) if *unit != TimeUnit::Nanosecond => Some(t.clone()),
        _ => None,
    }
}
