//! A cast of a fractional number to an integer rounds it, as DuckDB and PostgreSQL do:
//! `CAST(2.7 AS INT)` is 3. DataFusion's cast (arrow's) truncates it to 2, so `CAST(score * 10
//! AS INT)` put half of the scores in the bucket below the one DuckDB gives. A float's tie
//! goes to the even neighbour (`CAST(x AS INT)` of a DOUBLE 2.5 is 2, of 3.5 4: C's `rint`,
//! which both use); a DECIMAL's, and a number written in the query (`CAST(2.5 AS INT)`, a
//! DECIMAL in DuckDB and PostgreSQL, a DOUBLE here), away from zero (3). An analyzer rule,
//! after DataFusion's type coercion: it writes such a cast as the cast of its
//! `rint(...)` ([`crate::rint`]) or `round(...)`.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

/// The rule ([module docs](self)); `segscore sql` adds it to its sessions.
#[derive(Debug, Default)]
pub struct RoundedCasts;

impl AnalyzerRule for RoundedCasts {
    fn name(&self) -> &str {
        "segscore_rounded_casts"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_named(plan, rounded)
    }
}

/// `plan`, each node's expressions rewritten from their leaves up by `rewrite` (given the
/// node's input schema), subqueries' too; every expression keeps the name it was planned with
/// (a cast's is its operand's, and `round(...)` would rename a GROUP BY key the projection
/// above names; a column named by its text keeps it).
pub(crate) fn rewrite_named(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|plan| {
        let schema = merge_schema(&plan.inputs());
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|e| {
            let name = names.save(&e);
            Ok(e.transform_up(|e| rewrite(e, &schema))?
                .update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// `e` with a cast of a float or decimal to an integer made a cast of its rounding.
fn rounded(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let (inner, to) = match &e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            (expr, field.data_type())
        }
        _ => return Ok(Transformed::no(e)),
    };
    // A type that cannot be told here (an expression of another scope) is left as it is.
    let fractional = inner
        .get_type(schema)
        .is_ok_and(|from| from.is_floating() || from.is_decimal());
    if !to.is_integer() || !fractional {
        return Ok(Transformed::no(e));
    }
    let to_even = inner.get_type(schema).is_ok_and(|from| from.is_floating()) && !written(inner);
    let round = |x: Expr| {
        let f = if to_even {
            Arc::new(crate::rint::udf())
        } else {
            datafusion::functions::math::round()
        };
        Expr::ScalarFunction(ScalarFunction::new_udf(f, vec![x]))
    };
    Ok(Transformed::yes(match e {
        Expr::Cast(Cast { expr, field }) => Expr::Cast(Cast::new_from_field(Box::new(round(*expr)), field)),
        Expr::TryCast(TryCast { expr, field }) => {
            Expr::TryCast(TryCast::new_from_field(Box::new(round(*expr)), field))
        }
        e => e,
    }))
}

/// Whether `e` is a number written in the query, or arithmetic of such (`-2.5`, `0.25 * 10`):
/// a DECIMAL in DuckDB and PostgreSQL, whose ties round away from zero.
fn written(e: &Expr) -> bool {
    match e {
        Expr::Literal(..) => true,
        Expr::Negative(x) => written(x),
        Expr::BinaryExpr(b) => written(&b.left) && written(&b.right),
        _ => false,
    }
}
