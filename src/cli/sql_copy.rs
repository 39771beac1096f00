//! `COPY ... TO 'file'` in `segscore sql`: the query and where its result goes, written as
//! `--to` writes it; DuckDB's and PostgreSQL's `(FORMAT PARQUET, COMPRESSION zstd, ...)` options
//! as DataFusion's `STORED AS` and `OPTIONS`.

use std::path::{Path, PathBuf};

use super::sql::Format;
use super::sql_sink::ParquetSettings;
use crate::error::{Error, Result};

/// DuckDB's (and PostgreSQL's) `COPY ... TO 'file' [WITH] (FORMAT PARQUET[, HEADER])` as
/// DataFusion's `COPY ... TO 'file' STORED AS PARQUET`; another option is refused (`why` gives
/// the refusal for the target and what is refused). The query as it is when it is no such COPY.
pub(super) fn copy_options(query: &str, why: impl Fn(&str, String) -> Error) -> Result<String> {
    use super::sql_text::{keyword, tokens};
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    let as_is = || Ok(query.to_string());
    let Some(located) = tokens(query) else {
        return as_is();
    };
    let tokens: Vec<&Token> = located.iter().map(|(t, _)| t).collect();
    // The tokens that are not white space, by their place.
    let mut solid: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    if solid.last().is_some_and(|&i| *tokens[i] == Token::SemiColon) {
        solid.pop();
    }
    let keyword = |i: usize, k: Keyword| keyword(tokens[i], k);
    let (Some(&first), Some(&close)) = (solid.first(), solid.last()) else {
        return as_is();
    };
    if !keyword(first, Keyword::COPY) || *tokens[close] != Token::RParen {
        return as_is();
    }
    // The `(` that the last `)` closes, and what comes before it.
    let mut depth = 0;
    let Some(at) = solid.iter().rposition(|&i| {
        match tokens[i] {
            Token::RParen => depth += 1,
            Token::LParen => depth -= 1,
            _ => {}
        }
        depth == 0
    }) else {
        return as_is();
    };
    let open = solid[at];
    let mut before = solid[..at].iter().rev().copied();
    let mut target = before.next();
    let mut cut = open;
    if target.is_some_and(|i| keyword(i, Keyword::WITH)) {
        cut = target.unwrap_or(open);
        target = before.next();
    }
    let (Some(target), Some(to)) = (target, before.next()) else {
        return as_is();
    };
    let Token::SingleQuotedString(file) = tokens[target] else {
        return as_is();
    };
    if !keyword(to, Keyword::TO) {
        return as_is();
    }
    let inside = &solid[at + 1..solid.len() - 1];
    let mut stored = None;
    // DuckDB's Parquet settings, as DataFusion's COPY options ([`copy_to`] reads them).
    let (mut compression, mut level, mut written) = (None, None, Vec::new());
    for option in inside.split(|&i| *tokens[i] == Token::Comma) {
        let text = |i: &usize| match tokens[*i] {
            Token::Word(w) => w.value.clone(),
            Token::SingleQuotedString(s) => s.clone(),
            t => t.to_string(),
        };
        let words: Vec<String> = option.iter().map(text).collect();
        if words.is_empty() {
            return Err(why(file, "an empty option is not taken".into()));
        }
        let name = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
        let value = words[1.min(words.len())..].join(" ").to_ascii_lowercase();
        match (name.as_str(), value.as_str()) {
            ("FORMAT", "parquet" | "csv" | "json") => stored = Some(value),
            // CSV is written with its header line.
            ("HEADER", "" | "true" | "1") => {}
            ("COMPRESSION", v) if !v.is_empty() => compression = Some(value),
            ("COMPRESSION_LEVEL", v) if !v.is_empty() => level = Some(value),
            ("ROW_GROUP_SIZE", v) if !v.is_empty() => {
                written.push(("format.max_row_group_size".to_string(), value))
            }
            _ => return Err(why(file, format!("option {} is not taken", words.join(" ")))),
        }
    }
    match (compression, level) {
        (Some(c), Some(l)) => written.push(("format.compression".into(), format!("{c}({l})"))),
        (Some(c), None) => written.push(("format.compression".into(), c)),
        (None, Some(l)) => {
            return Err(why(
                file,
                format!("option COMPRESSION_LEVEL {l} needs COMPRESSION"),
            ))
        }
        (None, None) => {}
    }
    let mut kept = query[..located[cut].1].trim_end().to_string();
    if let Some(f) = stored {
        kept += &format!(" STORED AS {}", f.to_ascii_uppercase());
    }
    if !written.is_empty() {
        let quoted = super::sql_text::literal;
        let options: Vec<String> = written
            .iter()
            .map(|(k, v)| format!("{} {}", quoted(k), quoted(v)))
            .collect();
        kept += &format!(" OPTIONS ({})", options.join(", "));
    }
    Ok(kept)
}

/// How a `COPY ... TO` statement's file is named in messages.
pub(super) const COPY_TO: &str = "COPY ... TO";

/// A `COPY ... TO` statement as a query and where its result goes.
pub(super) struct CopyTo {
    /// The query whose result is written.
    pub query: String,
    /// Where.
    pub to: PathBuf,
    /// `STORED AS`, if given.
    pub format: Option<Format>,
    /// How a Parquet file is written: the options' codec and row group size.
    pub parquet: ParquetSettings,
}

/// `COPY (query) TO 'file' [STORED AS PARQUET|CSV|JSON]` (DuckDB's `(FORMAT PARQUET)` too), and
/// `COPY table TO 'file'`, as the
/// query and `--to file`: written as `--to` writes (whole, then renamed into place; refused
/// over the query's own input). DataFusion's COPY wrote as it went: a query that failed part
/// way left a file of the rows before the error (a Parquet file with its footer, readable as
/// if whole), and a COPY over a file it read replaced it. `None` for any other statement, or
/// one that does not parse (its error comes when it is planned).
pub(super) fn copy_to(query: &str) -> Result<Option<CopyTo>> {
    use datafusion::sql::parser::{CopyToSource, DFParser, Statement};
    let refusal = |target: &str, what: String| {
        Error::Usage(format!(
            "{COPY_TO} {target}: {what}; segscore sql writes one file, as --to does, with its own settings"
        ))
    };
    // DuckDB's `(FORMAT PARQUET)`.
    let query = copy_options(query, refusal)?;
    let Ok(mut statements) = DFParser::parse_sql(&query) else {
        return Ok(None);
    };
    let (Some(Statement::CopyTo(c)), None) = (statements.pop_front(), statements.pop_front()) else {
        return Ok(None);
    };
    let refuse = |what: String| Err(refusal(&c.target, what));
    if let Some(why) = crate::store::foreign_url(&c.target) {
        return Err(Error::Usage(format!("{COPY_TO} {why}")));
    }
    if !c.partitioned_by.is_empty() {
        return refuse("PARTITIONED BY is not taken".into());
    }
    let mut parquet = ParquetSettings::default();
    for (key, value) in &c.options {
        let value = match value {
            datafusion::sql::sqlparser::ast::Value::SingleQuotedString(v) => v.clone(),
            v => v.to_string(),
        };
        match key.to_ascii_lowercase().trim_start_matches("format.") {
            "compression" => {
                let codec = ParquetSettings::codec(&value);
                parquet.compression =
                    Some(codec.map_err(|e| Error::Usage(format!("{COPY_TO} {}: {e}", c.target)))?)
            }
            "max_row_group_size" => match value.parse::<usize>() {
                Ok(n) if n > 0 => parquet.row_group_rows = Some(n),
                _ => return refuse(format!("ROW_GROUP_SIZE {value}: give a number of rows")),
            },
            _ => return refuse(format!("OPTIONS ({key} ...) are not taken")),
        }
    }
    let format = match c.stored_as.as_deref().map(str::to_ascii_lowercase) {
        None => None,
        Some(f) => match f.parse::<Format>() {
            Ok(Format::Table) | Err(_) => {
                return refuse(format!("STORED AS {f}: give parquet, csv, json or markdown"))
            }
            Ok(f) => Some(f),
        },
    };
    let query = match &c.source {
        CopyToSource::Query(q) => q.to_string(),
        CopyToSource::Relation(table) => format!("SELECT * FROM {table}"),
    };
    Ok(Some(CopyTo {
        query,
        to: PathBuf::from(&c.target),
        format,
        parquet,
    }))
}

/// The format a result is written in: `--format` (`given`), the COPY's `STORED AS` (or DuckDB's
/// `FORMAT`), else the name `to` ends in; where none says one, the terminal's table. A name
/// that says a format holds that format: another given beside it is refused.
pub(super) fn output_format(
    given: Option<Format>,
    stored_as: Option<Format>,
    to: Option<&Path>,
    copied: bool,
) -> Result<Format> {
    Ok(match (given, stored_as, to) {
        (Some(f), Some(s), _) if f != s => {
            return Err(Error::Usage(format!(
                "--format {} and the COPY's STORED AS {} differ; give one of them",
                f.name(),
                s.name()
            )))
        }
        // A name that says a format (`out.parquet`) holds that format: `--format csv` (how a
        // result is printed) beside `COPY ... TO 'out.parquet'` wrote CSV into it.
        (Some(f), _, Some(to)) | (None, Some(f), Some(to))
            if f != Format::Table && Format::of_file(to).is_some_and(|named| named != f) =>
        {
            let named = Format::of_file(to).expect("checked above");
            let (label, flag) = match (copied, given.is_some()) {
                (false, _) => ("--to", "--format"),
                (true, true) => (COPY_TO, "--format"),
                (true, false) => (COPY_TO, "the COPY's format"),
            };
            return Err(Error::Usage(format!(
                "{label} {}: the name says {} and {flag} says {}; give a name that ends in .{} or leave {flag} out",
                to.display(),
                named.name(),
                f.name(),
                f.ending()
            )));
        }
        (Some(f), _, _) | (None, Some(f), _) => f,
        (None, None, None) => Format::Table,
        (None, None, Some(to)) => Format::of_file(to).ok_or_else(|| {
            let (label, give) = match copied {
                false => ("--to", "--format"),
                true => (COPY_TO, "STORED AS"),
            };
            if names_a_folder(to) {
                return folder_given(label, to);
            }
            Error::Usage(format!(
                "{label} {}: give {give} csv, json, parquet or markdown (the name does not end \
                 in .csv, .json, .jsonl, .ndjson, .parquet or .md)",
                to.display()
            ))
        })?,
    })
}

/// Whether `to` ends in a `/`: a folder's name, there or not (the file would be written as
/// `out`, its temporary name beside it failing).
pub(super) fn names_a_folder(to: &Path) -> bool {
    to.as_os_str()
        .to_string_lossy()
        .ends_with(std::path::is_separator)
}

/// The refusal of `to`, named by `label` (`--to`), that names a folder.
pub(super) fn folder_given(label: &str, to: &Path) -> Error {
    Error::Usage(format!("{label} {}: is a folder; give a file name", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdbs_copy_options_are_stored_as_or_refused() {
        let why = |t: &str, w: String| Error::Usage(format!("{t}: {w}"));
        let copy = |q: &str| copy_options(q, why).map_err(|e| e.to_string());
        assert_eq!(
            copy("COPY t TO 'x' (FORMAT PARQUET);").unwrap(),
            "COPY t TO 'x' STORED AS PARQUET"
        );
        assert_eq!(
            copy("copy (select f(1)) to 'x.csv' with (header)").unwrap(),
            "copy (select f(1)) to 'x.csv'"
        );
        assert_eq!(
            copy("COPY t TO 'x' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9, ROW_GROUP_SIZE 1000)").unwrap(),
            "COPY t TO 'x' STORED AS PARQUET OPTIONS ('format.max_row_group_size' '1000', 'format.compression' 'zstd(9)')"
        );
        assert_eq!(
            copy("COPY t TO 'x' (COMPRESSION_LEVEL 3)").unwrap_err(),
            "x: option COMPRESSION_LEVEL 3 needs COMPRESSION"
        );
        for q in [
            "COPY t TO 'x' STORED AS CSV",
            "SELECT f(1)",
            "COPY t TO 'x' OPTIONS (a 'b')",
        ] {
            assert_eq!(copy(q).unwrap(), q);
        }
        assert_eq!(
            copy("COPY t TO 'x' (HEADER false)").unwrap_err(),
            "x: option HEADER false is not taken"
        );
        assert_eq!(
            copy("COPY t TO 'x' (FORMAT xlsx)").unwrap_err(),
            "x: option FORMAT xlsx is not taken"
        );
    }
}
