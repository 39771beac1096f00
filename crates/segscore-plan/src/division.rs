//! Division as DuckDB divides: `/` of two integers is the division of their values as DOUBLE
//! (`7 / 2` is 3.5, `count_if(ok) / count(*)` a share), and `//` is the integer division
//! (`7 // 2` is 3, toward zero). DataFusion (as PostgreSQL) truncated `7 / 2` to 3, so a
//! ratio of two counts was 0 without a word, and refused `//` ("Operator DIV is not yet
//! supported"). An analyzer rule that runs before DataFusion's type coercion casts both
//! operands of an integer `/` to DOUBLE; `x // y` is written as DuckDB's `divide(x, y)` before
//! planning ([`crate::duckdb`]), a function segscore registers.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::{cast, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The rule ([module docs](self)); every session segscore makes runs it first.
#[derive(Debug, Default)]
pub struct DuckDbDivision;

impl AnalyzerRule for DuckDbDivision {
    fn name(&self) -> &str {
        "segscore_duckdb_division"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::casts::rewrite_named(plan, divided)
    }
}

/// `e` as DuckDB divides, where it is a `/` of two integers. The operands have been rewritten
/// already (the rewrite goes up from the leaves): `(a / b) / c` divides DOUBLEs.
fn divided(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        // A type that cannot be told here (an expression of another scope) is left as it is.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) if integer(&left, schema) && integer(&right, schema) => {
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(cast(*left, DataType::Float64)),
                Operator::Divide,
                Box::new(cast(*right, DataType::Float64)),
            ))))
        }
        e => Ok(Transformed::no(e)),
    }
}

/// Whether `e` is of an integer type in `schema`.
fn integer(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| t.is_integer())
}
