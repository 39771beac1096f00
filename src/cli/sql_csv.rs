//! A CSV table's columns in `segscore sql`: whether its files start with a line of names,
//! found as DuckDB's sniffer finds it; the types inferred from every row of each local file by
//! one arrow reader (DataFusion's inference, which builds a reader per streamed chunk, for
//! files in a store); a column of numbers one of which has a leading zero read as text, as
//! DuckDB's sniffer reads it; the names of a file without a header line DuckDB's (`column0`,
//! ...), and a name its header gives twice made unique (`name_1`).

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::prelude::SessionContext;

use super::sql_calls::ReadCall;
use super::sql_formats::null_regex;
use crate::error::Result;

/// Whether a CSV table's files start with a line of column names, where the query does not
/// say (`header = ...`): as DuckDB's sniffer decides from the first file's first lines (`head`,
/// [`super::sql_formats::PEEK`] bytes at most), they do unless some column of the lines after
/// the first has a type other than text and every value of the first line fits its column's
/// type (`1,2,3` over numbers is a row, `id,score` over numbers a header, `name,city` over
/// text a header). DataFusion took every file's first line as names, so a file without one
/// lost its first row and was read with columns named by its values.
pub(super) fn sniffed_header(head: &[u8], separator: u8, read: &ReadCall) -> bool {
    use datafusion::arrow::datatypes::DataType;
    // Whole lines only: the head may end inside one.
    let lines = match head.iter().rposition(|&b| b == b'\n') {
        Some(end) => &head[..=end],
        None => head,
    };
    let infer = |header: bool, rows| Some(format(separator, read, header)?.infer_schema(lines, rows).ok()?.0);
    let (Some(first), Some(rest)) = (infer(false, Some(1)), infer(true, None)) else {
        return true;
    };
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::Null);
    let fits = |v: &DataType, column: &DataType| {
        v == column
            || *v == DataType::Null
            || text(column)
            || (*v == DataType::Int64 && *column == DataType::Float64)
            || (matches!(v, DataType::Date32 | DataType::Timestamp(..))
                && matches!(column, DataType::Timestamp(..)))
    };
    first.fields().len() != rest.fields().len()
        || rest.fields().iter().all(|f| text(f.data_type()))
        || !(first.fields().iter().zip(rest.fields())).all(|(v, c)| fits(v.data_type(), c.data_type()))
}

/// arrow's CSV format for a table's files, as the query reads them; `None` where its `nullstr`
/// makes no regular expression.
fn format(separator: u8, read: &ReadCall, header: bool) -> Option<datafusion::arrow::csv::reader::Format> {
    let mut format = datafusion::arrow::csv::reader::Format::default()
        .with_header(header)
        .with_delimiter(separator)
        .with_quote(read.quote.unwrap_or(b'"'));
    if let Some(escape) = read.escape {
        format = format.with_escape(escape);
    }
    if let Some(nulls) = null_regex(&read.nulls) {
        format = format.with_null_regex(regex::Regex::new(&nulls).ok()?);
    }
    Some(format)
}

/// `schema`'s columns named as DuckDB names a CSV file's: without a header line `column0`,
/// `column1`, ... (`column00` ... where there are 11 to 100), with one each name once, a name
/// given twice taking `_1`, `_2` (DataFusion kept the name twice, and merged such columns into
/// one: "incorrect number of fields").
pub(super) fn named(schema: &Schema, header: bool) -> Schema {
    if !header {
        let width = schema.fields().len().saturating_sub(1).to_string().len();
        let fields: Vec<_> = (schema.fields().iter().enumerate())
            .map(|(i, f)| f.as_ref().clone().with_name(format!("column{i:0width$}")))
            .collect();
        return Schema::new_with_metadata(fields, schema.metadata().clone());
    }
    match segscore_plan::names::unique_schema(&Arc::new(schema.clone())) {
        Some(unique) => unique.as_ref().clone(),
        None => schema.clone(),
    }
}

/// The columns of local CSV `files`, each file's inferred by arrow's reader from every row, as
/// DataFusion infers them, named ([`named`]) and merged as DataFusion merges them; `None`
/// (DataFusion infers them) for a file in a store, or one the reader refuses (its error is
/// DataFusion's to give). The reader skips a byte order mark, as DataFusion's does.
/// DataFusion's inference built a new reader for each chunk of the file it streamed: 1.2 s of a
/// 1M-row file's 1.4 s query, 0.3 s in one.
pub(super) fn csv_schema(
    files: &[PathBuf],
    compression: FileCompressionType,
    separator: u8,
    read: &ReadCall,
    header: bool,
) -> Option<Schema> {
    let mut schemas = Vec::with_capacity(files.len());
    for file in files {
        if crate::store::remote(file).is_some() {
            return None;
        }
        let text = compression.convert_read(std::fs::File::open(file).ok()?).ok()?;
        let (schema, _) = format(separator, read, header)?
            .infer_schema(std::io::BufReader::with_capacity(1 << 20, text), None)
            .ok()?;
        schemas.push(named(&schema, header));
    }
    Schema::try_merge(schemas).ok()
}

/// `config` (CSV files, their columns inferred) with each column of numbers one of which has a
/// leading zero (`007`, `0042`: an id, a zip code) read as text, as DuckDB's sniffer reads it:
/// DataFusion's inference made it a number, so `007` was 7 and a join on the id found nothing.
/// A sign (`-01`), a lone `0` and `0.5` keep the column a number, as in DuckDB. One pass over
/// the numeric columns as text, where there are any.
pub(super) async fn zero_padded_as_text(
    ctx: &SessionContext,
    config: datafusion::datasource::listing::ListingTableConfig,
) -> Result<datafusion::datasource::listing::ListingTableConfig> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::Column;
    use datafusion::datasource::listing::ListingTable;
    use datafusion::functions::expr_fn::regexp_like;
    use datafusion::functions_aggregate::expr_fn::bool_or;
    use datafusion::prelude::{lit, Expr};
    let Some(typed) = config.file_schema.clone() else {
        return Ok(config);
    };
    let numbers: Vec<&Field> = (typed.fields().iter())
        .filter(|f| f.data_type().is_numeric())
        .map(|f| f.as_ref())
        .collect();
    if numbers.is_empty() {
        return Ok(config);
    }
    let text = Schema::new(
        (typed.fields().iter())
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let raw = ListingTable::try_new(config.clone().with_schema(Arc::new(text)))?;
    let padded = (numbers.iter()).map(|f| {
        let column = Expr::Column(Column::new_unqualified(f.name()));
        bool_or(regexp_like(column, lit("^0[0-9]"), None))
    });
    let df = ctx
        .read_table(Arc::new(raw))?
        .aggregate(vec![], padded.collect())?;
    let batches = segscore_plan::collect(df).await?;
    let Some(row) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(config);
    };
    let texts: Vec<&str> = (numbers.iter().enumerate())
        .filter(|&(i, _)| {
            let any = row.column(i).as_boolean();
            any.is_valid(0) && any.value(0)
        })
        .map(|(_, f)| f.name().as_str())
        .collect();
    if texts.is_empty() {
        return Ok(config);
    }
    let fields: Vec<Field> = (typed.fields().iter())
        .map(|f| match texts.contains(&f.name().as_str()) {
            true => Field::new(f.name(), DataType::Utf8, true),
            false => f.as_ref().clone(),
        })
        .collect();
    Ok(config.with_schema(Arc::new(Schema::new(fields))))
}
