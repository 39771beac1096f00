//! A date plus or minus an interval is a timestamp, as in DuckDB and PostgreSQL: `DATE
//! '2024-01-01' - INTERVAL 1 HOUR` is `2023-12-31 23:00:00`. DataFusion kept a DATE and dropped
//! the time without a word: that was `2024-01-01`, and `d + INTERVAL 36 HOUR` one day on, not a
//! day and a half. An analyzer rule before DataFusion's type coercion (which then types what
//! holds it, a comparison with a date column too): the date is cast to a timestamp first, of
//! microseconds (DuckDB's TIMESTAMP: a date past 2262 fits). Every session segscore makes runs
//! it, so a date plus a month is a timestamp too (`2024-02-29 00:00:00`), as in DuckDB.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::{cast, Expr, ExprSchemable, LogicalPlan, Operator};
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
/// a timestamp.
fn timestamp_of_date(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Transformed::no(e);
    };
    let is = |x: &Expr, f: fn(&DataType) -> bool| x.get_type(schema).is_ok_and(|t| f(&t));
    let date = |t: &DataType| matches!(t, DataType::Date32 | DataType::Date64);
    let interval = |t: &DataType| matches!(t, DataType::Interval(_));
    let timestamp = |x: Expr| Box::new(cast(x, DataType::Timestamp(TimeUnit::Microsecond, None)));
    match op {
        Operator::Plus | Operator::Minus if is(&left, date) && is(&right, interval) => {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(timestamp(*left), op, right)))
        }
        Operator::Plus if is(&left, interval) && is(&right, date) => {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, op, timestamp(*right))))
        }
        op => Transformed::no(Expr::BinaryExpr(BinaryExpr::new(left, op, right))),
    }
}
