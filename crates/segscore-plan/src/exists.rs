//! `EXISTS (subquery)` and `x IN (subquery)` in a select's columns (`SELECT id, EXISTS (SELECT 1
//! FROM labels l WHERE l.id = t.id) AS labeled`, `id IN (SELECT id FROM labels)`), which
//! DataFusion plans only in a WHERE ("Physical plan does not support logical expression
//! Exists"): an EXISTS written as `((SELECT count(*) FROM ... WHERE ...) > 0)`, a scalar
//! subquery DataFusion joins, and an IN as SQL's three-valued answer from three such counts,
//! where the subquery is one plain select (no GROUP BY, HAVING, QUALIFY, LIMIT or set
//! operation, no aggregate in its columns), whose rows' existence its count says. A WHERE's
//! EXISTS and IN stay DataFusion's semi joins.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, Query, Select, SelectItem, SetExpr, TableFactor,
    TableWithJoins, UnaryOperator, Value,
};

use crate::walk;

/// Writes each EXISTS and IN of a subquery among `select`'s columns (outside subqueries of
/// their own) as counts' comparisons, where the counts say them; `aggregate(name)`: whether
/// `name` is an aggregate function.
pub(crate) fn in_columns(select: &mut Select, aggregate: &dyn Fn(&str) -> bool) {
    let outer = outer_name(select);
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            walk::each_outside_subqueries(e, &mut |e| {
                let (written, negated) = match e {
                    Expr::Exists { subquery, negated } => (exists(subquery, None, aggregate), *negated),
                    Expr::InSubquery {
                        expr,
                        subquery,
                        negated,
                    } => (listed(expr, subquery, outer.as_ref(), aggregate), *negated),
                    _ => return,
                };
                if let Some(written) = written {
                    *e = match negated {
                        true => Expr::UnaryOp {
                            op: UnaryOperator::Not,
                            expr: Box::new(written),
                        },
                        false => written,
                    };
                }
            });
        }
    }
}

/// `((SELECT count(*) FROM ... WHERE ... [AND also]) > 0)`: whether `query` has a row (where
/// `also` holds), where its count says it.
fn exists(query: &Query, also: Option<Expr>, aggregate: &dyn Fn(&str) -> bool) -> Option<Expr> {
    let mut count = counted(query, aggregate)?;
    if let (Some(also), SetExpr::Select(s)) = (also, count.body.as_mut()) {
        s.selection = Some(match s.selection.take() {
            Some(w) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(w))),
                op: BinaryOperator::And,
                right: Box::new(Expr::Nested(Box::new(also))),
            },
            None => also,
        });
    }
    Some(Expr::Nested(Box::new(Expr::BinaryOp {
        left: Box::new(Expr::Subquery(Box::new(count))),
        op: BinaryOperator::Gt,
        right: Box::new(Expr::Value(Value::Number("0".into(), false).into())),
    })))
}

/// `x IN (SELECT y FROM ... WHERE ...)` as SQL defines it, from whether the subquery has a row,
/// one where `y = x`, and one where `y` is NULL: NULL for a NULL `x` (false where there is no
/// row), true with a match, else NULL where `y` is NULL in a row, else false. `x`'s columns are
/// named by `outer` (the outer select's table) inside the subquery; `None` where one is not
/// named so and `outer` is not known, or where a table the subquery reads goes by a name `x`
/// gives a column (there it would be the subquery's).
fn listed(x: &Expr, query: &Query, outer: Option<&Ident>, aggregate: &dyn Fn(&str) -> bool) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [SelectItem::UnnamedExpr(y) | SelectItem::ExprWithAlias { expr: y, .. }] =
        select.projection.as_slice()
    else {
        return None;
    };
    let nested = |e: &Expr| {
        matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        )
    };
    if walk::any_outside_subqueries(x, &nested) {
        return None;
    }
    let mut inner = x.clone();
    let mut unnamed = false;
    walk::each_outside_subqueries(&mut inner, &mut |e| {
        if let Expr::Identifier(column) = e {
            match outer {
                Some(table) => *e = Expr::CompoundIdentifier(vec![table.clone(), column.clone()]),
                None => unnamed = true,
            }
        }
    });
    // Each table `x` names must mean it inside the subquery too: no table there goes by it.
    let clashes = |e: &Expr| match e {
        Expr::CompoundIdentifier(parts) => parts
            .first()
            .is_some_and(|t| !select.from.iter().all(|f| outside(f, t))),
        _ => false,
    };
    if unnamed || walk::any_outside_subqueries(&inner, &clashes) {
        return None;
    }
    let any = exists(query, None, aggregate)?;
    let found = exists(
        query,
        Some(walk::parsed(&format!("({y}) = ({inner})")).ok()?),
        aggregate,
    )?;
    let null = exists(
        query,
        Some(walk::parsed(&format!("({y}) IS NULL")).ok()?),
        aggregate,
    )?;
    walk::parsed(&format!(
        "(CASE WHEN ({x}) IS NULL THEN CASE WHEN {any} THEN NULL ELSE false END \
         WHEN {found} THEN true WHEN {null} THEN NULL ELSE false END)"
    ))
    .ok()
}

/// Whether none of `table`'s relations (a table and the tables it joins) goes by `name`, as far
/// as can be told: a relation other than a named table or an aliased subquery counts as going by
/// it.
fn outside(table: &TableWithJoins, name: &Ident) -> bool {
    let same = |i: &Ident| i.value.eq_ignore_ascii_case(&name.value);
    std::iter::once(&table.relation)
        .chain(table.joins.iter().map(|j| &j.relation))
        .all(|r| match r {
            TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
                !same(&a.name)
            }
            TableFactor::Table {
                name, alias: None, ..
            } => !name.0.last().and_then(|p| p.as_ident()).is_some_and(same),
            _ => false,
        })
}

/// The name the select's one table goes by (its alias, or its name of one part: a quoted path
/// double-quoted, as the planner names such a table), or `None` where it reads no table or
/// several.
fn outer_name(select: &Select) -> Option<Ident> {
    let [table] = select.from.as_slice() else {
        return None;
    };
    if !table.joins.is_empty() {
        return None;
    }
    match &table.relation {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            Some(a.name.clone())
        }
        TableFactor::Table {
            name, alias: None, ..
        } => match name.0.as_slice() {
            [part] => part.as_ident().map(|i| match i.quote_style {
                None => i.clone(),
                Some(_) => Ident::with_quote('"', i.value.clone()),
            }),
            _ => None,
        },
        _ => None,
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
        || select.top.is_some()
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
