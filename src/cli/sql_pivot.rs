//! DuckDB's PIVOT statement in `segscore sql`: `PIVOT t ON c [IN (v1, v2 AS name, ...)] [USING
//! sum(x) [AS s], ...] [GROUP BY k, ...] [ORDER BY ...] [LIMIT n]`, a column per value of `c`
//! (each of `c`'s distinct values but NULL, in their texts' order, where no IN lists them) for each aggregate
//! (`count(*)` where USING gives none), grouped by the keys, or by every other column. The
//! query it is, `segscore_plan::pivot::statement_query`'s, is the one the table's PIVOT clause
//! runs.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::sql_text::{keyword, literal, quoted_name, tokens};
use crate::error::{Error, Result};

/// The most values a PIVOT without an IN list spreads into columns.
const MOST_VALUES: usize = 1000;

/// A PIVOT statement's parts past its table, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct PivotStatement {
    /// What the values come from (`ON c`).
    on: String,
    /// The values (`IN (...)`'s list), where given.
    values: Option<String>,
    /// The aggregates (`USING ...`), where given.
    using: Option<String>,
    /// The groups (`GROUP BY ...`), where given.
    group_by: Option<String>,
    /// `ORDER BY ...` and `LIMIT ...` after them.
    tail: String,
}

/// The parts of the PIVOT statement whose text past `PIVOT` is `rest`: its table, and what
/// follows; `None` where it has no `ON`.
pub(super) fn pivot_statement(rest: &str) -> Option<(String, PivotStatement)> {
    let tokens = tokens(rest)?;
    // Each solid token with its depth in parentheses.
    let mut depth = 0usize;
    let mut solid = Vec::new();
    for (t, at) in &tokens {
        match t {
            Token::Whitespace(_) => continue,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        solid.push((t, *at, depth));
        if *t == Token::LParen {
            depth += 1;
        }
    }
    let top = |i: usize, k: Keyword| solid[i].2 == 0 && keyword(solid[i].0, k);
    let on = (0..solid.len()).find(|&i| top(i, Keyword::ON))?;
    let table = rest[..solid[on].1].trim().to_string();
    // Where each clause after ON starts (its keyword's index among the solid tokens).
    let clause = |k: Keyword| (on + 1..solid.len()).find(|&i| top(i, k));
    let (using, group, order, limit) = (
        clause(Keyword::USING),
        clause(Keyword::GROUP),
        clause(Keyword::ORDER),
        clause(Keyword::LIMIT),
    );
    // The clause after the keyword at `from`, as its index, and where its text starts.
    let next = |from: usize| {
        [using, group, order, limit]
            .into_iter()
            .flatten()
            .filter(|&i| i > from)
            .min()
    };
    let end_of = |from: usize| next(from).map_or(rest.len(), |i| solid[i].1);
    let text_after = |keyword_at: usize, skip: usize| {
        let start = solid.get(keyword_at + skip).map_or(rest.len(), |s| s.1);
        rest[start.min(end_of(keyword_at))..end_of(keyword_at)]
            .trim()
            .to_string()
    };
    // `ON c IN (...)`: the list between the parentheses after IN.
    let listed = (on + 1..next(on).unwrap_or(solid.len())).find(|&i| top(i, Keyword::IN));
    let (on_text, values) = match listed {
        Some(i) => {
            let open = i + 1;
            if solid.get(open).is_none_or(|s| *s.0 != Token::LParen) {
                return None;
            }
            let close = (open + 1..solid.len()).find(|&j| solid[j].2 == 0 && *solid[j].0 == Token::RParen)?;
            (
                rest[solid[on + 1].1..solid[i].1].trim().to_string(),
                Some(rest[solid[open].1 + 1..solid[close].1].trim().to_string()),
            )
        }
        None => (text_after(on, 1), None),
    };
    let tail_start = [order, limit].into_iter().flatten().min();
    let tail = tail_start.map_or(String::new(), |i| {
        rest[solid[i].1..].trim().trim_end_matches(';').trim().to_string()
    });
    Some((
        table,
        PivotStatement {
            on: on_text,
            values,
            using: using.map(|i| text_after(i, 1)),
            group_by: group.map(|i| text_after(i, 2)),
            tail,
        },
    ))
}

/// The query of the PIVOT of `rows` (the query of its table's rows) that `p` describes; its
/// values, where it lists none, found by a query of their own.
pub(super) async fn pivot_query(ctx: &SessionContext, rows: &str, p: &PivotStatement) -> Result<String> {
    let usage = |e: datafusion::error::DataFusionError| Error::Usage(format!("query: PIVOT: {e}"));
    let table = format!("({rows}) AS pivoted");
    let values = match &p.values {
        Some(v) => v.clone(),
        None => {
            // NULL is no value to spread, and the columns go in their names' order (`10`
            // before `2`), as in DuckDB.
            let distinct = format!(
                "SELECT v FROM (SELECT DISTINCT {on} AS v FROM {table} WHERE {on} IS NOT NULL) AS d \
                 ORDER BY CAST(v AS VARCHAR)",
                on = p.on
            );
            let df = segscore_plan::read_only(ctx, &distinct).await.map_err(usage)?;
            let batches = segscore_plan::collect(df).await.map_err(usage)?;
            let found: usize = batches.iter().map(|b| b.num_rows()).sum();
            if found > MOST_VALUES {
                return Err(Error::Usage(format!(
                    "query: PIVOT ON {}: {found} distinct values, more than {MOST_VALUES} columns; \
                     list the ones to keep: ON {} IN (...)",
                    p.on, p.on
                )));
            }
            let mut listed = Vec::with_capacity(found);
            for b in &batches {
                for i in 0..b.num_rows() {
                    listed.push(value_literal(b.column(0), i)?);
                }
            }
            if listed.is_empty() {
                return Err(Error::Usage(format!(
                    "query: PIVOT ON {}: no row has a value of it (no rows, or NULL in each): \
                     no column to make; list the columns: ON {} IN (...)",
                    p.on, p.on
                )));
            }
            listed.join(", ")
        }
    };
    let query = segscore_plan::pivot::statement_query(
        &table,
        &p.on,
        &values,
        p.using.as_deref(),
        p.group_by.as_deref(),
    )
    .map_err(usage)?;
    Ok(format!("{query} {}", p.tail))
}

/// Row `i` of `values` as a SQL literal named by its text (`'eu' AS "eu"`, `NULL AS "NULL"`).
fn value_literal(values: &ArrayRef, i: usize) -> Result<String> {
    let named = |literal: String, name: &str| format!("{literal} AS {}", quoted_name(name));
    if values.is_null(i) {
        return Ok(named("NULL".into(), "NULL"));
    }
    let text = array_value_to_string(values, i)?;
    let t = values.data_type();
    Ok(match crate::engine::types::value_type(t) {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => named(literal(&text), &text),
        t if t.is_integer() || *t == DataType::Boolean => named(text.clone(), &text),
        t => named(
            format!("arrow_cast({}, {})", literal(&text), literal(&t.to_string())),
            &text,
        ),
    })
}
