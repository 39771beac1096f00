//! A `segscore sql` text before it is parsed: its tokens and where each starts, its statements
//! (a script's setup and the query whose result is the output), DuckDB's FROM-first selects
//! without a SELECT (`FROM t WHERE ...`) given their `SELECT *`, and DuckDB's `USING SAMPLE` as
//! the table's `TABLESAMPLE`.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

/// The tokens of `query` (white space and comments among them), each with the byte offset in
/// `query` where it starts; None for a text the tokenizer refuses (an unclosed quote: the
/// parser's error says where when the query is planned).
pub(super) fn tokens(query: &str) -> Option<Vec<(Token, usize)>> {
    let tokens = Tokenizer::new(&GenericDialect {}, query)
        .tokenize_with_location()
        .ok()?;
    // Byte offsets of the lines' starts, for the tokens' (line, column in characters).
    let lines: Vec<usize> = std::iter::once(0)
        .chain(query.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> usize {
        let start = lines
            .get((line as usize).saturating_sub(1))
            .copied()
            .unwrap_or(query.len());
        query[start..]
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map_or(query.len(), |(i, _)| start + i)
    };
    Some(
        tokens
            .into_iter()
            .map(|t| {
                let at = offset(t.span.start.line, t.span.start.column);
                (t.token, at)
            })
            .collect(),
    )
}

/// `s` as a SQL string literal (`'it''s'`).
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `s` as a double-quoted SQL name (`"a ""b"""`), taken as written, case and all.
pub(super) fn quoted_name(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Whether `t` is the keyword `k`.
pub(super) fn keyword(t: &Token, k: Keyword) -> bool {
    matches!(t, Token::Word(w) if w.keyword == k)
}

/// A query text of several statements (`CREATE VIEW v AS ...; SELECT ... FROM v`, as SQL
/// scripts for DuckDB have them): the statements before the last, which may only define what
/// the last reads (CREATE VIEW, CREATE TABLE ... AS, SET), and the last, whose result is the
/// output, each as written. A text of one statement, or one that does not parse (its error
/// comes when it is planned), is the query alone.
pub(super) fn statements(query: &str) -> Result<(Vec<String>, String)> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    let alone = || Ok((Vec::new(), query.to_string()));
    let Some(tokens) = tokens(query) else {
        return alone();
    };
    let mut texts: Vec<String> = Vec::new();
    let mut start = 0;
    for (_, end) in tokens.iter().filter(|(t, _)| *t == Token::SemiColon) {
        texts.push(query[start..*end].to_string());
        start = end + 1;
    }
    texts.push(query[start..].to_string());
    // A statement that does not parse: the parser's error, placed in the whole text, comes when
    // it is planned. Comments and blanks between or after the statements are no statements.
    let mut parsed = Vec::with_capacity(texts.len());
    for t in texts {
        // DuckDB's `SUMMARIZE t` (`DESCRIBE t`) parses as the query of the rows it is about.
        let rows = super::sql_summarize::summarized(&t).map(|(_, rows)| rows);
        match DFParser::parse_sql(rows.as_deref().unwrap_or(&t)) {
            Ok(s) if s.is_empty() => {}
            Ok(s) => parsed.push((t, s)),
            Err(_) => return alone(),
        }
    }
    // `SELECT ... INTO t` (PostgreSQL's CREATE TABLE ... AS) makes a table and gives no rows: as
    // the last statement it printed an empty result.
    if let Some(table) = parsed.last().and_then(|(_, s)| selected_into(s)) {
        return Err(Error::Usage(format!(
            "query: the last statement's SELECT ... INTO {table} makes a table and gives no result: leave INTO out to print or write its rows"
        )));
    }
    let count = parsed.len();
    if count < 2 {
        return alone();
    }
    for (i, (text, statement)) in parsed.iter().take(count - 1).enumerate() {
        let defines = selected_into(statement).is_some()
            || matches!(statement.front(), Some(Statement::Statement(s))
            if matches!(s.as_ref(), Sql::CreateView(_) | Sql::CreateTable(_) | Sql::Set(_)));
        if !defines {
            let text: String = text.trim().chars().take(40).collect();
            return Err(Error::Usage(format!(
                "query: statement {} of {count} (`{text}`...) is not the last: only the last statement's result is printed or written; the ones before it may CREATE VIEW, CREATE TABLE ... AS (SELECT ... INTO) or SET",
                i + 1
            )));
        }
    }
    let mut texts: Vec<String> = parsed.into_iter().map(|(t, _)| t).collect();
    let last = texts.pop().unwrap_or_default();
    Ok((texts, last))
}

/// The table a `SELECT ... INTO t` statement makes, where `statement` is one.
fn selected_into(
    statement: &std::collections::VecDeque<datafusion::sql::parser::Statement>,
) -> Option<String> {
    use datafusion::sql::parser::Statement;
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement as Sql};
    let Some(Statement::Statement(s)) = statement.front() else {
        return None;
    };
    let Sql::Query(q) = s.as_ref() else { return None };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    select.into.as_ref().map(|into| into.name.to_string())
}

/// `query` with DuckDB's FROM-first selects that have no SELECT (`FROM t`, `FROM t WHERE x > 1`,
/// `(FROM t QUALIFY ...)`) written as `SELECT * FROM ...`: DataFusion's parser takes `FROM t`
/// and `FROM t SELECT a`, but not a WHERE, GROUP BY or QUALIFY after a FROM-first table. A FROM
/// starts a select where a query starts: at the text's or a statement's start, after `(`, after
/// AS (a view's or a table's query), after a WITH's CTEs (`AS (...)`), after UNION, EXCEPT or INTERSECT (with ALL or
/// DISTINCT), EXPLAIN (ANALYZE, VERBOSE), SUMMARIZE or DESCRIBE. It has a SELECT of its own when one
/// follows at its depth before its query ends (`)`, `;`, a set operation).
pub(super) fn select_star_first(query: &str) -> String {
    let Some(tokens) = tokens(query) else {
        return query.to_string();
    };
    let solid: Vec<&(Token, usize)> = tokens
        .iter()
        .filter(|(t, _)| !matches!(t, Token::Whitespace(_)))
        .collect();
    let set_operation = |t: &Token| {
        keyword(t, Keyword::UNION) || keyword(t, Keyword::EXCEPT) || keyword(t, Keyword::INTERSECT)
    };
    let mut starts = Vec::new();
    for (i, (t, at)) in solid.iter().map(|&&(ref t, at)| (t, at)).enumerate() {
        if !keyword(t, Keyword::FROM) {
            continue;
        }
        let before = |back: usize| i.checked_sub(back).map(|j| &solid[j].0);
        let query_starts = match before(1) {
            None | Some(Token::LParen | Token::SemiColon) => true,
            Some(t @ Token::Word(w)) => {
                set_operation(t)
                    || matches!(
                        w.keyword,
                        Keyword::AS | Keyword::EXPLAIN | Keyword::ANALYZE | Keyword::VERBOSE
                    )
                    || w.value.eq_ignore_ascii_case("summarize")
                    || w.value.eq_ignore_ascii_case("describe")
                    // `UNION ALL FROM t`, but not `a IS DISTINCT FROM b`.
                    || (matches!(w.keyword, Keyword::ALL | Keyword::DISTINCT)
                        && before(2).is_some_and(set_operation))
            }
            // The query after a WITH's CTEs: `WITH x AS (...) FROM x`.
            Some(Token::RParen) => {
                let mut depth = 0usize;
                let open = (0..i).rev().find(|&j| {
                    match solid[j].0 {
                        Token::RParen => depth += 1,
                        Token::LParen => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                });
                open.and_then(|j| j.checked_sub(1)).is_some_and(|j| {
                    keyword(&solid[j].0, Keyword::AS) || keyword(&solid[j].0, Keyword::MATERIALIZED)
                })
            }
            Some(_) => false,
        };
        if !query_starts {
            continue;
        }
        let mut depth = 0usize;
        let mut selects = false;
        for (t, _) in &solid[i + 1..] {
            match t {
                Token::LParen => depth += 1,
                Token::RParen if depth == 0 => break,
                Token::RParen => depth -= 1,
                Token::SemiColon if depth == 0 => break,
                t if depth == 0 && set_operation(t) => break,
                t if depth == 0 && keyword(t, Keyword::SELECT) => {
                    selects = true;
                    break;
                }
                _ => {}
            }
        }
        if !selects {
            starts.push(at);
        }
    }
    let mut text = String::with_capacity(query.len() + 9 * starts.len());
    let mut from = 0;
    for at in starts {
        text.push_str(&query[from..at]);
        text.push_str("SELECT * ");
        from = at;
    }
    text.push_str(&query[from..]);
    text
}

/// DuckDB's `USING SAMPLE` clause of a select that reads one table, as that table's
/// `TABLESAMPLE` (DuckDB samples right after the FROM, before WHERE, so the two are one):
/// `SELECT * FROM t WHERE x USING SAMPLE 10%` is `SELECT * FROM t TABLESAMPLE 10 PERCENT WHERE
/// x`. `n%` and `n PERCENT` are a percentage, `n ROWS` and a bare `n` rows, with or without a
/// method (`reservoir(50 ROWS)`, `10% (bernoulli)`); a seed is passed on (and refused where the
/// sample is taken). Over a join it is refused: DuckDB samples the joined rows.
pub(super) fn using_sample(query: &str) -> Result<String> {
    let Some(tokens) = tokens(query) else {
        return Ok(query.to_string());
    };
    let solid: Vec<&(Token, usize)> = tokens
        .iter()
        .filter(|(t, _)| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |i: usize, w: &str| matches!(solid.get(i), Some((Token::Word(x), _)) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    // Each token's depth in parentheses.
    let mut depths = Vec::with_capacity(solid.len());
    let mut depth = 0usize;
    for (t, _) in &solid {
        if *t == Token::RParen {
            depth = depth.saturating_sub(1);
        }
        depths.push(depth);
        if *t == Token::LParen {
            depth += 1;
        }
    }
    let refused = |why: String| Error::Usage(format!("query: USING SAMPLE: {why}"));
    // (offset, text to insert, end of the text removed there).
    let mut edits: Vec<(usize, String, usize)> = Vec::new();
    for i in (0..solid.len()).filter(|&i| word(i, "using") && word(i + 1, "sample")) {
        let d = depths[i];
        let ends = |j: usize| {
            solid[j].0 == Token::SemiColon
                || depths[j] < d
                || (depths[j] == d
                    && ["order", "limit", "offset", "union", "except", "intersect"]
                        .iter()
                        .any(|w| word(j, w)))
        };
        let end = (i + 2..solid.len()).find(|&j| ends(j)).unwrap_or(solid.len());
        let spec: Vec<String> = solid[i + 2..end].iter().map(|(t, _)| t.to_string()).collect();
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let lower: Vec<String> = spec.iter().map(|t| t.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        // The size and its unit, past a method around them (`reservoir(50 ROWS)`); a method or
        // seed after them (`10% (bernoulli, 42)`) keeps only the seed.
        let close = lower.iter().position(|t| *t == ")");
        let (inner, rest): (&[&str], &[&str]) = match (lower.as_slice(), close) {
            ([method, "(", ..], Some(c)) if method.parse::<f64>().is_err() => (&lower[2..c], &lower[c + 1..]),
            (all, _) => match all.iter().position(|t| *t == "(" || *t == "repeatable") {
                Some(p) => (&all[..p], &all[p..]),
                None => (all, &[]),
            },
        };
        let number = |n: &str| n.parse::<f64>().is_ok();
        let size = match inner {
            [n, "%" | "percent"] if number(n) => format!("{n} PERCENT"),
            [n, "rows"] | [n] if number(n) => format!("{n} ROWS"),
            _ => {
                return Err(refused(format!(
                    "`{}`: give n%, n PERCENT or n ROWS",
                    spec.join(" ")
                )))
            }
        };
        let seed = match rest {
            [] => String::new(),
            ["repeatable", "(", seed, ")"] | ["(", _, ",", seed, ")"] => format!(" REPEATABLE ({seed})"),
            ["(", _, ")"] => String::new(),
            _ => {
                return Err(refused(format!(
                    "`{}`: give n%, n PERCENT or n ROWS",
                    spec.join(" ")
                )))
            }
        };
        // The select's FROM, and where its one table ends.
        let Some(from) = (0..i)
            .rev()
            .find(|&j| depths[j] == d && keyword(&solid[j].0, Keyword::FROM))
        else {
            return Err(refused("the select reads no table".into()));
        };
        let clauses = ["where", "group", "having", "window", "qualify", "using"];
        let mut table_end = i;
        for j in from + 1..i {
            if depths[j] != d {
                continue;
            }
            let joined = solid[j].0 == Token::Comma
                || [
                    "join", "natural", "cross", "inner", "left", "right", "full", "on", "pivot", "unpivot",
                ]
                .iter()
                .any(|w| word(j, w));
            if joined {
                return Err(refused(
                    "over a join DuckDB samples the joined rows; write TABLESAMPLE after the table to sample"
                        .into(),
                ));
            }
            if clauses.iter().any(|w| word(j, w)) {
                table_end = j;
                break;
            }
        }
        let removed_end = solid.get(end).map_or(query.len(), |(_, at)| *at);
        edits.push((solid[i].1, String::new(), removed_end));
        edits.push((
            solid[table_end].1,
            format!("TABLESAMPLE {size}{seed} "),
            solid[table_end].1,
        ));
    }
    // From the end, so that the offsets before each edit hold.
    edits.sort_by_key(|&(at, _, _)| std::cmp::Reverse(at));
    let mut text = query.to_string();
    for (at, insert, removed_end) in edits {
        text.replace_range(at..removed_end, &insert);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_first_selects_without_select_get_select_star() {
        for (query, want) in [
            ("FROM t", "SELECT * FROM t"),
            ("from 't.parquet' where g > 1 order by g", "SELECT * from 't.parquet' where g > 1 order by g"),
            ("-- rows\nFROM t WHERE x", "-- rows\nSELECT * FROM t WHERE x"),
            (
                "COPY (FROM t QUALIFY row_number() OVER (PARTITION BY g) = 1) TO 'x.csv'",
                "COPY (SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY g) = 1) TO 'x.csv'",
            ),
            (
                "CREATE VIEW v AS FROM t WHERE a IS DISTINCT FROM b; FROM v",
                "CREATE VIEW v AS SELECT * FROM t WHERE a IS DISTINCT FROM b; SELECT * FROM v",
            ),
            (
                "WITH x AS (FROM t WHERE k IN (SELECT k FROM u)) FROM x UNION ALL FROM y",
                "WITH x AS (SELECT * FROM t WHERE k IN (SELECT k FROM u)) SELECT * FROM x UNION ALL SELECT * FROM y",
            ),
            ("SUMMARIZE FROM t WHERE g = 1", "SUMMARIZE SELECT * FROM t WHERE g = 1"),
            ("EXPLAIN FROM 'é.parquet' WHERE a = 'ü'", "EXPLAIN SELECT * FROM 'é.parquet' WHERE a = 'ü'"),
        ] {
            assert_eq!(select_star_first(query), want, "{query}");
        }
        // A FROM-first select with its SELECT, a FROM inside a select, other statements'
        // FROMs, and text the tokenizer refuses are as written.
        for query in [
            "FROM t SELECT a, count(*) GROUP BY a",
            "(FROM t JOIN u USING (k) SELECT k)",
            "SELECT extract(year FROM d), substring(s FROM 2) FROM t",
            "SELECT count(*) FROM t, (SELECT CAST(a AS INT) FROM u) FROM v",
            "DELETE FROM t",
            "SELECT * FROM t WHERE a IS NOT DISTINCT FROM b",
            "FROM 'unclosed WHERE",
        ] {
            assert_eq!(select_star_first(query), query);
        }
    }

    #[test]
    fn tokens_start_where_their_text_does() {
        let q = "SELECT 'é'\n  FROM \"t\"; -- x";
        let starts: Vec<(String, usize)> = tokens(q)
            .unwrap()
            .into_iter()
            .filter(|(t, _)| !matches!(t, Token::Whitespace(_)))
            .map(|(t, at)| (t.to_string(), at))
            .collect();
        let want = [("SELECT", 0), ("'é'", 7), ("FROM", 14), ("\"t\"", 19), (";", 22)];
        assert_eq!(starts, want.map(|(t, at)| (t.to_string(), at)));
    }

    #[test]
    fn using_sample_is_the_tables_tablesample() {
        for (query, want) in [
            (
                "SELECT * FROM t USING SAMPLE 10%",
                "SELECT * FROM t TABLESAMPLE 10 PERCENT ",
            ),
            (
                "SELECT a FROM 'x.parquet' AS x WHERE a > 1 USING SAMPLE 5 ROWS ORDER BY a",
                "SELECT a FROM 'x.parquet' AS x TABLESAMPLE 5 ROWS WHERE a > 1 ORDER BY a",
            ),
            (
                "FROM t USING SAMPLE reservoir(50 ROWS) REPEATABLE (100)",
                "FROM t TABLESAMPLE 50 ROWS REPEATABLE (100) ",
            ),
            (
                "SELECT * FROM (SELECT * FROM t USING SAMPLE 10 PERCENT (bernoulli)) s",
                "SELECT * FROM (SELECT * FROM t TABLESAMPLE 10 PERCENT ) s",
            ),
            (
                "SELECT * FROM t JOIN u USING (k)",
                "SELECT * FROM t JOIN u USING (k)",
            ),
        ] {
            assert_eq!(using_sample(query).unwrap(), want, "{query}");
        }
        let refused = |q: &str| using_sample(q).unwrap_err().to_string();
        assert!(refused("SELECT * FROM t, u USING SAMPLE 1%")
            .contains("over a join DuckDB samples the joined rows"));
        assert!(refused("SELECT * FROM t USING SAMPLE lots").contains("`lots`: give n%, n PERCENT or n ROWS"));
    }
}
