//! A text's subscripts, as DuckDB reads them: `s[i]`, the `i`-th character, and `s[a:b]`, the
//! characters from `a` to `b` (a list's slice, counted in characters; with a bound left out,
//! `s[:80]`, as `calls.rs` fills it). DataFusion planned a subscript as a list's alone,
//! and refused a text's ("No function matches ... array_element(array, index)"). An expression
//! planner, consulted before DataFusion's: where the subscripted expression is a text, it plans
//! the functions given (segscore's `segscore_text_element` and `segscore_text_slice`); anything
//! else goes on to DataFusion's.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawFieldAccessExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, GetFieldAccess, ScalarUDF};

/// The planner ([module docs](self)); `segscore sql` puts it before DataFusion's.
#[derive(Debug)]
pub struct TextSubscripts {
    /// `f(s, i)`: the `i`-th character of `s`.
    pub element: Arc<ScalarUDF>,
    /// `f(s, a, b)`: the characters of `s` from `a` to `b`.
    pub slice: Arc<ScalarUDF>,
}

impl ExprPlanner for TextSubscripts {
    fn plan_field_access(
        &self,
        access: RawFieldAccessExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawFieldAccessExpr>> {
        let text = access.expr.get_type(schema).is_ok_and(|t| is_text(&t));
        if !text {
            return Ok(PlannerResult::Original(access));
        }
        let call = |f: &Arc<ScalarUDF>, args: Vec<Expr>| {
            Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(f), args))
        };
        Ok(match access.field_access {
            GetFieldAccess::ListIndex { key } => {
                PlannerResult::Planned(call(&self.element, vec![access.expr, *key]))
            }
            GetFieldAccess::ListRange { start, stop, stride } => {
                if !matches!(*stride, Expr::Literal(ScalarValue::Int64(Some(1)), _)) {
                    return plan_err!("a text's slice takes no step: {}", access.expr);
                }
                PlannerResult::Planned(call(&self.slice, vec![access.expr, *start, *stop]))
            }
            field_access => PlannerResult::Original(RawFieldAccessExpr {
                field_access,
                expr: access.expr,
            }),
        })
    }
}

/// Whether values of type `t` are text (categorical text too).
fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}
