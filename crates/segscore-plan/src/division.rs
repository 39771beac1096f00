//! Division as DuckDB divides: `/` of two integers is the division of their values as DOUBLE
//! (`7 / 2` is 3.5, `count_if(ok) / count(*)` a share), and `//` is the integer division
//! (`7 // 2` is 3, toward zero). DataFusion (as PostgreSQL) truncated `7 / 2` to 3, so a
//! ratio of two counts was 0 without a word, and refused `//` ("Operator DIV is not yet
//! supported"). A `/` with a DECIMAL, and the mean (`avg`) of one, are DOUBLE too, as in
//! DuckDB: DataFusion's kept 4 more decimals than the operand and cut the rest, so `1 / price`
//! of a DECIMAL(10, 2) 0.91 was 1.0989 for 1.0989010989…, and `avg(price)` -0.772666 for
//! -0.7726666…. An analyzer rule that runs before DataFusion's type coercion casts both
//! operands of such a `/` (an `avg`'s argument) to DOUBLE; `x // y` is written as DuckDB's
//! `divide(x, y)` before planning ([`crate::duckdb`]), a function segscore registers.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::{cast, Expr, ExprSchemable, LogicalPlan, Operator, WindowFunctionDefinition};
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

/// `e` as DuckDB divides, where it is a `/` of two integers or of a DECIMAL and a number, or
/// an `avg` of a DECIMAL. The operands have been rewritten already (the rewrite goes up from
/// the leaves): `(a / b) / c` divides DOUBLEs.
fn divided(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // A type that cannot be told here (an expression of another scope) is left as it is.
    let of = |e: &Expr| e.get_type(schema).ok();
    let double = |e: Expr| cast(e, DataType::Float64);
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) if as_double(of(&left), of(&right)) => Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(double(*left)),
            Operator::Divide,
            Box::new(double(*right)),
        )))),
        Expr::AggregateFunction(mut f) if f.func.name() == "avg" && decimal_mean(&f.params.args, schema) => {
            f.params.args = f.params.args.into_iter().map(double).collect();
            Ok(Transformed::yes(Expr::AggregateFunction(f)))
        }
        Expr::WindowFunction(mut w)
            if matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f) if f.name() == "avg")
                && decimal_mean(&w.params.args, schema) =>
        {
            w.params.args = w.params.args.into_iter().map(double).collect();
            Ok(Transformed::yes(Expr::WindowFunction(w)))
        }
        e => Ok(Transformed::no(e)),
    }
}

/// Whether a `/` of operands of these types divides as DOUBLE: two integers, or a DECIMAL and
/// a number.
fn as_double(left: Option<DataType>, right: Option<DataType>) -> bool {
    let (Some(l), Some(r)) = (left, right) else {
        return false;
    };
    (l.is_integer() && r.is_integer()) || ((decimal(&l) || decimal(&r)) && l.is_numeric() && r.is_numeric())
}

/// Whether `args` are an `avg`'s one argument of a DECIMAL type.
fn decimal_mean(args: &[Expr], schema: &DFSchema) -> bool {
    matches!(args, [arg] if arg.get_type(schema).is_ok_and(|t| decimal(&t)))
}

/// Whether `t` is a DECIMAL of any width.
fn decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}
