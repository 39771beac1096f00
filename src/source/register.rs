//! Registration: the input files as the table `input_files`, and the view `generations` that
//! gives the role columns their canonical names and carries every other column.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;

use crate::contract::{ColumnNames, EXECUTOR_COLUMN, OUTPUT_COLUMNS};
use crate::engine::ranges::key_range_table;
use crate::engine::tables::listing_table;
use crate::error::{Error, Result};
use crate::source::hive::Hive;
use crate::source::Inputs;

/// Double-quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Registers `input_files` and the `generations` view. Returns the carried column names (in
/// input order).
///
/// With `sorted`, each file is declared sorted by (generation id, segment index), so the
/// window runs streaming (no sort); DataFusion trusts that declaration, so the job checks the
/// order as rows flow.
pub async fn register(
    ctx: &SessionContext,
    inputs: &Inputs,
    cols: &ColumnNames,
    sorted: bool,
    hive: Option<&Hive>,
) -> Result<Vec<String>> {
    let keys = [cols.generation_id.as_str(), cols.segment_index.as_str()];
    let sort_keys: &[&str] = if sorted { &keys } else { &[] };
    // Files whose columns differ in width (pyarrow's and polars' in one folder) read as one
    // table with each column widened.
    let schema = inputs.schema.clone();
    let safe = inputs.statistics_safe();
    crate::engine::tables::seed_metadata_cache(
        ctx,
        inputs
            .files
            .iter()
            .filter_map(|f| Some((f.path.as_path(), f.stamp, f.footer.as_ref()?))),
    )?;
    let mut table: Arc<dyn TableProvider> = match hive {
        Some(h) => h.table(ctx, sort_keys, safe, schema).await?,
        None => Arc::new(
            listing_table(
                ctx,
                inputs.files.iter().map(|f| f.path.as_path()),
                sort_keys,
                safe,
                schema,
            )
            .await?,
        ),
    };
    let schema: SchemaRef = table.schema();
    if sorted && hive.is_none() {
        table = key_ranged(ctx, table, inputs, cols)?;
    }
    ctx.register_table("input_files", table)?;
    let carried = carried_columns(&schema, cols)?;
    register_view(ctx, cols, &carried, None).await?;
    Ok(carried)
}
/// `table` (sorted files) cut into pieces and key ranges, at most one per partition, where the
/// footers allow it ([`crate::engine::ranges`]); else `table` as it is.
fn key_ranged(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
    inputs: &Inputs,
    cols: &ColumnNames,
) -> Result<Arc<dyn TableProvider>> {
    let files: Vec<(&Path, &[_])> = inputs
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.key_ranges.as_slice()))
        .collect();
    let keys = vec![cols.generation_id.clone(), cols.segment_index.clone()];
    let footers = inputs.files.iter().map(|f| f.footer.clone()).collect();
    Ok(
        match key_range_table(ctx, Arc::clone(&table), &files, footers, keys)? {
            Some(ranged) => Arc::new(ranged),
            None => table,
        },
    )
}

/// (Re-)registers the `generations` view over `input_files`; with a `filter` (an SQL
/// predicate over the files' columns), only the rows it keeps (a shard's, say).
pub async fn register_view(
    ctx: &SessionContext,
    cols: &ColumnNames,
    carried: &[String],
    filter: Option<&str>,
) -> Result<()> {
    let files = ctx.table_provider("input_files").await?;
    let mut sql = generations_view_sql(
        cols,
        carried,
        &datafusion::catalog::TableProvider::schema(files.as_ref()),
    );
    if datafusion::execution::FunctionRegistry::udf(ctx, EXECUTOR_COLUMN).is_ok() {
        // A cluster's client: each row names the executor that read it (and, in the same
        // stage, scores it).
        sql = sql.replacen(
            " FROM input_files",
            &format!(", {EXECUTOR_COLUMN}() AS {EXECUTOR_COLUMN} FROM input_files"),
            1,
        );
    }
    if let Some(f) = filter {
        sql.push_str(&format!(" WHERE {f}"));
    }
    let view = segscore_plan::sql(ctx, &sql).await?.into_view();
    ctx.deregister_table("generations")?;
    ctx.register_table("generations", view)?;
    Ok(())
}

fn carried_columns(schema: &Schema, cols: &ColumnNames) -> Result<Vec<String>> {
    let role_names = cols.role_names();
    let view: Vec<&str> = view_items(cols).into_iter().map(|(_, name)| name).collect();
    let mut carried = Vec::new();
    for f in schema.fields() {
        let name = f.name();
        if role_names.iter().any(|r| r.0 == name.as_str()) {
            continue;
        }
        if view.contains(&name.as_str()) {
            return Err(Error::Usage(format!(
                "input column `{name}` would collide with the canonical column segscore gives a role column; rename it, or use it as that role's column"
            )));
        }
        if OUTPUT_COLUMNS.contains(&name.as_str()) {
            // A segscore output read back as input: this run computes these afresh.
            tracing::warn!(column = %name, "input column is replaced by this run's column of the same name");
            continue;
        }
        carried.push(name.clone());
    }
    Ok(carried)
}

/// The `generations` view's role columns: (expression over `input_files`, canonical name).
/// Token-id input gives `input_ids` and `token_type_ids`; text input `text`, and `prompt` with
/// `--prompt-col` (without, the prompt is empty and an input column named `prompt` is carried).
fn view_items(cols: &ColumnNames) -> Vec<(String, &'static str)> {
    let base = match &cols.base_score {
        Some(b) => format!("CAST({} AS DOUBLE)", quote_ident(b)),
        None => "CAST(0.0 AS DOUBLE)".to_string(),
    };
    let mut items = vec![
        (quote_ident(&cols.generation_id), "generation_id"),
        (quote_ident(&cols.segment_index), "segment_index"),
        (
            format!("CAST({} AS DOUBLE)", quote_ident(&cols.cumulative_score)),
            "cumulative_score",
        ),
    ];
    match &cols.text {
        Some(t) => {
            items.push((quote_ident(t), "text"));
            items.push((base, "base_score"));
            if let Some(p) = &cols.prompt {
                items.push((quote_ident(p), "prompt"));
            }
        }
        None => {
            items.push((quote_ident(&cols.input_ids), "input_ids"));
            items.push((base, "base_score"));
            items.push((
                match &cols.token_type_ids {
                    Some(t) => quote_ident(t),
                    None => "NULL".to_string(),
                },
                "token_type_ids",
            ));
        }
    }
    items
}

/// A 16-byte id (a UUID: DuckDB's and Spark's `FIXED_LEN_BYTE_ARRAY(16)`) as its canonical
/// text, `8-4-4-4-12` lowercase hex digits, as DuckDB's `uuid::VARCHAR` writes it: the text
/// keeps the bytes' order, and a null stays null.
fn uuid_text(expr: &str) -> String {
    let hex = format!("encode(arrow_cast({expr}, 'Binary'), 'hex')");
    [(1, 8), (9, 4), (13, 4), (17, 4), (21, 12)]
        .iter()
        .map(|(from, len)| format!("substr({hex}, {from}, {len})"))
        .collect::<Vec<_>>()
        .join(" || '-' || ")
}

fn generations_view_sql(cols: &ColumnNames, carried: &[String], files: &Schema) -> String {
    // Categorical (dictionary-encoded) columns are read by their values: keys, grouping and
    // sorting see the values, and the outputs carry the value type.
    let decoded = |name: &str, expr: String| match files.field_with_name(name).map(|f| f.data_type()) {
        Ok(DataType::Dictionary(_, v)) => format!("arrow_cast({expr}, '{v}')"),
        _ => expr,
    };
    let roles = cols.role_names();
    let mut items: Vec<String> = view_items(cols)
        .into_iter()
        .map(|(expr, name)| {
            let file_col = roles.iter().find(|r| r.1 == name).map(|r| r.0);
            let expr = match file_col {
                // A CAST of a dictionary casts its values: decode inside it.
                Some(c) => expr.replace(&quote_ident(c), &decoded(c, quote_ident(c))),
                None => expr,
            };
            let expr = match file_col.map(|c| {
                files
                    .field_with_name(c)
                    .map(|f| crate::engine::types::value_type(f.data_type()))
            }) {
                Some(Ok(DataType::FixedSizeBinary(16))) if name == "generation_id" => uuid_text(&expr),
                // A fixed-size list of ids (Hugging Face datasets' `Sequence(length=N)`), or a
                // list view (pyarrow's `list_view`), as the list the model reads (of uint64 ids
                // as they are: one past int64 is named by its value, not read as a null).
                Some(Ok(
                    DataType::FixedSizeList(f, _) | DataType::ListView(f) | DataType::LargeListView(f),
                )) if matches!(name, "input_ids" | "token_type_ids") => {
                    let item = match f.data_type() {
                        DataType::UInt64 => "BIGINT UNSIGNED",
                        _ => "BIGINT",
                    };
                    format!("CAST({expr} AS {item}[])")
                }
                _ => expr,
            };
            format!("{expr} AS {name}")
        })
        .collect();
    items.extend(
        carried
            .iter()
            .map(|c| format!("{} AS {}", decoded(c, quote_ident(c)), quote_ident(c))),
    );
    format!("SELECT {} FROM input_files", items.join(", "))
}
