//! DuckDB's text functions that DataFusion has none for: `len` (a text's characters or a list's
//! elements), `regexp_extract` and `regexp_extract_all` (a capture group of the first match, of
//! every match), with the same arguments, options and results as DuckDB's.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::{Regex, RegexBuilder};

/// DuckDB's `len(x)`: a text's length in characters, or a list's in elements (`len(input_ids)`:
/// a segment's tokens), as BIGINT; NULL for NULL. DataFusion has one function for each
/// (`character_length`, `array_length`), none for both.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Len {
    signature: Signature,
}

impl ScalarUDFImpl for Len {
    fn name(&self) -> &str {
        "len"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Null] => Ok(DataType::Int64),
            [other] => plan_err!("len(x) takes a text or a list, not {other}"),
            _ => plan_err!("len(x) takes one argument"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let chars = |texts: &mut dyn Iterator<Item = Option<&str>>| -> Int64Array {
            texts.map(|t| t.map(|t| t.chars().count() as i64)).collect()
        };
        let lengths: Int64Array = match array.data_type() {
            DataType::Utf8 => chars(&mut array.as_string::<i32>().iter()),
            DataType::LargeUtf8 => chars(&mut array.as_string::<i64>().iter()),
            DataType::Utf8View => chars(&mut array.as_string_view().iter()),
            DataType::Null => Int64Array::new_null(array.len()),
            _ => {
                let counts = datafusion::arrow::compute::kernels::length::length(&array)?;
                datafusion::arrow::compute::cast(&counts, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(lengths)))
    }
}

/// Whether `t` is a text type: what a text argument takes ([`crate::engine::types::is_text`]).
pub(super) use crate::engine::types::is_text as text;

/// The `len` function.
pub(super) fn len_udf() -> ScalarUDF {
    ScalarUDF::from(Len {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// DuckDB's `regexp_extract(string, pattern [, group [, options]])`: capture group `group` (0,
/// the default: the whole match) of the first match of `pattern` in `string`, `''` where the
/// pattern does not match or the group took part in no match; with `all`,
/// `regexp_extract_all`: the group of every non-overlapping match, as a list. The pattern is a
/// regular expression (the `regex` crate's syntax, which is RE2's, as DuckDB's); `group` and
/// `options` are constants, the options DuckDB's letters: `c` case-sensitive (the default), `i`
/// case-insensitive, `l` the pattern is literal text, `s` `.` matches a newline too, `m`, `n`,
/// `p` it does not (the default). NULL for a NULL string or pattern.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    all: bool,
    signature: Signature,
}

impl RegexpExtract {
    /// The group and the regex options of a call: its constant third and fourth arguments.
    fn constants(&self, args: &[ColumnarValue]) -> Result<(Option<usize>, Options)> {
        let constant = |i: usize, what: &str| match args.get(i) {
            None => Ok(None),
            Some(ColumnarValue::Scalar(v)) => Ok(Some(v.clone())),
            Some(ColumnarValue::Array(_)) => exec_err!("{}: the {what} must be a constant", self.name()),
        };
        let group = match constant(2, "group")? {
            None => Some(0),
            Some(ScalarValue::Int64(Some(g))) if g >= 0 => Some(g as usize),
            Some(ScalarValue::Int64(Some(g))) => {
                return exec_err!(
                    "{}: group {g}: a group is 0 (the whole match) or more",
                    self.name()
                )
            }
            Some(_) => None,
        };
        let options = match constant(3, "options")? {
            Some(ScalarValue::Utf8(Some(text))) => Options::parse(&text).map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!("{}: {e}", self.name()))
            })?,
            _ => Options::default(),
        };
        Ok((group, options))
    }
}

/// DuckDB's regex options ([`RegexpExtract`]).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Options {
    case_insensitive: bool,
    literal: bool,
    dot_matches_newline: bool,
}

impl Options {
    /// The options of DuckDB's letters (whitespace between them is passed over).
    fn parse(letters: &str) -> std::result::Result<Options, String> {
        let mut options = Options::default();
        for c in letters.chars() {
            match c {
                'c' => options.case_insensitive = false,
                'i' => options.case_insensitive = true,
                'l' => options.literal = true,
                'm' | 'n' | 'p' => options.dot_matches_newline = false,
                's' => options.dot_matches_newline = true,
                c if c.is_whitespace() => {}
                'g' => return Err("option 'g' (global replace) is only for regexp_replace".into()),
                other => {
                    return Err(format!(
                        "unknown regex option '{other}' (DuckDB's: c, i, l, m, n, p, s)"
                    ))
                }
            }
        }
        Ok(options)
    }

    /// The regex of `pattern` with these options, from `last` where that is the same pattern
    /// (a constant pattern is compiled once, a column's at each change), else compiled into it;
    /// a pattern that is not a regular expression is an error naming `function` and it.
    fn cached<'a>(
        self,
        last: &'a mut Option<(String, Regex)>,
        pattern: &str,
        function: &str,
    ) -> Result<&'a Regex> {
        if last.as_ref().is_none_or(|(p, _)| p != pattern) {
            let re = self.compile(pattern).map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!(
                    "{function}: the pattern '{pattern}' is not a regular expression: {e}"
                ))
            })?;
            *last = Some((pattern.to_owned(), re));
        }
        Ok(&last.as_ref().expect("set above").1)
    }

    /// `pattern` compiled with these options.
    fn compile(self, pattern: &str) -> std::result::Result<Regex, regex::Error> {
        let escaped;
        let pattern = if self.literal {
            escaped = regex::escape(pattern);
            &escaped
        } else {
            pattern
        };
        RegexBuilder::new(pattern)
            .case_insensitive(self.case_insensitive)
            .dot_matches_new_line(self.dot_matches_newline)
            .build()
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        if self.all {
            "regexp_extract_all"
        } else {
            "regexp_extract"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=4).contains(&args.len()) {
            return plan_err!(
                "{}(string, pattern [, group [, options]]) takes 2 to 4 arguments",
                self.name()
            );
        }
        let mut types = vec![DataType::Utf8, DataType::Utf8];
        for (i, t) in args.iter().enumerate() {
            let ok = match i {
                2 => t.is_integer() || t == &DataType::Null,
                _ => text(t),
            };
            if !ok {
                let what = ["the string", "the pattern", "the group", "the options"][i];
                let wanted = if i == 2 { "an integer" } else { "a text" };
                return plan_err!("{}: {what} is {wanted}, not {t}", self.name());
            }
            match i {
                2 => types.push(DataType::Int64),
                3 => types.push(DataType::Utf8),
                _ => {}
            }
        }
        Ok(types)
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.all {
            DataType::new_list(DataType::Utf8, true)
        } else {
            DataType::Utf8
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let (group, options) = self.constants(&args.args)?;
        let strings = args.args[0].to_array(rows)?;
        let strings = strings.as_string::<i32>();
        let patterns = args.args[1].to_array(rows)?;
        let patterns = patterns.as_string::<i32>();
        let mut compiled = None;
        let mut one = StringBuilder::with_capacity(if self.all { 0 } else { rows }, 0);
        let mut lists = ListBuilder::new(StringBuilder::new());
        for row in 0..rows {
            let (Some(group), false, false) = (group, strings.is_null(row), patterns.is_null(row)) else {
                one.append_null();
                lists.append_null();
                continue;
            };
            let pattern = patterns.value(row);
            let re = options.cached(&mut compiled, pattern, self.name())?;
            let groups = re.captures_len() - 1;
            if group > groups {
                return exec_err!(
                    "{}: group {group}, but the pattern '{pattern}' has {groups} group{}",
                    self.name(),
                    if groups == 1 { "" } else { "s" }
                );
            }
            let text = strings.value(row);
            let of = |c: regex::Captures<'_>| c.get(group).map_or("", |m| m.as_str()).to_owned();
            if self.all {
                lists.append_value(re.captures_iter(text).map(|c| Some(of(c))));
            } else {
                one.append_value(re.captures(text).map(of).unwrap_or_default());
            }
        }
        let out: ArrayRef = if self.all {
            Arc::new(lists.finish())
        } else {
            Arc::new(one.finish()) as Arc<StringArray>
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `regexp_extract` and `regexp_extract_all`.
pub(super) fn regexp_extract_udfs() -> [ScalarUDF; 2] {
    [false, true].map(|all| {
        ScalarUDF::from(RegexpExtract {
            all,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
}

/// DuckDB's `string_split(s, separator)` (`str_split`) and `string_split_regex(s, pattern [,
/// options])` (`regexp_split_to_array`, `str_split_regex`): the parts of `s` between
/// separators, as a list; an empty separator splits `s` into its characters, an empty `s` is
/// one empty part (`['']`), NULL for a NULL `s` or separator. DataFusion's `string_to_array`
/// (PostgreSQL's) gives `['abc']` for an empty separator, `[]` for an empty text and splits
/// into characters for a NULL separator.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Split {
    name: &'static str,
    regex: bool,
    signature: Signature,
}

impl ScalarUDFImpl for Split {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let most = if self.regex { 3 } else { 2 };
        if args.len() < 2 || args.len() > most || !args.iter().all(text) {
            let options = if self.regex { " [, options]" } else { "" };
            return plan_err!("{}(text, separator{options}) takes texts", self.name);
        }
        Ok(vec![DataType::Utf8; args.len()])
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Utf8, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let options = match args.args.get(2) {
            None => Options::default(),
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(o)))) => Options::parse(o)
                .map_err(|e| datafusion::error::DataFusionError::Execution(format!("{}: {e}", self.name)))?,
            Some(ColumnarValue::Scalar(_)) => Options::default(),
            Some(ColumnarValue::Array(_)) => {
                return exec_err!("{}: the options must be a constant", self.name)
            }
        };
        let texts = args.args[0].to_array(rows)?;
        let texts = texts.as_string::<i32>();
        let separators = args.args[1].to_array(rows)?;
        let separators = separators.as_string::<i32>();
        let mut compiled = None;
        let mut out = ListBuilder::new(StringBuilder::new());
        for row in 0..rows {
            if texts.is_null(row) || separators.is_null(row) {
                out.append_null();
                continue;
            }
            let (text, separator) = (texts.value(row), separators.value(row));
            if text.is_empty() {
                // One empty part, whatever the separator.
                out.append_value([Some("")]);
            } else if separator.is_empty() {
                out.append_value(text.chars().map(|c| Some(c.to_string())));
            } else if self.regex {
                let re = options.cached(&mut compiled, separator, self.name)?;
                out.append_value(re.split(text).map(Some));
            } else {
                out.append_value(text.split(separator).map(Some));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `string_split` (`str_split`) and `string_split_regex` (`regexp_split_to_array`,
/// `str_split_regex`).
pub(super) fn split_udfs() -> [ScalarUDF; 2] {
    [
        ("string_split", false, "str_split"),
        ("string_split_regex", true, "str_split_regex"),
    ]
    .map(|(name, regex, alias)| {
        let aliases: &[&str] = if regex {
            &[alias, "regexp_split_to_array"]
        } else {
            &[alias]
        };
        ScalarUDF::from(Split {
            name,
            regex,
            signature: Signature::user_defined(Volatility::Immutable),
        })
        .with_aliases(aliases.iter().copied())
    })
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[test]
    fn options_are_duckdbs_letters() {
        let o = Options::parse("i s").unwrap();
        assert!(o.case_insensitive && o.dot_matches_newline && !o.literal);
        let o = Options::parse("isc n").unwrap();
        assert!(!o.case_insensitive && !o.dot_matches_newline);
        assert!(Options::parse("l")
            .unwrap()
            .compile("a.b")
            .unwrap()
            .is_match("xa.by"));
        assert!(!Options::parse("l")
            .unwrap()
            .compile("a.b")
            .unwrap()
            .is_match("axb"));
        assert!(Options::parse("g").unwrap_err().contains("regexp_replace"));
        assert!(Options::parse("x").unwrap_err().contains("'x'"));
    }
}
