//! DuckDB's `SUMMARIZE` and `DESCRIBE` in `segscore sql`: each column of a table or query with
//! its type, min, max, approximate distinct count, mean, standard deviation, quartiles, count
//! and share of nulls, one row per column, from one pass over the rows; or with its type and
//! whether it may be null, as DuckDB describes it (DataFusion's DESCRIBE gave arrow's names,
//! `Int64`, in a `data_type` column).

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::sql_text::{literal, quoted_name};
use crate::error::{Error, Result};

/// What a statement asks of a table's columns: DuckDB's `SUMMARIZE`, `DESCRIBE` or `PIVOT`.
#[derive(Clone, Debug, PartialEq)]
pub enum Columns {
    /// Each column's statistics.
    Summarize,
    /// Each column's name, type and whether it may be null.
    Describe,
    /// A column's values spread into columns (DuckDB's PIVOT statement).
    Pivot(Box<super::sql_pivot::PivotStatement>),
}

/// The table or query a `SUMMARIZE` or `DESCRIBE` statement is about, as a query (`SUMMARIZE t`
/// and `DESCRIBE 'data/*.parquet'` are `SELECT * FROM ...`; `SUMMARIZE SELECT ...` is that
/// query), or None for any other statement.
pub(super) fn summarized(query: &str) -> Option<(Columns, String)> {
    // Past the comments before the statement (`-- what this does`, `/* ... */`).
    let mut text = query.trim_start();
    loop {
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else {
            break;
        }
    }
    let word = text.split(|c: char| !c.is_ascii_alphabetic()).next()?;
    let what = match word.to_ascii_lowercase().as_str() {
        "summarize" => Columns::Summarize,
        "describe" => Columns::Describe,
        "pivot" => {
            let rest = text[word.len()..].trim().trim_end_matches(';').trim_end();
            let (table, pivot) = super::sql_pivot::pivot_statement(rest)?;
            return Some((Columns::Pivot(Box::new(pivot)), format!("SELECT * FROM {table}")));
        }
        _ => return None,
    };
    let rest = text[word.len()..].trim().trim_end_matches(';').trim_end();
    if rest.is_empty() {
        return None;
    }
    let first = rest
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    Some((
        what,
        match first.as_str() {
            "SELECT" | "WITH" | "FROM" | "VALUES" => rest.to_string(),
            _ => format!("SELECT * FROM {rest}"),
        },
    ))
}

/// The query that gives `query`'s columns as `what` asks ([`summary_query`], [`describe_query`],
/// [`super::sql_pivot::pivot_query`]).
pub(super) async fn columns_query(ctx: &SessionContext, query: &str, what: &Columns) -> Result<String> {
    let label = match what {
        Columns::Summarize => "SUMMARIZE",
        Columns::Describe => "DESCRIBE",
        Columns::Pivot(p) => return super::sql_pivot::pivot_query(ctx, query, p).await,
    };
    let df = segscore_plan::read_only(ctx, query)
        .await
        .map_err(|e| Error::Usage(format!("query: {label}: {e}")))?;
    let fields = df.schema().fields().clone();
    if fields.is_empty() {
        return Err(Error::Usage(format!("query: {label}: the table has no columns")));
    }
    Ok(match what {
        Columns::Describe => describe_query(&fields),
        _ => summary_query(&fields, query),
    })
}

/// The query that describes `fields` as DuckDB's DESCRIBE does: one row per column with
/// `column_name`, `column_type` (DuckDB's name for it), `null` (`YES` where it may be null,
/// else `NO`), and `key`, `default` and `extra`, NULL for a file's or a query's columns.
fn describe_query(fields: &datafusion::arrow::datatypes::Fields) -> String {
    let rows: Vec<String> = (fields.iter())
        .map(|f| {
            let null = if f.is_nullable() { "YES" } else { "NO" };
            let kind = crate::functions::sql_type_name(f.data_type());
            format!("({}, {}, '{null}')", literal(f.name()), literal(&kind))
        })
        .collect();
    format!(
        "SELECT column_name, column_type, \"null\", CAST(NULL AS VARCHAR) AS key, \
         CAST(NULL AS VARCHAR) AS \"default\", CAST(NULL AS VARCHAR) AS extra \
         FROM (VALUES {}) AS described(column_name, column_type, \"null\")",
        rows.join(", ")
    )
}

/// What can be computed over a column of a type.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Integers, floats, decimals: every statistic.
    Number,
    /// Text, times, booleans, bytes, lists: min, max (as text) and the distinct count.
    Ordered,
    /// Structs, maps (DataFusion casts neither to text): no min or max.
    Other,
}

fn kind(t: &DataType) -> Kind {
    match t {
        DataType::Dictionary(_, value) => kind(value),
        t if t.is_numeric() && *t != DataType::Float16 => Kind::Number,
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Boolean
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::List(_)
        | DataType::LargeList(_) => Kind::Ordered,
        t if t.is_temporal() => Kind::Ordered,
        _ => Kind::Other,
    }
}

/// The query that summarizes `query`'s result as DuckDB's SUMMARIZE does: one row per column
/// with `column_name`, `column_type` (DuckDB's name for it), `min`, `max` (as text),
/// `approx_unique`, `avg`, `std` (the sample's), `q25`, `q50`, `q75` (approximate), `count`
/// (rows) and `null_percentage`.
/// Every statistic is an aggregate of one SELECT over `query` (one pass), its per-column values
/// gathered into lists that `unnest` turns into rows.
fn summary_query(fields: &datafusion::arrow::datatypes::Fields, query: &str) -> String {
    let mut lists: [Vec<String>; NAMES.len()] = Default::default();
    for f in fields.iter() {
        let column = quoted_name(f.name());
        let k = kind(f.data_type());
        // A dictionary's values, as their type.
        let value = match f.data_type() {
            DataType::Dictionary(_, v) => format!("arrow_cast({column}, '{v}')"),
            _ => column.clone(),
        };
        let number = format!("CAST({value} AS DOUBLE)");
        let or_null = |yes: bool, e: String, t: &str| if yes { e } else { format!("CAST(NULL AS {t})") };
        let ordered = k != Kind::Other;
        let numeric = k == Kind::Number;
        let row = [
            literal(f.name()),
            literal(&crate::functions::sql_type_name(f.data_type())),
            or_null(ordered, format!("CAST(min({value}) AS VARCHAR)"), "VARCHAR"),
            or_null(ordered, format!("CAST(max({value}) AS VARCHAR)"), "VARCHAR"),
            // segscore's `approx_distinct` (floats by their text).
            format!("CAST(approx_distinct({value}) AS BIGINT)"),
            or_null(numeric, format!("avg({number})"), "DOUBLE"),
            or_null(numeric, format!("stddev({number})"), "DOUBLE"),
            or_null(
                numeric,
                format!("approx_percentile_cont({number}, 0.25)"),
                "DOUBLE",
            ),
            or_null(
                numeric,
                format!("approx_percentile_cont({number}, 0.5)"),
                "DOUBLE",
            ),
            or_null(
                numeric,
                format!("approx_percentile_cont({number}, 0.75)"),
                "DOUBLE",
            ),
            format!(
                "CASE WHEN count(*) = 0 THEN CAST(NULL AS DOUBLE) \
                 ELSE round(100.0 * (count(*) - count({column})) / count(*), 2) END"
            ),
        ];
        for (list, e) in lists.iter_mut().zip(row) {
            list.push(e);
        }
    }
    let gathered: Vec<String> = lists
        .iter()
        .enumerate()
        .map(|(i, l)| format!("make_array({}) AS l{i}", l.join(", ")))
        .collect();
    let mut rows: Vec<String> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| format!("unnest(l{i}) AS {name}"))
        .collect();
    // The row count, the same on every row, before the share of nulls (as DuckDB has them).
    rows.insert(NAMES.len() - 1, "n AS count".into());
    format!(
        "SELECT {} FROM (SELECT {}, count(*) AS n FROM ({query}) AS summarized) AS gathered",
        rows.join(", "),
        gathered.join(", ")
    )
}

/// The columns of a summary, bar `count`.
const NAMES: [&str; 11] = [
    "column_name",
    "column_type",
    "min",
    "max",
    "approx_unique",
    "avg",
    "std",
    "q25",
    "q50",
    "q75",
    "null_percentage",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarize_takes_a_table_a_file_or_a_query() {
        let summarized = |q: &str| {
            super::summarized(q).map(|(what, rows)| {
                assert_eq!(what, Columns::Summarize);
                rows
            })
        };
        assert_eq!(summarized("SUMMARIZE t;").as_deref(), Some("SELECT * FROM t"));
        assert_eq!(
            summarized("  summarize 'data/*.parquet'").as_deref(),
            Some("SELECT * FROM 'data/*.parquet'")
        );
        assert_eq!(
            summarized("Summarize\nWITH x AS (SELECT 1) SELECT * FROM x").as_deref(),
            Some("WITH x AS (SELECT 1) SELECT * FROM x")
        );
        assert_eq!(
            summarized("SUMMARIZE (SELECT 1)").as_deref(),
            Some("SELECT * FROM (SELECT 1)")
        );
        assert_eq!(
            summarized("-- columns\n/* of t */ SUMMARIZE t").as_deref(),
            Some("SELECT * FROM t")
        );
        assert_eq!(summarized("-- SUMMARIZE t"), None);
        assert_eq!(summarized("SUMMARIZE"), None);
        assert_eq!(summarized("SELECT summarize FROM t"), None);
        assert_eq!(summarized("summarized"), None);
        assert_eq!(
            super::summarized("describe 'a.csv'"),
            Some((Columns::Describe, "SELECT * FROM 'a.csv'".into()))
        );
        assert_eq!(super::summarized("DESCRIBED t"), None);
    }
}
