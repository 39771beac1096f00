//! `segscore sql`'s tables of files other than Parquet ([`OtherFormat`]): CSV with its
//! separator found from the header line, JSON as objects one per line or as an array of
//! objects, both also compressed, Arrow IPC; and their readers' errors with the files named. A
//! CSV's column types are `sql_csv.rs`'s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::prelude::SessionContext;

use super::sql_calls::ReadCall;
use crate::error::{Error, Result};
use crate::source::expand::{compressed, OtherFormat};

/// The separators a `.csv` file's header line is searched for, the first winning a tie.
const SEPARATORS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How many bytes of a file are read to find its separator or JSON layout.
pub(super) const PEEK: u64 = 64 * 1024;

/// A table over `files` of a format other than Parquet.
pub(super) async fn other_table(
    format: OtherFormat,
    ctx: &SessionContext,
    files: &[PathBuf],
    read: &ReadCall,
) -> Result<Arc<dyn TableProvider>> {
    use datafusion::datasource::file_format::arrow::ArrowFormat;
    use datafusion::datasource::file_format::{csv::CsvFormat, json::JsonFormat, FileFormat};
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
    let compression = files
        .first()
        .map_or(FileCompressionType::UNCOMPRESSED, |f| compression_of(f));
    if let (Some(first), Some(other)) = (
        files.first(),
        files.iter().find(|f| compression_of(f) != compression),
    ) {
        return Err(Error::Usage(format!(
            "{} and {}: the files of one table are compressed alike, or none is; read each kind as a table of its own and UNION them",
            first.display(),
            other.display()
        )));
    }
    if compression.is_compressed() && !cfg!(feature = "compression") {
        return Err(Error::Usage(format!(
            "{}: a compressed file; this build reads none: a build with the `compression` feature (the default) does, or decompress it first",
            files.first().map(|f| f.display().to_string()).unwrap_or_default()
        )));
    }
    // The columns where they are known before the files are listed (JSON's, local CSV files').
    let mut schema = None;
    let mut header = None;
    let csv = matches!(format, OtherFormat::Csv(_));
    let format: Arc<dyn FileFormat> = match format {
        OtherFormat::Csv(separator) => {
            // A `.csv` may be separated by `;` (a spreadsheet's export where `,` is the
            // decimal mark), a tab or `|`, as DuckDB's sniffer finds; `.tsv` is tabs.
            let head = match (read.delimiter, read.header, files.first()) {
                (Some(_), Some(_), _) | (_, _, None) => Vec::new(),
                (_, _, Some(first)) => peek(first, compression)?,
            };
            let separator = match (read.delimiter, separator) {
                (Some(given), _) => given,
                (None, b',') => separator_of(&head),
                (None, _) => separator,
            };
            // Whether the files start with a line of names, as DuckDB's sniffer decides.
            let found = read
                .header
                .unwrap_or_else(|| super::sql_csv::sniffed_header(unmarked(&head), separator, read));
            header = Some(found);
            schema = super::sql_csv::csv_schema(files, compression, separator, read, found).map(Arc::new);
            Arc::new(
                CsvFormat::default()
                    .with_file_compression_type(compression)
                    .with_has_header(found)
                    .with_delimiter(separator)
                    .with_quote(read.quote.unwrap_or(b'"'))
                    .with_escape(read.escape)
                    .with_null_regex(null_regex(&read.nulls))
                    // Every row's values give the column's type, as for JSON: a value past the
                    // rows sampled (DataFusion's 1,000) that did not fit failed the query.
                    .with_schema_infer_max_rec(usize::MAX),
            )
        }
        OtherFormat::Json => {
            // An array, or a file that starts with a byte order mark (Windows PowerShell's
            // UTF-8; DataFusion's reader takes none), is read by `json_table`.
            for f in files {
                let head = peek(f, compression)?;
                if first_char(&head) == Some(b'[') || head.starts_with(BOM) {
                    return json_table(files);
                }
            }
            // Every row's keys: a key first seen past the rows sampled (DataFusion's 1,000)
            // would be no column, its values dropped without a word. A field of text in some
            // rows and numbers in others, which DataFusion's reader cannot decode into its
            // text column, or a line that is not an object, sends the files to `json_table`.
            match ndjson_schema(files, compression)? {
                Some(s) => schema = Some(Arc::new(s)),
                None => return json_table(files),
            }
            Arc::new(JsonFormat::default().with_file_compression_type(compression))
        }
        OtherFormat::Arrow => Arc::new(ArrowFormat),
    };
    let urls = files
        .iter()
        .map(|f| crate::engine::tables::file_url(f))
        .collect::<Result<Vec<_>>>()?;
    let options = ListingOptions::new(format).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options);
    let config = match schema {
        Some(s) => config.with_schema(s),
        None => config.infer_schema(&ctx.state()).await?,
    };
    // A CSV file in a store, whose columns DataFusion inferred, named as a local one's.
    let config = match (header, config.file_schema.clone()) {
        (Some(header), Some(s)) => config.with_schema(Arc::new(super::sql_csv::named(&s, header))),
        _ => config,
    };
    let config = match csv {
        true => super::sql_csv::zero_padded_as_text(ctx, config).await?,
        false => config,
    };
    if read.nulls.is_empty() {
        return Ok(Arc::new(ListingTable::try_new(config)?));
    }
    // DuckDB's `nullstr`: DataFusion's CSV reader takes the null texts into the columns' types
    // (`NA` makes no column text) but not into reading them ("Error while parsing value 'NA'").
    // The files are read as text, and each column is its null texts made null, cast to its type
    // (apache/datafusion#25213; once its fix is released, `with_null_regex` alone will do).
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::{Column, ScalarValue};
    use datafusion::prelude::{cast, lit, when, Expr};
    let typed = config
        .file_schema
        .clone()
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let text = Schema::new(
        typed
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let raw = ListingTable::try_new(config.with_schema(Arc::new(text)))?;
    let nulls: Vec<Expr> = read.nulls.iter().map(|t| lit(t.as_str())).collect();
    let columns = typed
        .fields()
        .iter()
        .map(|f| {
            let c = Expr::Column(Column::new_unqualified(f.name()));
            let value = when(
                c.clone().in_list(nulls.clone(), false),
                lit(ScalarValue::Utf8(None)),
            )
            .otherwise(c)?;
            Ok(cast(value, f.data_type().clone()).alias(f.name()))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let df = ctx.read_table(Arc::new(raw))?.select(columns)?;
    Ok(df.into_view())
}

/// The regular expression of CSV fields that are null: `nulls` (DuckDB's `nullstr`, R's `NA`)
/// and the empty field, which is null without them; None (the reader's own: empty) for none.
pub(super) fn null_regex(nulls: &[String]) -> Option<String> {
    if nulls.is_empty() {
        return None;
    }
    let escaped: Vec<String> = nulls
        .iter()
        .map(|t| {
            t.chars()
                .flat_map(|c| {
                    let meta = "\\.+*?()|[]{}^$#&-~".contains(c);
                    meta.then_some('\\').into_iter().chain([c])
                })
                .collect()
        })
        .collect();
    Some(format!("^(?:|{})$", escaped.join("|")))
}

/// The compression a file's name says ([`compressed`]).
fn compression_of(file: &Path) -> FileCompressionType {
    match compressed(&file.to_string_lossy()).map(|(_, ending)| ending) {
        Some(".gz") => FileCompressionType::GZIP,
        Some(".bz2") => FileCompressionType::BZIP2,
        Some(".xz") => FileCompressionType::XZ,
        Some(_) => FileCompressionType::ZSTD,
        None => FileCompressionType::UNCOMPRESSED,
    }
}

/// The first bytes of `file`'s text (up to [`PEEK`]), local or in object storage, decompressed.
fn peek(file: &Path, compression: FileCompressionType) -> Result<Vec<u8>> {
    let head = match crate::store::remote(file) {
        Some(url) => {
            let loc = crate::store::Location::parse(url)?;
            match loc.head()?.map_or(0, |m| m.size) {
                0 => Vec::new(),
                size => loc.get_range(0, size.min(PEEK))?.to_vec(),
            }
        }
        None => {
            let mut head = Vec::new();
            std::fs::File::open(file)
                .and_then(|f| f.take(PEEK).read_to_end(&mut head))
                .map_err(|e| Error::io(file, e))?;
            head
        }
    };
    decompressed(file, compression, head, Some(PEEK))
}

/// `bytes` of `file` decompressed (up to `limit` bytes of text): where they are the start of
/// the file, what their end cuts short is left out.
fn decompressed(
    file: &Path,
    compression: FileCompressionType,
    bytes: Vec<u8>,
    limit: Option<u64>,
) -> Result<Vec<u8>> {
    if !compression.is_compressed() {
        return Ok(bytes);
    }
    let mut reader = compression.convert_read(std::io::Cursor::new(bytes))?;
    let mut text = Vec::new();
    let read = match limit {
        Some(n) => reader.take(n).read_to_end(&mut text),
        None => reader.read_to_end(&mut text),
    };
    match read {
        Ok(_) => Ok(text),
        Err(_) if limit.is_some() && !text.is_empty() => Ok(text),
        Err(e) => Err(Error::InvalidData(format!(
            "{}: cannot be decompressed as its name says: {e}",
            file.display()
        ))),
    }
}

/// UTF-8's byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The text past a UTF-8 byte order mark.
fn unmarked(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// The first character of a text past its byte order mark and white space.
fn first_char(bytes: &[u8]) -> Option<u8> {
    unmarked(bytes).iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// The separator of a CSV file whose first bytes are `head`: of [`SEPARATORS`], the one its
/// header line holds most often outside double quotes (`,` where it holds none).
fn separator_of(head: &[u8]) -> u8 {
    let mut counts = [0usize; SEPARATORS.len()];
    let mut quoted = false;
    for &b in unmarked(head) {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = SEPARATORS.iter().position(|&s| s == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    // The first of the most frequent: `max_by_key` keeps the last, so the order is reversed.
    let best = (0..SEPARATORS.len())
        .rev()
        .max_by_key(|&i| counts[i])
        .filter(|&i| counts[i] > 0)
        .unwrap_or(0);
    SEPARATORS[best]
}

/// The columns of NDJSON `files` from every row, as DataFusion's reader infers them (arrow's
/// inference, the columns in the order the rows first give them), read in one streaming pass;
/// None where a field holds text in some rows and numbers or booleans in others (its column is
/// text, and DataFusion's reader refused such a file: "expected string got 1"), or a line is
/// not an object or not JSON: [`json_table`] reads those files (and names the line at fault).
fn ndjson_schema(
    files: &[PathBuf],
    compression: FileCompressionType,
) -> Result<Option<datafusion::arrow::datatypes::Schema>> {
    use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
    use serde_json::Value;
    // Each field's (by its path) kinds of value: 1 text, 2 a number or a boolean.
    fn kinds_of(v: &Value, path: &mut String, kinds: &mut std::collections::HashMap<String, u8>) {
        let depth = path.len();
        match v {
            Value::String(_) => *kinds.entry(path.clone()).or_default() |= 1,
            Value::Number(_) | Value::Bool(_) => *kinds.entry(path.clone()).or_default() |= 2,
            Value::Array(items) => {
                path.push_str("[]");
                items.iter().for_each(|i| kinds_of(i, path, kinds));
            }
            Value::Object(fields) => {
                for (k, f) in fields {
                    path.push('.');
                    path.push_str(k);
                    kinds_of(f, path, kinds);
                    path.truncate(depth);
                }
            }
            Value::Null => {}
        }
        path.truncate(depth);
    }
    let mut readers = Vec::with_capacity(files.len());
    for file in files {
        let raw: Box<dyn Read + Send> = match crate::store::remote(file) {
            Some(_) => Box::new(std::io::Cursor::new(crate::store::read_bytes(file)?)),
            None => Box::new(std::fs::File::open(file).map_err(|e| Error::io(file, e))?),
        };
        readers.push(compression.convert_read(std::io::BufReader::new(raw))?);
    }
    let mut kinds = std::collections::HashMap::new();
    let mut whole = false;
    let rows = readers
        .into_iter()
        .flat_map(|r| serde_json::Deserializer::from_reader(r).into_iter::<Value>())
        .map_while(|v| match v {
            Ok(v) if v.is_object() => {
                kinds_of(&v, &mut String::new(), &mut kinds);
                Some(Ok(v))
            }
            _ => {
                whole = true;
                None
            }
        });
    let schema = infer_json_schema_from_iterator(rows)?;
    Ok((!whole && !kinds.values().any(|&k| k == 3)).then_some(schema))
}

/// A table of JSON files one of which is an array of objects (`[{...}, {...}]`, as
/// `json.dump` and `DataFrame.to_json(orient="records")` write it) or starts with a byte order
/// mark, the others objects one per line, or whose field holds text and numbers
/// ([`ndjson_schema`]): read whole into memory (an array is one value, with no lines to stream), each
/// column's type taken from every row, the columns in the order the rows first give them.
fn json_table(files: &[PathBuf]) -> Result<Arc<dyn TableProvider>> {
    use datafusion::arrow::json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for file in files {
        let bytes = decompressed(file, compression_of(file), crate::store::read_bytes(file)?, None)?;
        json_rows(file, unmarked(&bytes), &mut rows)?;
    }
    // The reader's errors name no file: `text_error` adds them, as for the other readers.
    let schema = Arc::new(infer_json_schema_from_iterator(rows.iter().map(Ok))?);
    let batch_size = 8192;
    // A field of text in some rows and numbers in others is a text column: those numbers (and
    // booleans) are written as text, as DuckDB's VARCHAR has them.
    let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(batch_size)
        .with_coerce_primitive(true)
        .build_decoder()?;
    let mut batches = Vec::new();
    for chunk in rows.chunks(batch_size) {
        decoder.serialize(chunk)?;
        batches.extend(decoder.flush()?);
    }
    let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
    Ok(Arc::new(table))
}

/// Appends the objects of one JSON file (`text`, past its byte order mark) to `rows`: the
/// elements of an array, or the values one per line. A value that is not an object, or text
/// that is not JSON, is an error naming the file and the line.
fn json_rows(file: &Path, text: &[u8], rows: &mut Vec<serde_json::Value>) -> Result<()> {
    let line_at = |offset: usize| {
        1 + text[..offset.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    };
    let not_json = |e: serde_json::Error| Error::InvalidData(format!("{}: not JSON: {e}", file.display()));
    let not_object = |v: &serde_json::Value, at: String| {
        let kind = match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        Error::InvalidData(format!(
            "{}: {at} is {kind}, not an object: each row of a JSON table is an object",
            file.display()
        ))
    };
    if first_char(text) == Some(b'[') {
        let elements: Vec<serde_json::Value> = serde_json::from_slice(text).map_err(not_json)?;
        for (i, v) in elements.into_iter().enumerate() {
            if !v.is_object() {
                return Err(not_object(&v, format!("element {} of the array", i + 1)));
            }
            rows.push(v);
        }
        return Ok(());
    }
    let mut values = serde_json::Deserializer::from_slice(text).into_iter::<serde_json::Value>();
    loop {
        let start = values.byte_offset();
        match values.next() {
            None => return Ok(()),
            Some(Err(e)) => return Err(not_json(e)),
            Some(Ok(v)) if !v.is_object() => {
                // The value starts past the white space before it.
                let skipped = text[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                return Err(not_object(
                    &v,
                    format!("the value at line {}", line_at(start + skipped)),
                ));
            }
            Some(Ok(v)) => rows.push(v),
        }
    }
}

/// A CSV or JSON reader's error (`Csv error`, `Json error`, or a value its column's type cannot
/// parse: they name the line, not the file) with the files of other formats than Parquet the
/// query reads ([`super::sql_tables::Tables::text`]) named.
pub(super) fn text_error(e: Error, text: &[PathBuf]) -> Error {
    let message = e.to_string();
    let from_text = ["Csv error", "Json error", "Parser error"]
        .iter()
        .any(|m| message.contains(m));
    if text.is_empty() || !from_text {
        return e;
    }
    let files: Vec<String> = text.iter().map(|f| f.display().to_string()).collect();
    let json = if message.contains("Json error") {
        "; JSON is read as objects one per line, or as one array of objects"
    } else {
        ""
    };
    Error::InvalidData(format!(
        "{message} (reading {}: {}){json}",
        if files.len() == 1 {
            "the file"
        } else {
            "one of the files"
        },
        files.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_separator_is_the_header_lines_most_frequent_outside_quotes() {
        assert_eq!(separator_of(b"a,b,c\n1;2;3;4;5\n"), b',');
        assert_eq!(separator_of(b"\xEF\xBB\xBFid;label;note\n1;good;a,b\n"), b';');
        assert_eq!(separator_of(b"\"a;b;c\",d\n"), b',');
        assert_eq!(separator_of(b"a\tb\r\n1\t2"), b'\t');
        assert_eq!(separator_of(b"a|b|c"), b'|');
        assert_eq!(separator_of(b"a;b,c\n"), b',');
        assert_eq!(separator_of(b"only\n1\n"), b',');
        assert_eq!(separator_of(b""), b',');
    }

    #[test]
    fn json_rows_name_the_line_or_element_that_is_no_object() {
        let f = Path::new("x.json");
        let mut rows = Vec::new();
        let e = json_rows(f, b"{\"a\":1}\n\n  [1]\n", &mut rows).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input: x.json: the value at line 3 is an array, not an object: each row of a JSON table is an object"
        );
        let e = json_rows(f, b" [{\"a\":1}, 2]", &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string()
                .contains("x.json: element 2 of the array is a number"),
            "{e}"
        );
        let e = json_rows(f, b"[{\"a\":1},", &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid input: x.json: not JSON: EOF while parsing"),
            "{e}"
        );
        let mut rows = Vec::new();
        json_rows(f, b"[{\"b\":1}, {\"a\":2}]", &mut rows).unwrap();
        json_rows(f, b"{\"c\":3}\n{\"c\":4}", &mut rows).unwrap();
        assert_eq!(rows.len(), 4);
    }
}
