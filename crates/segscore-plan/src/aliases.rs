//! DuckDB's lateral column aliases: a select's column named `y` read by a later column, or by
//! its WHERE, GROUP BY, HAVING or QUALIFY, by that name (`SELECT p - t AS r, r * r AS sq`,
//! `... WHERE r > 0`). DataFusion has no such names ("No field named r"). Where planning fails
//! so, for an unqualified name that no table has and that a select gives a column, the select
//! reads the column's expression there instead and is planned again: a table's column of that
//! name wins, as in DuckDB, since the planner found none.

use std::ops::ControlFlow;

use datafusion::common::{Column, SchemaError};
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, Query, Select, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

use crate::using;

/// The unqualified column `error` says no table has, where planning failed so.
pub(crate) fn missing(error: &DataFusionError) -> Option<String> {
    match error.find_root() {
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { field, .. } => match field.as_ref() {
                Column {
                    relation: None, name, ..
                } => Some(name.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// `statement` with each select that names a column `name` reading that column's expression
/// where a later column or its WHERE, GROUP BY, HAVING or QUALIFY reads `name`; whether any
/// does.
pub(crate) fn lateral(statement: &mut Statement, name: &str) -> bool {
    struct Lateral<'a> {
        name: &'a str,
        done: bool,
    }
    impl VisitorMut for Lateral<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            let mut bodies = vec![query.body.as_mut()];
            while let Some(body) = bodies.pop() {
                match body {
                    SetExpr::Select(s) => self.done |= read_by_name(s, self.name),
                    SetExpr::SetOperation { left, right, .. } => {
                        bodies.extend([left.as_mut(), right.as_mut()])
                    }
                    _ => {}
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut lateral = Lateral { name, done: false };
    let _ = statement.visit(&mut lateral);
    lateral.done
}

/// [`lateral`] of one select.
fn read_by_name(select: &mut Select, name: &str) -> bool {
    let named = select.projection.iter().position(|item| {
        matches!(item, SelectItem::ExprWithAlias { alias, .. } if using::same(alias, &Ident::with_quote('"', name)))
    });
    let Some(at) = named else {
        return false;
    };
    let SelectItem::ExprWithAlias { expr, alias } = &select.projection[at] else {
        return false;
    };
    let read = [(alias.clone(), Expr::Nested(Box::new(expr.clone())))];
    let before = select.to_string();
    for item in &mut select.projection[at + 1..] {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            using::replace(e, &read);
        }
    }
    for e in select
        .selection
        .iter_mut()
        .chain(&mut select.having)
        .chain(&mut select.qualify)
    {
        using::replace(e, &read);
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.iter_mut().for_each(|e| using::replace(e, &read));
    }
    select.to_string() != before
}
