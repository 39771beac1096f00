//! The SQL standard's `PIVOT` and `UNPIVOT` after a table (DuckDB's, Snowflake's), which
//! DataFusion parses and its planner refused ("Unsupported ast node Pivot"), written as the
//! subqueries that compute them, as DuckDB defines them:
//!
//! - `t PIVOT (sum(x) [AS a], ... FOR c IN (v1 [AS l1], ...))` groups by every other column of
//!   `t` (`* EXCLUDE (c, x)`, `GROUP BY ALL`) and gives a column per value: `sum(x) FILTER
//!   (WHERE c IS NOT DISTINCT FROM v1) AS "v1"` (its alias, or its text: `'eu'` is `eu`), named
//!   `v1_a` where there are several aggregates;
//! - `t UNPIVOT [INCLUDE NULLS] (v FOR k IN (a [AS la], b))` gives each row's columns `a`, `b`
//!   as rows: every other column, `k` the column's name (or alias) and `v` its value, rows with
//!   a NULL value left out unless INCLUDE NULLS says otherwise (`UNION ALL` of a select per
//!   column).
//!
//! A PIVOT over values from a subquery or `ANY`, over several columns, or of an expression that
//! is no aggregate call, and an UNPIVOT of several value columns, are refused naming the form.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    Expr, ExprWithAlias, Ident, NullInclusion, PivotValueSource, SelectItem, TableFactor, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::walk;

/// `table` as the subquery that computes it, where it is a PIVOT or an UNPIVOT.
pub(crate) fn rewrite(table: &mut TableFactor) -> Result<()> {
    let (text, alias) = match table {
        TableFactor::Pivot {
            table,
            aggregate_functions,
            value_column,
            value_source,
            default_on_null,
            alias,
        } => {
            let [column] = value_column.as_slice() else {
                return Err(refused("PIVOT over several columns"));
            };
            let PivotValueSource::List(values) = value_source else {
                return Err(refused(
                    "PIVOT over the values of a subquery or ANY (list the values: IN (v1, v2))",
                ));
            };
            let spec = Pivot {
                aggregates: aggregate_functions,
                column,
                values,
                default: default_on_null.as_ref(),
            };
            (spec.query(&table.to_string(), None)?, alias.take())
        }
        TableFactor::Unpivot {
            table,
            value,
            name,
            columns,
            null_inclusion,
            alias,
        } => (
            unpivoted(table, value, name, columns, null_inclusion.as_ref())?,
            alias.take(),
        ),
        _ => return Ok(()),
    };
    let subquery = Parser::new(&GenericDialect {})
        .try_with_sql(&text)?
        .parse_query()
        .map_err(|e| DataFusionError::Internal(format!("{text}: {e}")))?;
    *table = TableFactor::Derived {
        lateral: false,
        subquery,
        alias,
        sample: None,
    };
    Ok(())
}

/// DuckDB's PIVOT statement's query: `PIVOT table ON column [IN (values)] [USING aggregates]
/// [GROUP BY keys]` (the `ORDER BY` and `LIMIT` after it left to the caller), the values given
/// (`'eu', 'us' AS usa`): the aggregates (`count(*)` where there are none) per value, grouped
/// by `keys`, or where none are given by every other column of `table` (a query in
/// parentheses, or a table).
pub fn statement_query(
    table: &str,
    column: &str,
    values: &str,
    aggregates: Option<&str>,
    keys: Option<&str>,
) -> Result<String> {
    let items = |text: &str| -> Result<Vec<ExprWithAlias>> {
        let items = Parser::new(&GenericDialect {})
            .try_with_sql(text)?
            .parse_projection()?;
        (items.into_iter())
            .map(|item| match item {
                SelectItem::UnnamedExpr(expr) => Ok(ExprWithAlias { expr, alias: None }),
                SelectItem::ExprWithAlias { expr, alias } => Ok(ExprWithAlias {
                    expr,
                    alias: Some(alias),
                }),
                other => Err(refused(&format!("PIVOT ... {other}"))),
            })
            .collect()
    };
    let column = walk::parsed(column)?;
    let (values, aggregates) = (items(values)?, items(aggregates.unwrap_or("count(*)"))?);
    let spec = Pivot {
        aggregates: &aggregates,
        column: &column,
        values: &values,
        default: None,
    };
    spec.query(table, keys)
}

/// A PIVOT: its aggregates, the column whose values it spreads, the values, and what a missing
/// one is (`DEFAULT ON NULL`).
struct Pivot<'a> {
    aggregates: &'a [ExprWithAlias],
    column: &'a Expr,
    values: &'a [ExprWithAlias],
    default: Option<&'a Expr>,
}

impl Pivot<'_> {
    /// The query of the PIVOT of `table` ([module docs](self)), grouped by `keys` where given,
    /// else by every column the PIVOT does not read (`* EXCLUDE (...)`, `GROUP BY ALL`).
    fn query(&self, table: &str, keys: Option<&str>) -> Result<String> {
        let column = self.column;
        let mut outputs = Vec::new();
        for v in self.values {
            let label = match (&v.alias, &v.expr) {
                (Some(alias), _) => alias.value.clone(),
                (None, Expr::Value(value)) => match &value.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                (None, e) => e.to_string(),
            };
            for a in self.aggregates {
                let Expr::Function(f) = &a.expr else {
                    return Err(refused(&format!("PIVOT of {}, no aggregate call", a.expr)));
                };
                let mut f = f.clone();
                let matched = format!("({column}) IS NOT DISTINCT FROM ({})", v.expr);
                f.filter = Some(Box::new(match f.filter.take() {
                    Some(w) => walk::parsed(&format!("({w}) AND {matched}"))?,
                    None => walk::parsed(&matched)?,
                }));
                let value = match self.default {
                    Some(d) => format!("coalesce({f}, {d})"),
                    None => f.to_string(),
                };
                let name = match (self.aggregates.len(), &a.alias) {
                    (1, _) => label.clone(),
                    (_, Some(alias)) => format!("{label}_{}", alias.value),
                    (_, None) => format!("{label}_{}", a.expr),
                };
                outputs.push(format!("{value} AS {}", Ident::with_quote('"', name)));
            }
        }
        if let Some(keys) = keys {
            return Ok(format!(
                "SELECT {keys}, {} FROM {table} GROUP BY {keys}",
                outputs.join(", ")
            ));
        }
        // The columns the aggregates read, left out of the groups with the pivoted one.
        let mut read =
            vec![last_name(column).ok_or_else(|| refused("PIVOT FOR an expression (name a column)"))?];
        for a in self.aggregates {
            walk::each_outside_subqueries(&mut a.expr.clone(), &mut |e| read.extend(last_name(e)));
        }
        let read: Vec<String> = (read.iter().enumerate())
            .filter(|(i, n)| !read[..*i].contains(n))
            .map(|(_, n)| n.to_string())
            .collect();
        Ok(format!(
            "SELECT * EXCLUDE ({}), {} FROM {table} GROUP BY ALL",
            read.join(", "),
            outputs.join(", ")
        ))
    }
}

/// The query of an UNPIVOT ([module docs](self)).
fn unpivoted(
    table: &TableFactor,
    value: &Expr,
    name: &Ident,
    columns: &[ExprWithAlias],
    nulls: Option<&NullInclusion>,
) -> Result<String> {
    let Expr::Identifier(value) = value else {
        return Err(refused("UNPIVOT into several value columns"));
    };
    let unpivoted: Vec<String> = columns.iter().map(|c| c.expr.to_string()).collect();
    let include = matches!(nulls, Some(NullInclusion::IncludeNulls));
    let selects: Vec<String> = columns
        .iter()
        .map(|c| {
            let label = match (&c.alias, &c.expr) {
                (Some(alias), _) => alias.value.clone(),
                (None, Expr::Identifier(i)) => i.value.clone(),
                (None, e) => e.to_string(),
            };
            let kept = match include {
                true => String::new(),
                false => format!(" WHERE ({}) IS NOT NULL", c.expr),
            };
            format!(
                "SELECT * EXCLUDE ({}), {} AS {name}, {} AS {value} FROM {table}{kept}",
                unpivoted.join(", "),
                Value::SingleQuotedString(label),
                c.expr
            )
        })
        .collect();
    Ok(selects.join(" UNION ALL "))
}

/// The column's name where `e` names one (`x`, `t.x`).
fn last_name(e: &Expr) -> Option<Ident> {
    match e {
        Expr::Identifier(i) => Some(i.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().cloned(),
        _ => None,
    }
}

/// The error refusing `what`.
fn refused(what: &str) -> DataFusionError {
    DataFusionError::Plan(format!("{what} is not taken"))
}
