//! A select's columns named as DuckDB names them: an expression by its text (`x * 2`, `sum(y)`,
//! `x::VARCHAR`), a column by its name, and a name given twice made unique with `_1`, `_2`, ...
//! as DuckDB's COPY writes it. DataFusion named an expression by its plan (`sum(t.y)`,
//! `Int64(1)`, `sum(t.y) ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING`) and a cast by
//! its column, and refused a name twice in one select, so `SELECT x, x::VARCHAR` and `SELECT
//! CAST(x AS INT), CAST(x AS BIGINT)` failed ("Projections require unique expression names").

use std::collections::HashSet;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    Distinct, Expr, Ident, OrderByKind, Query, Select, SelectItem, SetExpr, Value,
};

/// Names `select`'s columns: run before its expressions are rewritten, so that an expression's
/// name is the text the query has.
pub(crate) fn name_columns(select: &mut Select) {
    let names: Vec<Option<String>> = select.projection.iter_mut().map(named).collect();
    let renamed = unique(names.iter().map(Option::as_deref));
    for (item, name) in select.projection.iter_mut().zip(renamed) {
        if let Some(name) = name {
            alias(item, name);
        }
    }
}

/// In a `SELECT DISTINCT` (its columns named), an ORDER BY expression that is one of its
/// columns' as that column's name: DataFusion looks for the expression's columns among the
/// select's ("For SELECT DISTINCT, ORDER BY expressions x must appear in select list" of
/// `SELECT DISTINCT x % 3 ... ORDER BY x % 3`); DuckDB sorts by the column.
pub(crate) fn distinct_order_by_names(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return;
    };
    if !matches!(select.distinct, Some(Distinct::Distinct)) {
        return;
    }
    let Some(OrderByKind::Expressions(order)) = query.order_by.as_mut().map(|o| &mut o.kind) else {
        return;
    };
    for key in order {
        let named = select.projection.iter().find_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } if *expr == key.expr => Some(alias),
            _ => None,
        });
        if let Some(alias) = named {
            key.expr = Expr::Identifier(alias.clone());
        }
    }
}

/// The name `item` gives its column, an expression that is no column's name aliased by its text
/// first; `None` for a wildcard (its columns are the tables').
fn named(item: &mut SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(normal(i)),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(normal),
        SelectItem::UnnamedExpr(e) => {
            let text = e.to_string();
            alias(item, text.clone());
            Some(text)
        }
        SelectItem::ExprWithAlias { alias, .. } => Some(normal(alias)),
        _ => None,
    }
}

/// `item`'s column named `name` (a quoted alias: kept as it is).
fn alias(item: &mut SelectItem, name: String) {
    let alias = Ident::with_quote('"', name);
    match item {
        SelectItem::UnnamedExpr(e) => {
            let expr = std::mem::replace(e, Expr::value(Value::Null));
            *item = SelectItem::ExprWithAlias { expr, alias };
        }
        SelectItem::ExprWithAlias { alias: a, .. } => *a = alias,
        _ => {}
    }
}

/// An identifier as DataFusion names a column by it: unquoted, lower case.
pub(crate) fn normal(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// For each of `names` (`None`: not known, left as it is), the name it takes instead where an
/// earlier one has it: `name_1`, `name_2`, ..., the first that no other name has.
pub fn unique<'a>(names: impl Iterator<Item = Option<&'a str>> + Clone) -> Vec<Option<String>> {
    let mut taken: HashSet<String> = names.clone().flatten().map(str::to_owned).collect();
    let mut seen = HashSet::new();
    names
        .map(|name| {
            let name = name?;
            if seen.insert(name) {
                return None;
            }
            let mut k = 1;
            while taken.contains(&format!("{name}_{k}")) {
                k += 1;
            }
            let free = format!("{name}_{k}");
            taken.insert(free.clone());
            Some(free)
        })
        .collect()
}

/// `schema` with a column name given twice made unique as [`unique`] does (`None`: every name
/// is once): a result's columns, whatever named them (a `SELECT *` of a join), as a file takes
/// them (DuckDB, polars and segscore refuse a file with one name twice).
pub fn unique_schema(schema: &SchemaRef) -> Option<SchemaRef> {
    let renamed = unique(schema.fields().iter().map(|f| Some(f.name().as_str())));
    if renamed.iter().all(Option::is_none) {
        return None;
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .zip(renamed)
        .map(|(f, name)| match name {
            Some(name) => std::sync::Arc::new(f.as_ref().clone().with_name(name)),
            None => std::sync::Arc::clone(f),
        })
        .collect();
    Some(std::sync::Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn a_name_given_twice_takes_the_first_free_suffix() {
        let names = [Some("g"), Some("g"), None, Some("g_1"), Some("g"), Some("x")];
        assert_eq!(
            unique(names.iter().copied()),
            vec![None, Some("g_2".into()), None, None, Some("g_3".into()), None]
        );
    }
}
