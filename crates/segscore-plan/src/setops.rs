//! `EXCEPT ALL` and `INTERSECT ALL` as the SQL standard, DuckDB and PostgreSQL count rows: a row
//! `m` times on the left and `n` times on the right is `max(m − n, 0)` times in `EXCEPT ALL`
//! and `min(m, n)` times in `INTERSECT ALL`. DataFusion planned both as a join on every column
//! (apache/datafusion#12955, #12956), so `EXCEPT ALL` removed every copy of a row the right
//! side had once, and `INTERSECT ALL` kept all `m`, without a word. This analyzer rule numbers
//! each side's copies of a row (`row_number() OVER (PARTITION BY` every column`)`) and joins on
//! the number too: the `k`-th copy on the left meets the `k`-th on the right.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, NullEquality};
use datafusion::error::Result;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, JoinConstraint, JoinType, LogicalPlan, LogicalPlanBuilder,
};
use datafusion::optimizer::AnalyzerRule;

/// The rule ([module docs](self)); every session segscore makes runs it.
#[derive(Debug, Default)]
pub struct SetOperationsAll;

impl AnalyzerRule for SetOperationsAll {
    fn name(&self) -> &str {
        "segscore_set_operations_all"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(counted).map(|t| t.data)
    }
}

/// The name of each side's copy number.
const COPY: [&str; 2] = ["__segscore_copy_left", "__segscore_copy_right"];

/// `plan` with each copy of a row counted, where it is the join DataFusion plans for `EXCEPT
/// ALL` or `INTERSECT ALL`: a semi or anti join of two inputs on every column, in order, with
/// NULLs equal, nothing else, whose left input is no `DISTINCT` (an `EXCEPT`'s or `INTERSECT`'s
/// is; and over distinct rows, the join is right).
fn counted(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let (left, right) = (join.left.schema(), join.right.schema());
    let every_column = join.on.len() == left.fields().len()
        && join.on.len() == right.fields().len()
        && join.on.iter().enumerate().all(|(i, pair)| {
            matches!(pair, (Expr::Column(l), Expr::Column(r))
                if left.index_of_column(l).ok() == Some(i) && right.index_of_column(r).ok() == Some(i))
        });
    let all = matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.join_constraint == JoinConstraint::On
        && join.filter.is_none()
        && !join.null_aware
        && !matches!(join.left.as_ref(), LogicalPlan::Distinct(_))
        && every_column;
    // A join this rule wrote (a view's plan is analyzed again in each query that reads it).
    let counted_already = left.fields().last().is_some_and(|f| f.name() == COPY[0]);
    if !all || join.on.is_empty() || counted_already {
        return Ok(Transformed::no(plan));
    }
    let numbered = |input: &LogicalPlan, name: &str| -> Result<LogicalPlan> {
        let columns = input.schema().columns().into_iter().map(Expr::Column).collect();
        let copy = row_number().partition_by(columns).build()?.alias(name);
        LogicalPlanBuilder::from(input.clone())
            .window(vec![copy])?
            .build()
    };
    let keys = |side: usize| -> Vec<Column> {
        let names = join.on.iter().map(|(l, r)| [l, r][side].clone());
        let names = names.filter_map(|e| match e {
            Expr::Column(c) => Some(c),
            _ => None,
        });
        names.chain([Column::from_name(COPY[side])]).collect()
    };
    let kept: Vec<Expr> = left.columns().into_iter().map(Expr::Column).collect();
    let counted = LogicalPlanBuilder::from(numbered(&join.left, COPY[0])?)
        .join_detailed(
            numbered(&join.right, COPY[1])?,
            join.join_type,
            (keys(0), keys(1)),
            None,
            NullEquality::NullEqualsNull,
        )?
        .project(kept)?
        .build()?;
    Ok(Transformed::yes(counted))
}
