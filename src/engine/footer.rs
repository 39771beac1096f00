//! Parquet footers: read without panicking on corrupt input, and what segscore reads from
//! them (declared sort order, float statistics that DataFusion would misread).

use std::fs::File;
use std::path::PathBuf;

use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// Reads a Parquet footer and its embedded Arrow schema. A corrupt footer is an error, never a
/// panic: the Arrow schema decoder panics on some corrupt input (arrow 59: `not implemented:
/// Type <UNKNOWN ..> not supported`), so that panic is caught and reported as the reason.
pub fn read_footer<R>(reader: &R) -> std::result::Result<ArrowReaderMetadata, String>
where
    R: datafusion::parquet::file::reader::ChunkReader,
{
    let read = quietly(|| {
        // The page index too: DataFusion reads it, and a corrupt one should name the file.
        ArrowReaderMetadata::load(
            reader,
            ArrowReaderOptions::new()
                .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Optional),
        )
    });
    match read {
        Ok(Ok(meta)) => Ok(meta),
        Ok(Err(e)) => Err(e.to_string()),
        Err(what) => Err(format!("corrupt footer or embedded Arrow schema ({what})")),
    }
}
/// Whether some top-level float column (other than the `trusted` ones, known to hold no NaN;
/// `"*"` trusts all) of a file of two rows or more has statistics saying it holds one value
/// (min == max over the file). Parquet's min/max leave NaN out, and DataFusion 55 replaces a
/// column whose file statistics have min == max with that value, so a NaN among equal values
/// would be read as that value. Scans of such files run without statistics.
pub fn float_stats_constant(pq: &ParquetMetaData, trusted: &[&str]) -> bool {
    if pq.file_metadata().num_rows() < 2 || trusted.contains(&"*") {
        return false;
    }
    use datafusion::parquet::basic::Type as Physical;
    use datafusion::parquet::file::statistics::Statistics as S;
    let leaves = pq.file_metadata().schema_descr().columns();
    leaves.iter().enumerate().any(|(i, leaf)| {
        if leaf.path().parts().len() != 1
            || !matches!(leaf.physical_type(), Physical::FLOAT | Physical::DOUBLE)
            || trusted.contains(&leaf.path().parts()[0].as_str())
        {
            return false;
        }
        let mut range: Option<(f64, f64)> = None;
        for rg in pq.row_groups() {
            let (lo, hi) = match rg.column(i).statistics() {
                Some(S::Float(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(a), Some(b)) => (*a as f64, *b as f64),
                    _ => return false,
                },
                Some(S::Double(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(a), Some(b)) => (*a, *b),
                    _ => return false,
                },
                _ => return false,
            };
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        range.is_some_and(|(a, b)| a == b)
    })
}

/// Stops the context's scans from using file statistics (DataFusion 55 reads these per
/// session, not per table): see [`float_stats_constant`].
pub fn distrust_statistics(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    if state.config().collect_statistics() {
        tracing::debug!("a float column's statistics look constant: scans do not use file statistics");
        state.config_mut().options_mut().execution.collect_statistics = false;
    }
}

/// Runs `f`, turning a panic into an error with its message (and no panic output).
pub fn quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    out.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the Parquet reader panicked".into())
    })
}

/// Reads every file's footer ([`read_footer`]: an unreadable one is an error naming the
/// file).
pub fn read_footers(paths: &[PathBuf]) -> Result<Vec<ArrowReaderMetadata>> {
    paths
        .iter()
        .map(|p| {
            let f = File::open(p).map_err(|e| Error::io(p, e))?;
            read_footer(&f).map_err(|reason| Error::NotParquet {
                path: p.clone(),
                reason,
            })
        })
        .collect()
}
/// Whether every row group's `sorting_columns` start with `keys`, all ascending.
pub fn metadata_declares_order(pq: &ParquetMetaData, keys: &[&str]) -> bool {
    let leaves = pq.file_metadata().schema_descr().columns();
    let leaf = |name: &str| {
        leaves
            .iter()
            .position(|c| c.path().parts().len() == 1 && c.path().parts()[0] == name)
    };
    let Some(idx) = keys.iter().map(|k| leaf(k)).collect::<Option<Vec<usize>>>() else {
        return false;
    };
    !pq.row_groups().is_empty()
        && pq.row_groups().iter().all(|rg| match rg.sorting_columns() {
            Some(sc) if sc.len() >= idx.len() => idx
                .iter()
                .zip(sc)
                .all(|(&i, c)| c.column_idx as usize == i && !c.descending),
            _ => false,
        })
}
