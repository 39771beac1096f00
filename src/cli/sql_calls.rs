//! DuckDB's SQL in `segscore sql`'s queries, as DuckDB users write it: the table functions that
//! read files (`read_parquet`, `read_csv`, `read_json`, ...) with a path or a list of paths and
//! the options segscore takes (hive partitioning, each row's file, a CSV's separator, header,
//! quotes and null text, a JSON layout).

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, FunctionArg, FunctionArgExpr, Value};

use super::sql::TableArg;
use crate::error::{Error, Result};
use crate::source::expand::OtherFormat;

/// DuckDB's table functions that read files by their path: Parquet, CSV and JSON.
const READ_FILES: [&str; 8] = [
    "read_parquet",
    "parquet_scan",
    "read_csv",
    "read_csv_auto",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_ndjson_auto",
];

/// What a reader's call says beside its first path (a list's other paths, its options); the
/// default for `read_parquet('path')`, which reads as the path alone does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadCall {
    /// A list's paths after the first (`read_parquet(['a.parquet', 'b.parquet'])`).
    pub more: Vec<String>,
    /// The format the function reads, where the path's name says another or none
    /// (`read_csv('data.txt')`); otherwise the name's.
    pub format: Option<OtherFormat>,
    /// `hive_partitioning = false`: a hive folder's `key=value` levels are not columns.
    pub no_hive: bool,
    /// CSV's `delim` (`sep`, `delimiter`): one character.
    pub delimiter: Option<u8>,
    /// CSV's `header`: whether the files start with a line of column names.
    pub header: Option<bool>,
    /// CSV's `quote`.
    pub quote: Option<u8>,
    /// CSV's `escape`.
    pub escape: Option<u8>,
    /// CSV's `nullstr` (`null`): the texts that are null, beside an empty field.
    pub nulls: Vec<String>,
    /// `filename = true`: a column `filename` naming each row's file.
    pub filename: bool,
    /// Parquet's `binary_as_string = true`: binary columns read as text.
    pub binary_as_string: bool,
}

impl ReadCall {
    /// The paths the call reads, `first` and the list's others.
    pub fn paths(&self, first: &str) -> Vec<String> {
        std::iter::once(first.to_string())
            .chain(self.more.iter().cloned())
            .collect()
    }
}

/// The formats DuckDB's reader functions read.
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    Parquet,
    Csv,
    Json,
}

impl Reader {
    fn of(called: &str) -> Option<Reader> {
        if !READ_FILES.contains(&called) {
            None
        } else if called.contains("parquet") {
            Some(Reader::Parquet)
        } else if called.contains("csv") {
            Some(Reader::Csv)
        } else {
            Some(Reader::Json)
        }
    }

    /// The options taken, as DuckDB names them.
    fn options(self) -> &'static str {
        match self {
            Reader::Parquet => "hive_partitioning, union_by_name, binary_as_string, filename",
            Reader::Csv => "delim (sep), header, quote, escape, nullstr, auto_detect, filename",
            Reader::Json => "format, filename",
        }
    }
}

/// A call's first path and what else it says, or why it is refused.
fn parse_call(called: &str, args: &[FunctionArg]) -> std::result::Result<(String, ReadCall), String> {
    let reader = Reader::of(called).ok_or_else(|| format!("{called} reads no files"))?;
    let example = match reader {
        Reader::Parquet => "'data/*.parquet'",
        Reader::Csv => "'labels.csv'",
        Reader::Json => "'notes.jsonl'",
    };
    let give = || {
        format!(
            "{called}(...): give it a path in quotes (a file, folder or glob) or a list of them, as in {called}({example}) or {called}([{example}, ...]), then any options as name = value"
        )
    };
    let mut args = args.iter();
    let paths = match args.next() {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) if named(e).is_none() => match e {
            Expr::Array(list) => list.elem.iter().map(string).collect::<Option<Vec<_>>>(),
            e => string(e).map(|p| vec![p]),
        },
        _ => None,
    }
    .filter(|p| !p.is_empty())
    .ok_or_else(give)?;
    let first = paths[0].clone();
    let mut call = ReadCall {
        more: paths[1..].to_vec(),
        ..ReadCall::default()
    };
    // The function's format, where a path's name says another.
    let differs = |p: &String| {
        !matches!(
            (reader, OtherFormat::of(p)),
            (Reader::Csv, Some(OtherFormat::Csv(_)))
                | (Reader::Json, Some(OtherFormat::Json))
                | (Reader::Parquet, _)
        )
    };
    if paths.iter().any(differs) {
        call.format = match reader {
            Reader::Csv => Some(OtherFormat::Csv(b',')),
            Reader::Json => Some(OtherFormat::Json),
            Reader::Parquet => None,
        };
    }
    for arg in args {
        let (name, value) = match arg {
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (name.value.to_ascii_lowercase(), e),
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (name.value.to_ascii_lowercase(), e),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => named(e).ok_or_else(give)?,
            _ => return Err(give()),
        };
        let bad = |what: &str| format!("{called}(...): option {name} = {value}: {what}");
        let boolean = || match value {
            Expr::Value(v) => match &v.value {
                Value::Boolean(b) => Ok(*b),
                _ => Err(bad("expected true or false")),
            },
            _ => Err(bad("expected true or false")),
        };
        let character = || {
            let text = string(value).ok_or_else(|| bad("expected one character in quotes"))?;
            match text.as_bytes() {
                [c] if c.is_ascii() => Ok(*c),
                b"\\t" => Ok(b'\t'),
                _ => Err(bad("expected one character in quotes ('\\t' for a tab)")),
            }
        };
        match (reader, name.as_str()) {
            (_, "filename") => call.filename = boolean()?,
            (Reader::Parquet, "hive_partitioning") => call.no_hive = !boolean()?,
            (Reader::Parquet, "binary_as_string") => call.binary_as_string = boolean()?,
            // Files of different columns are read by name, whatever this says.
            (Reader::Parquet, "union_by_name") => drop(boolean()?),
            (Reader::Csv, "delim" | "sep" | "delimiter") => call.delimiter = Some(character()?),
            (Reader::Csv, "header") => call.header = Some(boolean()?),
            (Reader::Csv, "quote") => call.quote = Some(character()?),
            (Reader::Csv, "escape") => call.escape = Some(character()?),
            (Reader::Csv, "nullstr" | "null") => {
                call.nulls = match value {
                    Expr::Array(list) => list.elem.iter().map(string).collect(),
                    e => string(e).map(|t| vec![t]),
                }
                .ok_or_else(|| bad("expected a text in quotes, or a list of them"))?
            }
            // What DuckDB's sniffer finds is found here from the header line, whatever this says.
            (Reader::Csv, "auto_detect") => drop(boolean()?),
            // An array of objects or objects one per line are both read, whatever this says.
            (Reader::Json, "format") => match string(value).as_deref() {
                Some("auto" | "array" | "newline_delimited") => {}
                _ => return Err(bad("expected 'auto', 'array' or 'newline_delimited'")),
            },
            _ => {
                return Err(format!(
                    "{called}(...): option {name} is not taken here; {called} takes {}",
                    reader.options()
                ))
            }
        }
    }
    Ok((first, call))
}

/// A text in single quotes.
fn string(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// An option given as `name = value`, which the SQL parser reads as a comparison.
fn named(e: &Expr) -> Option<(String, &Expr)> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match left.as_ref() {
            Expr::Identifier(name) => Some((name.value.to_ascii_lowercase(), right.as_ref())),
            _ => None,
        },
        _ => None,
    }
}

/// The query with DuckDB's SQL written as DataFusion reads it: `read_parquet('path')` (and
/// `parquet_scan`, `read_csv`, `read_json`, ...) as the path they name, quoted (`FROM "path"`),
/// which [`super::sql_tables`] reads as `--table` would; a call with a list of paths or
/// options, or whose function reads another format than its path's name says, as a name that
/// is the call's text ([`call_table`] reads it back). The query as it is
/// when it holds none of these, or is not one statement that parses (its error comes when it
/// is planned); a call segscore cannot read as DuckDB would is refused, saying why.
pub(super) fn duckdb_sql(query: &str) -> Result<String> {
    use std::ops::ControlFlow;

    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::{Ident, ObjectName, TableFactor, VisitMut, VisitorMut};
    /// Whether anything was rewritten.
    struct Calls(bool);
    impl VisitorMut for Calls {
        type Break = String;
        fn pre_visit_table_factor(&mut self, table: &mut TableFactor) -> ControlFlow<String> {
            let TableFactor::Table { name, args, .. } = table else {
                return ControlFlow::Continue(());
            };
            let Some(list) = args.as_ref().map(|a| &a.args) else {
                return ControlFlow::Continue(());
            };
            let called = name.to_string().to_ascii_lowercase();
            if Reader::of(&called).is_none() {
                return ControlFlow::Continue(());
            }
            let named = match parse_call(&called, list) {
                Err(why) => return ControlFlow::Break(why),
                Ok((path, call)) if call == ReadCall::default() => path,
                Ok(_) => call_text(&called, list),
            };
            *name = ObjectName::from(vec![Ident::with_quote('"', named)]);
            *args = None;
            self.0 = true;
            ControlFlow::Continue(())
        }
    }
    let Ok(mut statements) = DFParser::parse_sql(query) else {
        return Ok(query.to_string());
    };
    let (Some(Statement::Statement(mut statement)), None) = (statements.pop_front(), statements.pop_front())
    else {
        return Ok(query.to_string());
    };
    // The query is written out again only where something was rewritten.
    let mut calls = Calls(false);
    match statement.visit(&mut calls) {
        ControlFlow::Break(why) => Err(Error::Usage(format!("query: {why}"))),
        ControlFlow::Continue(()) if calls.0 => Ok(statement.to_string()),
        ControlFlow::Continue(()) => Ok(query.to_string()),
    }
}

/// A call's text, as a table's name: `read_csv('a.csv', delim = ';')`.
fn call_text(called: &str, args: &[FunctionArg]) -> String {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    format!("{called}({})", args.join(", "))
}

/// The table a name that is a reader's call's text stands for ([`duckdb_sql`] names a
/// call with a list or options so), or None for any other name.
pub(super) fn call_table(name: &str) -> Option<TableArg> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement as Sql, TableFactor};
    let lower = name.to_ascii_lowercase();
    if !READ_FILES.iter().any(|f| lower.starts_with(&format!("{f}("))) {
        return None;
    }
    let mut statements = DFParser::parse_sql(&format!("SELECT * FROM {name}")).ok()?;
    let Some(Statement::Statement(statement)) = statements.pop_front() else {
        return None;
    };
    let Sql::Query(query) = *statement else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    let TableFactor::Table {
        name: called,
        args: Some(args),
        ..
    } = &select.from.first()?.relation
    else {
        return None;
    };
    let (path, read) = parse_call(&called.to_string().to_ascii_lowercase(), &args.args).ok()?;
    Some(TableArg {
        name: Some(name.to_string()),
        path,
        read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_with_one_path_are_the_path_and_others_their_text_read_back() {
        let q = "SELECT * FROM read_parquet('data/*.parquet') JOIN READ_CSV('l.csv') USING (a)";
        assert_eq!(
            duckdb_sql(q).unwrap(),
            "SELECT * FROM \"data/*.parquet\" JOIN \"l.csv\" USING(a)"
        );
        let q = "SELECT * FROM read_parquet(['a.parquet', 'b.parquet'], hive_partitioning = false)";
        let name = "read_parquet(['a.parquet', 'b.parquet'], hive_partitioning = false)";
        assert_eq!(duckdb_sql(q).unwrap(), format!("SELECT * FROM \"{name}\""));
        let t = call_table(name).unwrap();
        assert_eq!((t.name.as_deref(), t.path.as_str()), (Some(name), "a.parquet"));
        assert_eq!(t.read.paths(&t.path), ["a.parquet", "b.parquet"]);
        assert!(t.read.no_hive);
        let t = call_table("read_csv('x.txt', delim => '\\t', HEADER := false, quote = '''')").unwrap();
        assert_eq!(t.read.format, Some(OtherFormat::Csv(b',')));
        assert_eq!(
            (t.read.delimiter, t.read.header, t.read.quote),
            (Some(b'\t'), Some(false), Some(b'\''))
        );
        assert_eq!(call_table("read_csv.csv"), None);
        assert_eq!(call_table("data/x.parquet"), None);
    }

    #[test]
    fn calls_segscore_cannot_read_as_duckdb_would_are_refused_saying_why() {
        let refused = |q: &str| duckdb_sql(q).unwrap_err().to_string();
        assert_eq!(
            refused("SELECT * FROM read_parquet('a.parquet', file_row_number = true)"),
            "query: read_parquet(...): option file_row_number is not taken here; read_parquet takes hive_partitioning, union_by_name, binary_as_string, filename"
        );
        assert_eq!(
            refused("SELECT * FROM read_csv('a.csv', delim = ';;')"),
            "query: read_csv(...): option delim = ';;': expected one character in quotes ('\\t' for a tab)"
        );
        assert_eq!(
            refused("SELECT * FROM read_csv('a.csv', header = 'yes')"),
            "query: read_csv(...): option header = 'yes': expected true or false"
        );
        assert!(refused("SELECT * FROM read_json([])")
            .starts_with("query: read_json(...): give it a path in quotes"));
        assert!(refused("SELECT * FROM read_json(x)").contains("or a list of them"));
        assert!(
            refused("SELECT * FROM read_json('a.json', format = 'unstructured')")
                .contains("expected 'auto', 'array'")
        );
    }
}
