//! A segscore output directory as tables: `segments` (with `base_score` 0.0 when the run had
//! no `--base-score-col`), a sample of it (`segments_sample`), and `generations` and
//! `rejected` where written, optionally under a schema (`NAME.segments`).

use std::path::Path;
use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::prelude::{ident, lit, SessionContext};

use crate::contract::OUTPUT_COLUMNS;
use crate::engine::footer::{metadata_declares_order, read_stamped_footers};
use crate::engine::tables::{parquet_table, parquet_table_read};
use crate::error::{Error, Result};
use crate::sink::committed::{output_file, output_parts};

/// Registers a segscore output directory's tables: `segments`, and `generations` and
/// `rejected` where present; under the schema `schema` (`schema.segments`) if given. Returns
/// the names registered.
pub async fn register_output(ctx: &SessionContext, dir: &Path, schema: Option<&str>) -> Result<Vec<String>> {
    let segments = output_parts(dir, "segments")?;
    if segments.is_empty() {
        return Err(Error::Usage(format!(
            "{}: not a segscore output directory (no segments/part-*.parquet)",
            dir.display()
        )));
    }
    if let Some(s) = schema {
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| Error::Internal("no default catalog".into()))?;
        catalog.register_schema(s, Arc::new(MemorySchemaProvider::new()))?;
    }
    let name = |t: &str| match schema {
        Some(s) => TableReference::partial(s.to_string(), t.to_string()),
        None => TableReference::bare(t.to_string()),
    };
    let mut registered = Vec::new();
    // Part files a run wrote in key order say so in their footers; the aggregation by
    // generation then streams instead of holding every generation at once.
    let footers = read_stamped_footers(&segments)?;
    let sorted = footers
        .iter()
        .all(|(m, _)| metadata_declares_order(m.metadata(), &["generation_id", "segment_index"]));
    let rows: u64 = footers
        .iter()
        .map(|(m, _)| m.metadata().file_metadata().num_rows().max(0) as u64)
        .sum();
    if sorted {
        // Sorted files can only be read in order if every chain of non-overlapping files gets
        // its own partition; with fewer partitions DataFusion drops the order, and grouping by
        // generation then holds every generation at once.
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        options.execution.target_partitions = options.execution.target_partitions.max(segments.len());
    }
    let keys: &[&str] = if sorted {
        &["generation_id", "segment_index"]
    } else {
        &[]
    };
    // The result columns, scores and targets of a run are checked finite before they are written.
    let mut trusted: Vec<&str> = OUTPUT_COLUMNS.to_vec();
    trusted.extend(["cumulative_score", "base_score"]);
    let table = parquet_table_read(ctx, &segments, &footers, keys, &trusted).await?;
    let mut df = ctx.read_table(Arc::clone(&table))?;
    if table.schema().index_of("base_score").is_err() {
        df = df.with_column("base_score", lit(0.0f64))?;
    }
    ctx.register_table(name("segments"), df.clone().into_view())?;
    registered.push(name("segments").to_string());
    // The segments whose key hashes to 0 modulo the stride (all up to SAMPLE_SEGMENTS): the
    // metrics that must hold every value at once read this, so memory stays bounded. The
    // stride is the run's (summary.json), else one from the rows.
    let recorded = output_file(dir, "summary.json")
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["overall_sample_stride"].as_u64());
    let stride = recorded.unwrap_or_else(|| crate::evaluate::stream::sample_stride(rows));
    let sample = df.filter(crate::shard::sample_udf().call(vec![
        ident("generation_id"),
        ident("segment_index"),
        lit(stride as i64),
    ]))?;
    ctx.register_table(name("segments_sample"), sample.into_view())?;
    registered.push(name("segments_sample").to_string());
    // Per-generation metrics are finite or NULL; rejected rows may hold NaN.
    for (t, trusted) in [("generations", &["*"][..]), ("rejected", &[][..])] {
        let files = output_parts(dir, t)?;
        if !files.is_empty() {
            ctx.register_table(name(t), parquet_table(ctx, &files, &[], trusted).await?)?;
            registered.push(name(t).to_string());
        }
    }
    Ok(registered)
}
