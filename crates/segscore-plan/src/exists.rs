//! `EXISTS (subquery)` in a select's columns (`SELECT id, EXISTS (SELECT 1 FROM labels l WHERE
//! l.id = t.id) AS labeled`), which DataFusion plans only in a WHERE ("Physical plan does not
//! support logical expression Exists"): written as `((SELECT count(*) FROM ... WHERE ...) > 0)`
//! (`NOT EXISTS`: `= 0`), a scalar subquery DataFusion joins, where the subquery is one plain
//! select (no GROUP BY, HAVING, QUALIFY, LIMIT or set operation, no aggregate in its columns),
//! whose rows' existence its count says. A WHERE's EXISTS stays DataFusion's semi join.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, Value, Visit, VisitMut, Visitor,
    VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Writes each EXISTS of `select`'s columns (outside subqueries of their own) as its count's
/// comparison, where the count says it; `aggregate(name)`: whether `name` is an aggregate
/// function.
pub(crate) fn in_columns(select: &mut Select, aggregate: &dyn Fn(&str) -> bool) {
    struct Columns<'a> {
        depth: usize,
        aggregate: &'a dyn Fn(&str) -> bool,
    }
    impl VisitorMut for Columns<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                if let Expr::Exists { subquery, negated } = e {
                    if let Some(count) = counted(subquery, self.aggregate) {
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
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            let _ = e.visit(&mut Columns { depth: 0, aggregate });
        }
    }
}

/// `query` counting its rows (`SELECT count(*) FROM ... WHERE ...`), where it is one plain
/// select whose rows that count says exist.
fn counted(query: &Query, aggregate: &dyn Fn(&str) -> bool) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(keys, modifiers) => !keys.is_empty() || !modifiers.is_empty(),
    };
    if grouped
        || select.having.is_some()
        || select.qualify.is_some()
        || !select.named_window.is_empty()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || aggregates(&select.projection, aggregate)
    {
        return None;
    }
    let mut count = query.clone();
    count.order_by = None;
    if let SetExpr::Select(s) = count.body.as_mut() {
        s.distinct = None;
        s.projection = vec![SelectItem::UnnamedExpr(
            Parser::new(&GenericDialect {})
                .try_with_sql("count(*)")
                .and_then(|mut p| p.parse_expr())
                .ok()?,
        )];
    }
    Some(count)
}

/// Whether `items` call an aggregate or a window function (outside subqueries of their own).
fn aggregates(items: &[SelectItem], aggregate: &dyn Fn(&str) -> bool) -> bool {
    struct Calls<'a> {
        depth: usize,
        aggregate: &'a dyn Fn(&str) -> bool,
    }
    impl Visitor for Calls<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Function(f) if self.depth == 0 => {
                    let name = f.name.to_string().to_lowercase();
                    if f.over.is_some() || (self.aggregate)(&name) {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    items
        .iter()
        .any(|item| item.visit(&mut Calls { depth: 0, aggregate }).is_break())
}
