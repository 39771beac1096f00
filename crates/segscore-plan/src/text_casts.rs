//! A cast of a date, a time, a timestamp, an interval, a duration or a float to text gives
//! DuckDB's text (`2024-01-01 10:00:00.5`, `01:30:00`, `1e-07`): in `CAST(ts AS VARCHAR)`,
//! `ts::TEXT`, and where DataFusion's type coercion casts one to text (`'at ' || ts`,
//! `concat(d, ...)`, `string_agg(x, ',')`). DataFusion's cast (arrow's) writes ISO 8601,
//! `2024-01-01T10:00:00.500`, so `split_part(ts::VARCHAR, ' ', 1)` or a `LIKE` written for
//! DuckDB's or PostgreSQL's text matched nothing, without a word; and floats as `1e16`,
//! `0.00001`, `NaN` (DuckDB, as Python, `1e+16`, `1e-05`, `nan`). An analyzer rule, after type
//! coercion: such a cast is written as the cast of the function given (segscore's
//! `segscore_text`, compiled with the rest of segscore's functions).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

/// Whether values of type `t` are a date, a time, a timestamp, an interval, a duration or a
/// float: the types whose casts to text the rule rewrites.
pub fn has_duckdb_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Interval(_)
            | DataType::Duration(_)
    )
}

/// The rule ([module docs](self)); `segscore sql` adds it to its sessions.
#[derive(Debug)]
pub struct TextCasts {
    /// The function that gives a value's text (one argument, a text result).
    pub text: Arc<ScalarUDF>,
}

impl AnalyzerRule for TextCasts {
    fn name(&self) -> &str {
        "segscore_text_casts"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::casts::rewrite_named(plan, |e, schema| self.rewrite(e, schema))
    }
}

impl TextCasts {
    /// `e`, a cast of such a value to text made the cast of its DuckDB text.
    fn rewrite(&self, e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let (inner, to) = match &e {
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                (expr, field.data_type())
            }
            _ => return Ok(Transformed::no(e)),
        };
        let text = matches!(to, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        // A type that cannot be told here (an expression of another scope) is left as it is.
        if !text || !inner.get_type(schema).is_ok_and(|t| has_duckdb_text(&t)) {
            return Ok(Transformed::no(e));
        }
        let written = |x: Expr| {
            Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::clone(&self.text),
                vec![x],
            )))
        };
        Ok(Transformed::yes(match e {
            Expr::Cast(Cast { expr, field }) => Expr::Cast(Cast::new_from_field(written(*expr), field)),
            Expr::TryCast(TryCast { expr, field }) => {
                Expr::TryCast(TryCast::new_from_field(written(*expr), field))
            }
            e => e,
        }))
    }
}
