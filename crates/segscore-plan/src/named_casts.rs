//! Casts named apart from their operands where DataFusion's names would clash. DataFusion
//! names a cast by its operand (`CAST(y AS INT)` is `y`; apache/datafusion#18975), so
//! `max(y)` beside `max(y::INT)`, a `HAVING max(y::DOUBLE) > 1` over `max(y)`, two windows
//! `sum(x) OVER ()` and `sum(x::INT) OVER ()`, or `GROUP BY y, y::INT` failed: "Schema contains
//! duplicate unqualified field name max(t.y)". Where planning fails so, each cast of a
//! non-literal is written as `segscore_cast_named(CAST(... AS INT), 'CAST AS INT')`, whose
//! name holds the type, and the statement is planned again. The function returns its first
//! argument as it is, and DataFusion's optimizer removes it (its `simplify`), each expression
//! keeping the name it was planned with: the plans run are the casts'.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self, CastKind, Statement, Value, VisitMut, VisitorMut};

/// The function's name.
const NAME: &str = "segscore_cast_named";

/// Whether `e` is DataFusion's refusal of two expressions of one name, as a cast's gives.
pub(crate) fn clash(e: &DataFusionError) -> bool {
    let text = e.to_string();
    text.contains("duplicate unqualified field name")
        || text.contains("duplicate qualified field name")
        || text.contains("require unique expression names")
}

/// Whether `plan` groups by two expressions of one name (`GROUP BY y, y::INT`), which plans
/// but fails in DataFusion's optimizer.
pub(crate) fn grouped_twice(plan: &LogicalPlan) -> bool {
    let mut twice = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Aggregate(a) = node {
            let names: Vec<_> = a.group_expr.iter().map(|e| e.schema_name().to_string()).collect();
            twice = (1..names.len()).any(|i| names[..i].contains(&names[i]));
        }
        Ok(if twice {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    twice
}

/// Writes each cast of a non-literal in `statement` as `segscore_cast_named(cast, 'its
/// kind and type')`.
pub(crate) fn name_casts(statement: &mut Statement) {
    struct Casts;
    impl VisitorMut for Casts {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut ast::Expr) -> std::ops::ControlFlow<()> {
            if let ast::Expr::Cast {
                kind,
                expr,
                data_type,
                ..
            } = e
            {
                if !matches!(**expr, ast::Expr::Value(_)) {
                    let kind = match kind {
                        CastKind::TryCast | CastKind::SafeCast => "TRY_CAST",
                        CastKind::Cast | CastKind::DoubleColon => "CAST",
                    };
                    let tag =
                        ast::Expr::Value(Value::SingleQuotedString(format!("{kind} AS {data_type}")).into());
                    let cast = std::mem::replace(e, ast::Expr::Value(Value::Null.into()));
                    *e = crate::power::call(NAME, vec![cast, tag]);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Casts);
}

/// `segscore_cast_named(x, tag)`: `x` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Named {
    signature: Signature,
}

impl ScalarUDFImpl for Named {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(args.arg_fields[0].as_ref().clone().with_name(NAME)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let first = args.args.into_iter().next();
        first.ok_or_else(|| DataFusionError::Plan(format!("{NAME} takes two arguments")))
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(match args.into_iter().next() {
            Some(x) => ExprSimplifyResult::Simplified(x),
            None => return Err(DataFusionError::Plan(format!("{NAME} takes two arguments"))),
        })
    }
}

/// `segscore_cast_named`, for a registry (a cluster's scheduler finds it by name).
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(Named {
        signature: Signature::any(2, Volatility::Immutable),
    })
}
