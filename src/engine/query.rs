//! Query helpers: run a query to one batch, read its columns as plain values, and take a
//! schema's nullability from another's.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// A column of a query result as DOUBLE, by name (NULL as None).
pub fn f64_col(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("query result lacks column {name}")))?;
    let col = cast(col, &DataType::Float64)?;
    Ok(col.as_primitive::<Float64Type>().iter().collect())
}

/// A column of a query result as non-negative integers, by name (NULL and negatives as 0).
pub fn u64_col(batch: &RecordBatch, name: &str) -> Result<Vec<u64>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("query result lacks column {name}")))?;
    let col = cast(col, &DataType::Int64)?;
    Ok(col
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0).max(0) as u64)
        .collect())
}

/// Runs a query and concatenates its result into one batch.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = segscore_plan::sql(ctx, sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = segscore_plan::collect(df).await?;
    Ok(datafusion::arrow::compute::concat_batches(&schema, &batches)?)
}

/// `schema` with each field that `like` has too as nullable as it is there.
pub fn nullable_as(
    schema: &datafusion::arrow::datatypes::Schema,
    like: &datafusion::arrow::datatypes::Schema,
) -> datafusion::arrow::datatypes::Schema {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match like.field_with_name(f.name()) {
            Ok(l) => f.as_ref().clone().with_nullable(l.is_nullable()),
            Err(_) => f.as_ref().clone(),
        })
        .collect();
    datafusion::arrow::datatypes::Schema::new_with_metadata(fields, schema.metadata().clone())
}
