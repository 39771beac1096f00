//! `EXISTS (subquery)` in a select's columns (`SELECT id, EXISTS (SELECT 1 FROM labels l WHERE
//! l.id = t.id) AS labeled`), which DataFusion plans only in a WHERE ("Physical plan does not
//! support logical expression Exists"): written as `((SELECT count(*) FROM ... WHERE ...) > 0)`
//! (`NOT EXISTS`: `= 0`), a scalar subquery DataFusion joins, where the subquery is one plain
//! select (no GROUP BY, HAVING, QUALIFY, LIMIT or set operation, no aggregate in its columns),
//! whose rows' existence its count says. A WHERE's EXISTS stays DataFusion's semi join.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, Value,
};

use crate::walk;

/// Writes each EXISTS of `select`'s columns (outside subqueries of their own) as its count's
/// comparison, where the count says it; `aggregate(name)`: whether `name` is an aggregate
/// function.
pub(crate) fn in_columns(select: &mut Select, aggregate: &dyn Fn(&str) -> bool) {
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            walk::each_outside_subqueries(e, &mut |e| {
                let Expr::Exists { subquery, negated } = e else {
                    return;
                };
                let Some(count) = counted(subquery, aggregate) else {
                    return;
                };
                let op = if *negated {
                    BinaryOperator::Eq
                } else {
                    BinaryOperator::Gt
                };
                *e = Expr::Nested(Box::new(Expr::BinaryOp {
                    left: Box::new(Expr::Subquery(Box::new(count))),
                    op,
                    right: Box::new(Expr::Value(Value::Number("0".into(), false).into())),
                }));
            });
        }
    }
}

/// `query` counting its rows (`SELECT count(*) FROM ... WHERE ...`), where it is one plain
/// select whose rows that count says exist: no aggregate or window function among its columns.
fn counted(query: &Query, aggregate: &dyn Fn(&str) -> bool) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(keys, modifiers) => !keys.is_empty() || !modifiers.is_empty(),
    };
    let aggregates = |e: &Expr| matches!(e, Expr::Function(f) if f.over.is_some() || aggregate(&f.name.to_string().to_lowercase()));
    if grouped
        || select.having.is_some()
        || select.qualify.is_some()
        || !select.named_window.is_empty()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || walk::any_outside_subqueries(&select.projection, &aggregates)
    {
        return None;
    }
    let mut count = query.clone();
    count.order_by = None;
    if let SetExpr::Select(s) = count.body.as_mut() {
        s.distinct = None;
        s.projection = vec![SelectItem::UnnamedExpr(walk::parsed("count(*)").ok()?)];
    }
    Some(count)
}
