//! Diagnosis after a failure, and the key checks by SQL: the input file a reader error came
//! from, the first row a model-output error comes from, the input rows a row-level error names
//! by key, and the duplicate-key check and generation count for rows that did not come out in
//! key order.

use std::path::PathBuf;

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::engine::keys::cell;
use crate::engine::memory_error;
use crate::engine::query::{query, u64_col};
use crate::error::{Error, Result};
use crate::pipeline::config::JobConfig;
use crate::pipeline::prepare::Prepared;
use crate::source;

/// The error a failed shard reports: DataFusion running out of `--memory-limit` as the clear
/// memory error, a reader error with the file it came from, a model-output error with the
/// first row that gives it, a row-level error with the input rows that hold its key
/// ([`with_rows`]); anything else as it is.
pub async fn explain(e: Error, cfg: &JobConfig, p: &Prepared) -> Error {
    match memory_error(e, cfg.memory_limit) {
        e @ (Error::InvalidValue { .. }
        | Error::DuplicateSegment { .. }
        | Error::NotSorted { .. }
        | Error::OutsideKeyRange { .. }) => with_rows(e, cfg, p).await,
        e @ Error::MemoryLimit { .. } => e,
        // The readers' errors do not say which file: find it. A reader's panic too: arrow's
        // Parquet decoder panics on some corrupt pages.
        e @ (Error::Arrow(_) | Error::Parquet(_) | Error::DataFusion(_)) => named_file(e, p).await,
        e @ Error::Panicked { .. } if e.panicked_in_a_reader() => named_file(e, p).await,
        // A model-output error came from a batch of rows: name the first row that gives it.
        Error::ModelBinding { model, reason } => {
            let at = first_row_failing_the_model(p, cfg).await;
            Error::ModelBinding {
                model,
                reason: match at {
                    Some((g, s)) => format!("{reason} (first at generation_id={g}, segment_index={s})"),
                    None => reason,
                },
            }
        }
        other => other,
    }
}

/// A row-level error with the input rows that hold its key ([`source::locate`]): the row a
/// value error or an out-of-order row names, both rows of a duplicate, the first two rows of a
/// generation read outside its key range. As it is when none is found (a key from a hive
/// folder, an input too large to search), or for any other error.
pub async fn with_rows(e: Error, cfg: &JobConfig, p: &Prepared) -> Error {
    let (generation_id, segment_index, most) = match &e {
        Error::InvalidValue {
            generation_id,
            segment_index,
            ..
        }
        | Error::NotSorted {
            generation_id,
            segment_index,
            ..
        } => (generation_id, Some(segment_index), 1),
        Error::DuplicateSegment {
            generation_id,
            segment_index,
        } => (generation_id, Some(segment_index), 2),
        Error::OutsideKeyRange { generation_id, .. } => (generation_id, None, 2),
        _ => return e,
    };
    let key = source::locate::KeyText {
        generation_id: generation_id.clone(),
        segment_index: segment_index.cloned(),
    };
    let files = p.inputs.files.clone();
    let (gid, seg) = (
        cfg.columns.generation_id.clone(),
        cfg.columns.segment_index.clone(),
    );
    let started = std::time::Instant::now();
    let found = tokio::task::spawn_blocking(move || source::locate::locate(&files, &gid, &seg, &key, most))
        .await
        .unwrap_or_default();
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        rows = found.len(),
        "input rows of the failing row's key searched"
    );
    match source::locate::describe(&found) {
        Some(rows) => Error::AtRows {
            error: Box::new(e),
            rows,
        },
        None => e,
    }
}

/// The error of the first input file that cannot be read whole, else `e`.
async fn named_file(e: Error, p: &Prepared) -> Error {
    match find_unreadable(p).await {
        Some((path, reason)) => Error::NotParquet { path, reason },
        None => e,
    }
}

/// The first input file that cannot be read whole, and why ([`first_unreadable`] over the
/// job's inputs).
async fn find_unreadable(p: &Prepared) -> Option<(PathBuf, String)> {
    let files: Vec<PathBuf> = p.inputs.files.iter().map(|f| f.path.clone()).collect();
    first_unreadable(&p.ctx, &files).await
}

/// The first of `files` that cannot be read whole, and why: each scanned alone, in a task of
/// its own so that a reader's panic names the file too (only after a scan failed with an
/// error that names no file: the job's, `segscore sql`'s).
pub async fn first_unreadable(ctx: &SessionContext, files: &[PathBuf]) -> Option<(PathBuf, String)> {
    for f in files {
        let (ctx, file) = (ctx.clone(), f.clone());
        let scan = tokio::spawn(crate::panics::Quiet(Box::pin(async move {
            let table =
                crate::engine::tables::parquet_table(&ctx, std::slice::from_ref(&file), &[], &[]).await?;
            let mut stream = segscore_plan::execute_stream(ctx.read_table(table)?).await?;
            while let Some(batch) = stream.next().await {
                batch?;
            }
            Ok::<_, Error>(())
        })));
        match scan.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Some((f.clone(), e.to_string())),
            Err(e) => match Error::from_join("the scan", e) {
                Error::Panicked { message, .. } => {
                    return Some((f.clone(), format!("the Parquet reader panicked on it: {message}")));
                }
                other => return Some((f.clone(), other.to_string())),
            },
        }
    }
    None
}

/// Rows the model is run on one by one, at most, to name the row of a model-output error.
const MODEL_ERROR_SEARCH_ROWS: usize = 10_000;

/// The key of the first input row (in file order, among the first
/// [`MODEL_ERROR_SEARCH_ROWS`]) on which the model alone fails: after a model-output error
/// from a batch of rows.
async fn first_row_failing_the_model(p: &Prepared, cfg: &JobConfig) -> Option<(String, String)> {
    source::register_view(&p.ctx, &cfg.columns, &p.carried, None)
        .await
        .ok()?;
    let df = segscore_plan::sql(
        &p.ctx,
        "SELECT generation_id, segment_index, input_ids, token_type_ids FROM generations",
    )
    .await
    .ok()?;
    let mut stream = segscore_plan::execute_stream(df).await.ok()?;
    let mut seen = 0;
    while let Some(Ok(batch)) = stream.next().await {
        for row in 0..batch.num_rows() {
            let ids = batch.column(2).slice(row, 1);
            let types = batch.column(3).slice(row, 1);
            let types = (types.data_type() != &DataType::Null).then_some(types);
            let failed = tokio::task::block_in_place(|| {
                matches!(
                    p.model.predict(ids.as_ref(), types.as_deref()),
                    Err(Error::ModelBinding { .. })
                )
            });
            if failed {
                return Some((cell(batch.column(0), row), cell(batch.column(1), row)));
            }
            seen += 1;
            if seen >= MODEL_ERROR_SEARCH_ROWS {
                return None;
            }
        }
    }
    None
}

/// Fails on a duplicate (generation_id, segment_index) and counts the generations, by SQL
/// over the input: for output that did not come out in key order.
pub async fn check_keys_by_sql(ctx: &SessionContext) -> Result<u64> {
    if let Some((generation_id, segment_index)) =
        crate::engine::keys::first_duplicate(ctx, "generations").await?
    {
        return Err(Error::DuplicateSegment {
            generation_id,
            segment_index,
        });
    }
    count_generations(ctx).await
}

async fn count_generations(ctx: &SessionContext) -> Result<u64> {
    let counted = query(ctx, "SELECT COUNT(DISTINCT generation_id) AS n FROM generations").await?;
    Ok(u64_col(&counted, "n")?.first().copied().unwrap_or(0))
}
