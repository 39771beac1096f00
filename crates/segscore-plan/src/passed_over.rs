//! Clauses DataFusion's parser takes and its planner passes over without a word, each of which
//! changes what a query returns: done as asked where DataFusion has the means (`TABLESAMPLE`,
//! ClickHouse's `PREWHERE`, MySQL's `GROUP BY ... WITH ROLLUP` and `WITH CUBE`), refused naming
//! the clause where it has none (`CONNECT BY`, `WITH TOTALS`, `FOR JSON`, `SETTINGS`, `FORMAT`,
//! a table's `PARTITION (...)` or version). Before, a query with one of them ran as if the
//! clause were not there: `FROM t TABLESAMPLE 10 PERCENT` read every row. Hints that change no
//! result (`FOR UPDATE`, index hints) are left to pass. The SQL standard's `FETCH FIRST n ROWS
//! ONLY`, which DataFusion refused, is `LIMIT n`.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, GroupByWithModifier, Ident, LimitClause, Query, Select, TableFactor,
    TableSampleKind, TableSampleMethod, TableSampleUnit, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `(a) AND (b)`.
pub(crate) fn and(a: Expr, b: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(Expr::Nested(Box::new(a))),
        op: BinaryOperator::And,
        right: Box::new(Expr::Nested(Box::new(b))),
    }
}

/// A clause DataFusion has no means for, refused.
fn refused(clause: impl std::fmt::Display, why: &str) -> DataFusionError {
    DataFusionError::Plan(format!("{clause}: {why}"))
}

/// A query's output clauses: the SQL standard's `FETCH FIRST n ROWS ONLY` is `LIMIT n` (DataFusion
/// said "not supported"); `WITH TIES`, `PERCENT`, ClickHouse's `LIMIT n BY x` (DataFusion read
/// `x` as a column of nothing) and `SETTINGS` and `FORMAT`, SQL Server's `FOR JSON` / `FOR
/// XML` are refused.
pub(crate) fn query(q: &mut Query) -> Result<()> {
    if let Some(fetch) = q.fetch.take() {
        if fetch.with_ties {
            return Err(refused(
                &fetch,
                "not taken (DataFusion's limits keep no ties: QUALIFY rank() OVER (ORDER BY ...) <= n does)",
            ));
        }
        if fetch.percent {
            return Err(refused(&fetch, "not taken (DataFusion's limits count rows)"));
        }
        // `FETCH FIRST ROW ONLY`: one row.
        let rows = (fetch.quantity.clone()).unwrap_or(Expr::value(Value::Number("1".into(), false)));
        match &mut q.limit_clause {
            None => {
                q.limit_clause = Some(LimitClause::LimitOffset {
                    limit: Some(rows),
                    offset: None,
                    limit_by: vec![],
                })
            }
            Some(LimitClause::LimitOffset {
                limit: limit @ None, ..
            }) => *limit = Some(rows),
            Some(_) => return Err(refused(&fetch, "beside a LIMIT: give one of them")),
        }
    }
    if let Some(LimitClause::LimitOffset { limit_by, .. }) = &q.limit_clause {
        if !limit_by.is_empty() {
            let by: Vec<String> = limit_by.iter().map(ToString::to_string).collect();
            return Err(refused(
                format!("LIMIT ... BY {}", by.join(", ")),
                "not taken (QUALIFY row_number() OVER (PARTITION BY ... ORDER BY ...) <= n keeps n rows of each)",
            ));
        }
    }
    if let Some(settings) = &q.settings {
        let named: Vec<String> = settings.iter().map(ToString::to_string).collect();
        return Err(refused(
            format!("SETTINGS {}", named.join(", ")),
            "not taken (DataFusion's options are SET datafusion.<option> = value, in a script)",
        ));
    }
    if let Some(format) = &q.format_clause {
        return Err(refused(
            format,
            "not taken: segscore sql writes its result as --format says (table, csv, json, parquet, markdown)",
        ));
    }
    if let Some(for_clause) = &q.for_clause {
        return Err(refused(
            for_clause,
            "not taken: segscore sql writes its result as --format says (json: an object per row)",
        ));
    }
    Ok(())
}

/// A select's clauses: `PREWHERE c` is `WHERE c` (AND the select's WHERE); `GROUP BY a, b WITH
/// ROLLUP` is `GROUP BY ROLLUP (a, b)` and `WITH CUBE` `CUBE (a, b)`; `CONNECT BY`, `WITH
/// TOTALS` and another modifier are refused.
pub(crate) fn select(s: &mut Select) -> Result<()> {
    if let Some(prewhere) = s.prewhere.take() {
        s.selection = Some(match s.selection.take() {
            Some(w) => and(prewhere, w),
            None => prewhere,
        });
    }
    if let Some(first) = s.connect_by.first() {
        return Err(refused(
            first,
            "hierarchical queries are not taken (write a recursive CTE)",
        ));
    }
    if let Some(mode) = &s.value_table_mode {
        return Err(refused(mode, "not taken"));
    }
    match &mut s.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if !modifiers.is_empty() => {
            let sets = || exprs.iter().map(|e| vec![e.clone()]).collect();
            let grouped = match modifiers.as_slice() {
                [GroupByWithModifier::Rollup] => Expr::Rollup(sets()),
                [GroupByWithModifier::Cube] => Expr::Cube(sets()),
                _ => {
                    let named: Vec<String> = modifiers.iter().map(ToString::to_string).collect();
                    return Err(refused(
                        named.join(" "),
                        "not taken (GROUP BY ROLLUP (...), CUBE (...) and GROUPING SETS (...) are)",
                    ));
                }
            };
            s.group_by = GroupByExpr::Expressions(vec![grouped], Vec::new());
        }
        GroupByExpr::All(modifiers) if !modifiers.is_empty() => {
            let named: Vec<String> = modifiers.iter().map(ToString::to_string).collect();
            return Err(refused(format!("GROUP BY ALL {}", named.join(" ")), "not taken"));
        }
        _ => {}
    }
    Ok(())
}

/// A table's clauses: `TABLESAMPLE` done ([`sampled`]); MySQL's `PARTITION (p0)`, a version
/// (`FOR SYSTEM_TIME AS OF`, `AT (...)`) and a JSON path refused.
pub(crate) fn table(table: &mut TableFactor) -> Result<()> {
    if let TableFactor::Table {
        name,
        partitions,
        version,
        json_path,
        ..
    } = table
    {
        if !partitions.is_empty() {
            let named: Vec<String> = partitions.iter().map(ToString::to_string).collect();
            return Err(refused(
                format!("{name} PARTITION ({})", named.join(", ")),
                "not taken (filter on the partition's column: WHERE ...)",
            ));
        }
        if let Some(version) = version {
            return Err(refused(format!("{name} {version}"), "not taken"));
        }
        if let Some(path) = json_path {
            return Err(refused(format!("{name}{path}"), "not taken"));
        }
    }
    sampled(table)
}

/// A table's `TABLESAMPLE` as a query of the table that samples its rows: `n PERCENT` (with
/// BERNOULLI, SYSTEM or no method; `BERNOULLI (n)` is n percent, as the SQL standard has it)
/// keeps each row with probability n/100 (`WHERE random() < n/100`: row by row, where DuckDB's
/// and PostgreSQL's SYSTEM take blocks of rows), and `n ROWS` takes n rows at random
/// (`ORDER BY random() LIMIT n`), of a table or a subquery; the sample takes the table's alias,
/// or its name. A seed (`REPEATABLE`: DataFusion's `random()` takes none), a bucket, an offset,
/// or a size that is not a number (or, with no method, has no unit: DuckDB reads rows there,
/// the SQL standard a percentage) is refused.
fn sampled(table: &mut TableFactor) -> Result<()> {
    let (sample, alias, name) = match table {
        TableFactor::Table {
            name, alias, sample, ..
        } => (sample, alias, Some(name.clone())),
        TableFactor::Derived { alias, sample, .. } => (sample, alias, None),
        _ => return Ok(()),
    };
    let Some(kind) = sample.take() else {
        return Ok(());
    };
    // The sampled table's name: the table's alias, or its name's last part.
    let named = match (alias.take(), name.as_ref().and_then(|n| n.0.last()?.as_ident())) {
        (Some(mut a), _) => {
            a.explicit = true;
            format!(" {a}")
        }
        (None, Some(last)) if last.quote_style.is_some() => {
            format!(" AS {}", Ident::with_quote('"', last.value.clone()))
        }
        (None, Some(last)) => format!(" AS {last}"),
        (None, None) => String::new(),
    };
    // The table as written, its sample and alias taken out.
    let read = table.to_string();
    let (TableSampleKind::BeforeTableAlias(s) | TableSampleKind::AfterTableAlias(s)) = &kind;
    let refused = |why: &str| DataFusionError::Plan(format!("{read} {s}: {why}"));
    if s.seed.is_some() {
        return Err(refused("a seed is not taken (DataFusion's random() takes none)"));
    }
    if s.bucket.is_some() || s.offset.is_some() {
        return Err(refused("only TABLESAMPLE n PERCENT or n ROWS is taken"));
    }
    let Some(quantity) = &s.quantity else {
        return Err(refused("give the sample's size: n PERCENT or n ROWS"));
    };
    let size = match &quantity.value {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<f64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let unit = match (quantity.unit, &s.name) {
        (Some(unit), _) => unit,
        (None, Some(TableSampleMethod::Bernoulli | TableSampleMethod::System)) => TableSampleUnit::Percent,
        (None, _) => return Err(refused("say PERCENT or ROWS")),
    };
    let filter = match (unit, size) {
        (TableSampleUnit::Percent, Some(p)) if (0.0..=100.0).contains(&p) => {
            format!("WHERE random() < {}", p / 100.0)
        }
        (TableSampleUnit::Rows, Some(n)) if n >= 0.0 && n.fract() == 0.0 => {
            format!("ORDER BY random() LIMIT {n}")
        }
        _ => {
            return Err(refused(
                "the size is a percentage from 0 to 100, or a whole number of rows",
            ))
        }
    };
    let text = format!("(SELECT * FROM {read} {filter}){named}");
    *table = Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_table_factor())
        .map_err(|e| DataFusionError::Internal(format!("{text}: {e}")))?;
    Ok(())
}
