//! The key of a `RIGHT` or `FULL JOIN ... USING (k)` as the SQL standard, DuckDB and PostgreSQL
//! give it: one column `k`, `COALESCE(left.k, right.k)`. DataFusion read an unqualified `k`
//! (and `*`'s `k`) as the left side's, NULL on every row only the right side has
//! (apache/datafusion#22881), so such rows lost their key, a `GROUP BY k` put them under NULL
//! and `WHERE k = 4` dropped them, without a word. Before planning, a select that joins two
//! named tables so is written with `ON left.k = right.k`, its unqualified `k` (outside
//! subqueries) as the COALESCE, and `*` as DuckDB lists it: the left side's columns, the keys
//! merged, then the right side's others. A shape this does not write (more joins beside it, a `NATURAL` one, whose columns
//! are not known here, a `*` with options) is refused, saying what to write.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, Join, JoinConstraint, JoinOperator, ObjectName, OrderBy, OrderByKind, Query,
    Select, SelectItem, SetExpr, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Writes the RIGHT or FULL JOIN USING of `query`'s selects (its columns named already) as
/// the module says; the query's ORDER BY reads the key too where its body is one select.
pub(crate) fn merged_keys(query: &mut Query) -> Result<()> {
    let Query { body, order_by, .. } = query;
    let mut selects = vec![(body.as_mut(), order_by.as_mut())];
    while let Some((body, order_by)) = selects.pop() {
        match body {
            SetExpr::Select(s) => merged(s, order_by)?,
            SetExpr::SetOperation { left, right, .. } => {
                selects.extend([(left.as_mut(), None), (right.as_mut(), None)])
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`merged_keys`] of one select, and the ORDER BY that sorts it.
fn merged(select: &mut Select, order_by: Option<&mut OrderBy>) -> Result<()> {
    let merging = |j: &Join| match &j.join_operator {
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) | JoinOperator::FullOuter(c) => {
            matches!(c, JoinConstraint::Using(_) | JoinConstraint::Natural)
        }
        _ => false,
    };
    let joins: Vec<&Join> = select.from.iter().flat_map(|t| &t.joins).collect();
    if !joins.iter().any(|j| merging(j)) {
        return Ok(());
    }
    let refuse = |what: &str| {
        Err(DataFusionError::Plan(format!(
            "a RIGHT or FULL JOIN's USING or NATURAL key is COALESCE(left.k, right.k); segscore writes it so for \
             one such join of two named tables, not {what}: write the join with ON left.k = right.k and the key \
             as COALESCE(left.k, right.k) (DataFusion gives the left side's, NULL where only the right has the row)"
        )))
    };
    let [from] = select.from.as_mut_slice() else {
        return refuse("beside other tables");
    };
    let [join] = from.joins.as_mut_slice() else {
        return refuse("among several joins");
    };
    let (Some(left), Some(right)) = (qualifier(&from.relation), qualifier(&join.relation)) else {
        return refuse("of a table without a name (give it an alias)");
    };
    let constraint = match &mut join.join_operator {
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) | JoinOperator::FullOuter(c) => c,
        _ => return refuse("of this kind"),
    };
    let keys: Vec<Ident> = match constraint {
        JoinConstraint::Using(names) => names
            .iter()
            .filter_map(|n| n.0.last()?.as_ident().cloned())
            .collect(),
        _ => return refuse("a NATURAL join (its columns are not known before planning)"),
    };
    let on = keys
        .iter()
        .map(|k| format!("{left}.{k} = {right}.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    *constraint = JoinConstraint::On(crate::walk::parsed(&on)?);
    let merged: Vec<(Ident, Expr)> = keys
        .iter()
        .map(|k| {
            Ok((
                k.clone(),
                crate::walk::parsed(&format!("COALESCE({left}.{k}, {right}.{k})"))?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut items = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::Wildcard(options) => {
                let plain = options.opt_ilike.is_none()
                    && options.opt_exclude.is_none()
                    && options.opt_except.is_none()
                    && options.opt_replace.is_none()
                    && options.opt_rename.is_none()
                    && options.opt_alias.is_none();
                if !plain {
                    return refuse("a * with options");
                }
                let keys = keys
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let replaced = merged.iter().map(|(k, e)| format!("{e} AS {k}"));
                let replaced = replaced.collect::<Vec<_>>().join(", ");
                let mut all = parsed_projection(&format!(
                    "{left}.* REPLACE ({replaced}), {right}.* EXCLUDE ({keys})"
                ))?;
                items.append(&mut all);
            }
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => items.push(match key(&merged, &i) {
                Some((k, e)) => SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: k.clone(),
                },
                None => SelectItem::UnnamedExpr(Expr::Identifier(i)),
            }),
            mut item => {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = &mut item {
                    replace(e, &merged);
                }
                items.push(item);
            }
        }
    }
    select.projection = items;
    for e in select
        .selection
        .iter_mut()
        .chain(&mut select.having)
        .chain(&mut select.qualify)
    {
        replace(e, &merged);
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.iter_mut().for_each(|e| replace(e, &merged));
    }
    // ORDER BY k names the select's column k where it has one (the COALESCE, or the user's).
    let aliased = |k: &Ident| {
        (select.projection.iter())
            .any(|i| matches!(i, SelectItem::ExprWithAlias { alias, .. } if same(alias, k)))
    };
    let unaliased: Vec<(Ident, Expr)> = merged.iter().filter(|(k, _)| !aliased(k)).cloned().collect();
    if let Some(OrderByKind::Expressions(order)) = order_by.map(|o| &mut o.kind) {
        order.iter_mut().for_each(|o| replace(&mut o.expr, &unaliased));
    }
    Ok(())
}

/// How a column of `table` is qualified: its alias, or its name (a quoted name, such as a
/// file's, in double quotes); `None` for a table of neither.
fn qualifier(table: &TableFactor) -> Option<String> {
    let requoted = |i: &Ident| match i.quote_style {
        None => i.to_string(),
        Some(_) => Ident::with_quote('"', &i.value).to_string(),
    };
    match table {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            Some(requoted(&a.name))
        }
        TableFactor::Table {
            name: ObjectName(parts),
            alias: None,
            ..
        } => {
            let parts: Option<Vec<String>> = parts.iter().map(|p| p.as_ident().map(requoted)).collect();
            parts.map(|p| p.join("."))
        }
        _ => None,
    }
}

/// The key `i` names, with its COALESCE.
fn key<'a>(merged: &'a [(Ident, Expr)], i: &Ident) -> Option<&'a (Ident, Expr)> {
    merged.iter().find(|(k, _)| same(k, i))
}

/// Whether two identifiers name one column as DataFusion reads them (unquoted: any case).
pub(crate) fn same(a: &Ident, b: &Ident) -> bool {
    crate::names::normal(a) == crate::names::normal(b)
}

/// `e` with each unqualified name of `merged` outside its subqueries as its expression (a
/// key's COALESCE; a lateral alias's column, `aliases.rs`).
pub(crate) fn replace(e: &mut Expr, merged: &[(Ident, Expr)]) {
    crate::walk::each_outside_subqueries(e, &mut |e| {
        if let Expr::Identifier(i) = &*e {
            if let Some((_, merged)) = key(merged, i) {
                *e = merged.clone();
            }
        }
    });
}

/// `text` parsed as a select's list of columns.
fn parsed_projection(text: &str) -> Result<Vec<SelectItem>> {
    Ok(Parser::new(&GenericDialect {})
        .try_with_sql(text)?
        .parse_projection()?)
}
