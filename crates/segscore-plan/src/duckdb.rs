//! DuckDB's SQL that DataFusion's parser reads otherwise, or whose aggregates DataFusion lacks,
//! written as DataFusion's between parsing and planning: `ORDER BY ALL`; `arg_max`, `arg_min`
//! (`max_by`, `min_by`) and `count_if` as the DataFusion aggregates that compute them;
//! `SIMILAR TO` matching the whole text; `^` a power (`power.rs`); `sum` of a condition; date
//! and time literals without seconds or zero padding; functions DataFusion answers otherwise or lacks (`calls.rs`); `SEMI JOIN`
//! and `ANTI JOIN`. The same pass does or refuses the clauses DataFusion's planner passes over
//! (`passed_over.rs`), names a select's columns (`names.rs`) and writes a RIGHT or FULL JOIN's
//! USING key (`using.rs`), an EXISTS among a select's columns (`exists.rs`) and a PIVOT or
//! UNPIVOT (`pivot.rs`). DuckDB's names for functions DataFusion has under another name are
//! aliases in segscore's function registry.

use std::ops::ControlFlow;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, JoinOperator, OrderByExpr, OrderByKind,
    Query, Select, SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut, VisitorMut, WindowType,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::{calls, exists, names, passed_over, pivot, power, using};

/// DuckDB's aggregates that DataFusion has no function for: the name, its arguments, and the
/// DataFusion expression that computes it (`{0}`, `{1}`: the arguments). DuckDB's `arg_max(a,
/// v)` is `a` at the row of the greatest `v`, rows where either is null left out (null when
/// none is left); `count_if(x)` counts the rows where `x` is true, NULL where `x` is NULL in
/// every row (or there is none): DuckDB's is its `sum` of booleans.
const AGGREGATES: [(&str, usize, &str); 5] = [
    ("arg_max", 2, ARG_MAX),
    ("max_by", 2, ARG_MAX),
    ("arg_min", 2, ARG_MIN),
    ("min_by", 2, ARG_MIN),
    ("count_if", 1, "sum(CAST({0} AS BIGINT))"),
];
const ARG_MAX: &str = "first_value({0} ORDER BY {1} DESC) FILTER (WHERE {0} IS NOT NULL AND {1} IS NOT NULL)";
const ARG_MIN: &str = "first_value({0} ORDER BY {1}) FILTER (WHERE {0} IS NOT NULL AND {1} IS NOT NULL)";

/// How many arguments DuckDB's aggregate `name` takes where segscore computes it (`arg_max`:
/// 2), for the message of a call with another number (DataFusion's says "Invalid function").
pub fn arity(name: &str) -> Option<usize> {
    AGGREGATES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, arity, _)| arity)
}

/// Writes `statement`'s DuckDB SQL as DataFusion's: `ORDER BY ALL`, and each call of a DuckDB
/// aggregate of this module's list (`arg_max`, ...) that `state` has no function of that name
/// for, as the expression that computes it (its FILTER and OVER kept). A select's columns are
/// named first, by their text (`names.rs`): `arg_max(name, score)`, not what computes it.
pub fn rewrite(statement: &mut datafusion::sql::parser::Statement, state: &SessionState) -> Result<()> {
    use datafusion::sql::parser::Statement as DataFusion;
    match statement {
        DataFusion::Statement(s) => rewrite_sql(s, state),
        // `EXPLAIN [ANALYZE] query` plans the query as it would run.
        DataFusion::Explain(e) => rewrite(&mut e.statement, state),
        _ => Ok(()),
    }
}

/// [`rewrite`] of a SQL statement.
fn rewrite_sql(statement: &mut Statement, state: &SessionState) -> Result<()> {
    let known = |name: &str| {
        state.aggregate_functions().contains_key(name)
            || state.scalar_functions().contains_key(name)
            || state.window_functions().contains_key(name)
    };
    let lacking: Vec<(&str, usize, &str)> = AGGREGATES
        .into_iter()
        .filter(|(name, _, _)| !known(name))
        .collect();
    let aggregates: std::collections::HashSet<String> = (state.aggregate_functions().keys().cloned())
        .chain(AGGREGATES.iter().map(|(name, _, _)| name.to_string()))
        .collect();
    let mut duckdb = DuckDb { lacking, aggregates };
    match statement.visit(&mut duckdb) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct DuckDb<'a> {
    /// The aggregates of [`AGGREGATES`] the state lacks.
    lacking: Vec<(&'a str, usize, &'a str)>,
    /// The names of every aggregate function, the state's and [`AGGREGATES`]'.
    aggregates: std::collections::HashSet<String>,
}

impl DuckDb<'_> {
    /// `arg_max(a, v) OVER (PARTITION BY ...)` (`arg_min`, `max_by`, `min_by`; a window of the
    /// whole partition) as the first `a` of the partition's rows in `v`'s order, rows where
    /// either is null last and giving NULL: the aggregate's FILTER and ORDER BY, which compute
    /// it elsewhere, DataFusion takes in no window ("Aggregate ORDER BY is not implemented for
    /// window functions").
    fn whole_window_arg_max(&self, f: &Function) -> Option<String> {
        let Some(WindowType::WindowSpec(spec)) = &f.over else {
            return None;
        };
        let order = match self.lacking.iter().find(|(n, _, _)| calls(f, n))? {
            (_, _, expression) if *expression == ARG_MAX => "DESC",
            (_, _, expression) if *expression == ARG_MIN => "ASC",
            _ => return None,
        };
        let args = crate::walk::plain_args(f)?;
        let [a, v] = args[..] else {
            return None;
        };
        if f.filter.is_some()
            || spec.window_name.is_some()
            || !spec.order_by.is_empty()
            || spec.window_frame.is_some()
        {
            return None;
        }
        let partition = match spec.partition_by.is_empty() {
            true => String::new(),
            false => format!(
                "PARTITION BY {} ",
                spec.partition_by
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Some(format!(
            "first_value(CASE WHEN ({a}) IS NOT NULL AND ({v}) IS NOT NULL THEN ({a}) END) OVER ({partition}\
             ORDER BY (({a}) IS NULL OR ({v}) IS NULL), ({v}) {order} \
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
        ))
    }

    /// The DataFusion expression for `f`'s arguments when `f` calls one of the lacking
    /// aggregates with plain arguments (after DISTINCT too), as many as it takes.
    fn computed(&self, f: &Function) -> Option<String> {
        let &(name, arity, expression) = self.lacking.iter().find(|(n, _, _)| calls(f, n))?;
        let (args, distinct) = crate::walk::args_distinct(f)?;
        if args.len() != arity {
            return None;
        }
        // DISTINCT changes no greatest or least row (`arg_max`); `count_if(DISTINCT x)` counts
        // the distinct values of `x` that are true, 1 at most, as DuckDB's sum does.
        let expression = match distinct && name == "count_if" {
            true => "sum(DISTINCT CAST({0} AS BIGINT))",
            false => expression,
        };
        // `{i}` is argument i, in one pass (an argument's own text may hold `{1}`).
        let mut text = String::new();
        let mut rest = expression;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}')?;
            let i: usize = rest[open + 1..close].parse().ok()?;
            text += &format!("{}({})", &rest[..open], args.get(i)?);
            rest = &rest[close + 1..];
        }
        Some(text + rest)
    }
}

impl VisitorMut for DuckDb<'_> {
    type Break = DataFusionError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<DataFusionError> {
        if let Err(e) = passed_over::query(query) {
            return ControlFlow::Break(e);
        }
        order_by_all(query);
        // Named before the expressions in them are rewritten: a column is named by its text.
        let mut selects = vec![query.body.as_mut()];
        while let Some(body) = selects.pop() {
            match body {
                SetExpr::Select(s) => {
                    if let Err(e) = passed_over::select(s) {
                        return ControlFlow::Break(e);
                    }
                    names::name_columns(s);
                    semi_and_anti_joins(s);
                    exists::in_columns(s, &|name| self.aggregates.contains(name));
                }
                SetExpr::SetOperation { left, right, .. } => selects.extend([left.as_mut(), right.as_mut()]),
                _ => {}
            }
        }
        if let Err(e) = using::merged_keys(query) {
            return ControlFlow::Break(e);
        }
        names::distinct_order_by_names(query);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, table: &mut TableFactor) -> ControlFlow<DataFusionError> {
        match pivot::rewrite(table).and_then(|()| passed_over::table(table)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DataFusionError> {
        power::rewrite(expr);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DataFusionError> {
        power::integer_division(expr);
        if let Expr::Function(f) = expr {
            if let Some(op) = power::operator_call(f) {
                *expr = op;
                return ControlFlow::Continue(());
            }
            match calls::top_n(f) {
                Ok(Some(call)) => {
                    *expr = call;
                    return ControlFlow::Continue(());
                }
                Ok(None) => {}
                Err(e) => return ControlFlow::Break(e),
            }
            match calls::rewritten(f) {
                Ok(Some(call)) => {
                    *expr = call;
                    return ControlFlow::Continue(());
                }
                Ok(None) => {}
                Err(e) => return ControlFlow::Break(e),
            }
            sum_of_booleans(f);
            default_separator(f);
        }
        time_literal(expr);
        calls::duckdb_type(expr);
        calls::open_slice(expr);
        calls::starts_with_operator(expr);
        if let Err(e) = calls::like_backslash(expr) {
            return ControlFlow::Break(e);
        }
        match calls::substring(expr) {
            Ok(Some(call)) => *expr = call,
            Ok(None) => {}
            Err(e) => return ControlFlow::Break(e),
        }
        if let Expr::SimilarTo { .. } = expr {
            return match similar_to(expr) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            };
        }
        let Expr::Function(f) = expr else {
            return ControlFlow::Continue(());
        };
        if let Some(text) = self.whole_window_arg_max(f) {
            return match Parser::new(&GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_expr())
            {
                Ok(e) => {
                    *expr = e;
                    ControlFlow::Continue(())
                }
                Err(e) => ControlFlow::Break(DataFusionError::Internal(format!("{f}: {text}: {e}"))),
            };
        }
        let Some(text) = self.computed(f) else {
            return ControlFlow::Continue(());
        };
        let parsed = Parser::new(&GenericDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr());
        let mut computed = match parsed {
            Ok(Expr::Function(c)) => c,
            Ok(other) => {
                return ControlFlow::Break(DataFusionError::Internal(format!(
                    "{f}: {text} is no function call: {other}"
                )))
            }
            Err(e) => return ControlFlow::Break(DataFusionError::Internal(format!("{f}: {text}: {e}"))),
        };
        computed.filter = match (f.filter.take(), computed.filter.take()) {
            (Some(a), Some(b)) => Some(Box::new(passed_over::and(*a, *b))),
            (a, b) => a.or(b),
        };
        computed.over = f.over.take();
        *expr = Expr::Function(computed);
        ControlFlow::Continue(())
    }
}

/// Whether `f` calls the function `name`: by that one unquoted name, in any case (`COUNT_IF`;
/// a quoted `"count_if"` is a function of the session's own).
pub(crate) fn calls(f: &Function, name: &str) -> bool {
    matches!(f.name.0.as_slice(), [part] if part
        .as_ident()
        .is_some_and(|n| n.quote_style.is_none() && n.value.eq_ignore_ascii_case(name)))
}

/// DuckDB's `SEMI JOIN` and `ANTI JOIN` (the left side's rows with a match, or without one) as
/// DataFusion's `LEFT SEMI JOIN` and `LEFT ANTI JOIN` (it refused them: "Unsupported JOIN
/// operator").
fn semi_and_anti_joins(select: &mut Select) {
    for join in select.from.iter_mut().flat_map(|t| t.joins.iter_mut()) {
        join.join_operator = match &join.join_operator {
            JoinOperator::Semi(c) => JoinOperator::LeftSemi(c.clone()),
            JoinOperator::Anti(c) => JoinOperator::LeftAnti(c.clone()),
            _ => continue,
        };
    }
}

/// DuckDB's `string_agg(x)` (`x` joined by `,`, its default separator), which DataFusion
/// refused (it takes a separator always): the separator given.
fn default_separator(f: &mut Function) {
    if !calls(f, "string_agg") {
        return;
    }
    if let FunctionArguments::List(list) = &mut f.args {
        if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(_))] = list.args.as_slice() {
            list.args
                .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                    Value::SingleQuotedString(",".into()),
                ))));
        }
    }
}

/// DuckDB's `sum` of a condition (`sum(x > 0)`: the rows where it holds, NULL where it is NULL
/// in every row), which DataFusion refuses ("sum(Boolean)"), as the sum of its cast to BIGINT,
/// where the argument is a condition by its form (a comparison, `AND`, `NOT`, `IS NULL`, `IN`,
/// `BETWEEN`, `LIKE`, ...); a column of booleans needs the cast written.
fn sum_of_booleans(f: &mut Function) {
    if !calls(f, "sum") {
        return;
    }
    let FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_mut_slice() else {
        return;
    };
    let mut condition = &*arg;
    while let Expr::Nested(inner) = condition {
        condition = inner;
    }
    use datafusion::sql::sqlparser::ast::{BinaryOperator as B, UnaryOperator};
    let boolean = match condition {
        Expr::BinaryOp { op, .. } => matches!(
            op,
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::And | B::Or | B::Xor
        ),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::Exists { .. } => true,
        Expr::Value(v) => matches!(v.value, Value::Boolean(_)),
        _ => false,
    };
    if boolean {
        let inner = std::mem::replace(arg, Expr::value(Value::Null));
        *arg = Expr::Cast {
            kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
            expr: Box::new(Expr::Nested(Box::new(inner))),
            data_type: datafusion::sql::sqlparser::ast::DataType::BigInt(None),
            array: false,
            format: None,
        };
    }
}

/// A date or timestamp literal as DuckDB and PostgreSQL take it (`TIMESTAMP '2024-03-05 10:00'`,
/// `'2024-3-5'::DATE`, an hour of one digit), written as arrow's parser reads it: zero-padded,
/// with seconds. Arrow refused those ("error parsing time"). An interval of a number, a text.
fn time_literal(expr: &mut Expr) {
    use datafusion::sql::sqlparser::ast::DataType as T;
    // DuckDB's `INTERVAL 30 DAY` as `INTERVAL '30' DAY`: DataFusion takes a number there in an
    // expression, not in a window's frame ("INTERVAL expression cannot be Value(Number)").
    if let Expr::Interval(interval) = expr {
        if let Expr::Value(v) = interval.value.as_mut() {
            if let Value::Number(n, _) = &v.value {
                v.value = Value::SingleQuotedString(n.clone());
            }
        }
        return;
    }
    let (data_type, value) = match expr {
        Expr::TypedString(t) => (&t.data_type, &mut t.value.value),
        Expr::Cast { data_type, expr, .. } => match expr.as_mut() {
            Expr::Value(v) => (&*data_type, &mut v.value),
            _ => return,
        },
        _ => return,
    };
    if !matches!(
        data_type,
        T::Date | T::Timestamp(..) | T::Datetime(_) | T::TimestampNtz(_)
    ) {
        return;
    }
    if let Value::SingleQuotedString(text) = value {
        if let Some(padded) = padded_time(text) {
            *text = padded;
        }
    }
}

/// `text`, a date (`YYYY-M-D`) and a time (`H:MM[:SS[.f]]`, after a space or a `T`) or none,
/// then anything (a zone), zero-padded and with seconds; `None` where it is no such text or
/// needs nothing.
fn padded_time(text: &str) -> Option<String> {
    /// The number of 1 to `most` digits at the start of `s`, and the rest.
    fn digits(s: &str, most: usize) -> Option<(u32, &str)> {
        let n = s.bytes().take(most).take_while(u8::is_ascii_digit).count();
        (n > 0)
            .then(|| (s[..n].parse().ok(), &s[n..]))
            .and_then(|(v, rest)| Some((v?, rest)))
    }
    let (year, rest) = digits(text, 4).filter(|_| text.as_bytes().get(4) == Some(&b'-'))?;
    let (month, rest) = digits(rest.strip_prefix('-')?, 2)?;
    let (day, mut rest) = digits(rest.strip_prefix('-')?, 2)?;
    let mut out = format!("{year:04}-{month:02}-{day:02}");
    if let Some(time) = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('T')) {
        if let Some((hour, after)) = digits(time, 2) {
            let (minute, after) = digits(after.strip_prefix(':')?, 2)?;
            let (second, after) = match after.strip_prefix(':') {
                Some(s) => digits(s, 2)?,
                None => (0, after),
            };
            let separator = &rest[..1];
            out += &format!("{separator}{hour:02}:{minute:02}:{second:02}");
            rest = after;
        }
    }
    let padded = out + rest;
    (padded != text).then_some(padded)
}

/// DuckDB's `ORDER BY ALL [ASC|DESC] [NULLS FIRST|LAST]`, which DataFusion's default dialect
/// parses as a column named `all` ("No field named all"): where the select lists its columns,
/// their positions (`ORDER BY 1, 2, ...`, which sorts by any expression: an aggregate, a
/// `GROUP BY ALL`'s result); after a `*`, DataFusion's own ORDER BY ALL, which sorts by the
/// columns it expands to. A column named `all` is sorted by when quoted (`ORDER BY "all"`), as
/// in DuckDB.
fn order_by_all(query: &mut Query) {
    /// The select whose columns a query's result has: its body's leftmost.
    fn first_select(body: &SetExpr) -> Option<&Select> {
        match body {
            SetExpr::Select(s) => Some(s),
            SetExpr::SetOperation { left, .. } => first_select(left),
            SetExpr::Query(q) => first_select(&q.body),
            _ => None,
        }
    }
    let Some(order) = &mut query.order_by else {
        return;
    };
    let OrderByKind::Expressions(exprs) = &order.kind else {
        return;
    };
    let [OrderByExpr {
        expr: Expr::Identifier(all),
        options,
        with_fill: None,
    }] = exprs.as_slice()
    else {
        return;
    };
    if all.quote_style.is_some() || !all.value.eq_ignore_ascii_case("all") {
        return;
    }
    let options = *options;
    let columns = first_select(&query.body).and_then(|s| {
        let starred = s
            .projection
            .iter()
            .any(|item| matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
        (!starred).then_some(s.projection.len())
    });
    order.kind = match columns {
        Some(n) => OrderByKind::Expressions(
            (1..=n)
                .map(|i| OrderByExpr {
                    expr: Expr::value(Value::Number(i.to_string(), false)),
                    options,
                    with_fill: None,
                })
                .collect(),
        ),
        None => OrderByKind::All(options),
    };
}

/// `x [NOT] SIMILAR TO pattern` as DuckDB (and the SQL standard, and PostgreSQL) read it: the
/// pattern must match the whole text, `x ~ '^(?:pattern)$'`. DataFusion matched any part of it
/// (`'abc' SIMILAR TO 'b'` was true). The pattern is a regular expression, as in DuckDB
/// (PostgreSQL's `%` and `_` are not wildcards here); an ESCAPE is refused. DataFusion's later
/// releases match the whole text with the SQL standard's wildcards (apache/datafusion#23188);
/// this rewrite keeps DuckDB's reading whichever DataFusion plans it.
fn similar_to(expr: &mut Expr) -> Result<()> {
    let Expr::SimilarTo {
        negated,
        expr: text,
        pattern,
        escape_char,
    } = expr
    else {
        return Ok(());
    };
    if let Some(e) = escape_char {
        return Err(DataFusionError::Plan(format!(
            "SIMILAR TO {pattern} ESCAPE {e}: ESCAPE is not taken (the pattern is a regular expression, escaped with \\)"
        )));
    }
    let op = if *negated { "!~" } else { "~" };
    let sql = format!("({text}) {op} ('^(?:' || ({pattern}) || ')$')");
    *expr = Parser::new(&GenericDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| DataFusionError::Internal(format!("{sql}: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::padded_time;

    #[test]
    fn time_literals_are_padded_as_arrow_reads_them() {
        assert_eq!(
            padded_time("2024-03-05 10:00").as_deref(),
            Some("2024-03-05 10:00:00")
        );
        assert_eq!(
            padded_time("2024-3-5T9:05").as_deref(),
            Some("2024-03-05T09:05:00")
        );
        assert_eq!(padded_time("2024-3-5").as_deref(), Some("2024-03-05"));
        assert_eq!(
            padded_time("2024-03-05 9:05:07.25+02").as_deref(),
            Some("2024-03-05 09:05:07.25+02")
        );
        assert_eq!(
            padded_time("2024-03-05 10:00 UTC").as_deref(),
            Some("2024-03-05 10:00:00 UTC")
        );
        // As arrow reads it already, or no date.
        assert_eq!(padded_time("2024-03-05 10:00:00"), None);
        assert_eq!(padded_time("2024-03-05"), None);
        assert_eq!(padded_time("yesterday"), None);
        assert_eq!(padded_time("20240305"), None);
    }
}
