//! Delta Lake tables: a folder (or `s3://` prefix) with a `_delta_log/` is read as the table's
//! live files at its latest version, as the log lists them, with delta-kernel-rs. Reading the
//! folder itself would count again the rows of files the table has removed or replaced (an
//! overwrite, a compaction) until they are vacuumed. A partitioned table (its values in the log
//! and its folder names, not its files) is read as a hive folder where the folder holds no other
//! Parquet file. What the log says that plain Parquet files cannot carry is refused, naming the
//! table: deletion vectors (rows that DELETE, UPDATE or MERGE removed from a file, which the file
//! still holds) and column mapping (columns renamed in the log, not in the files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use delta_kernel::scan::state::ScanFile;
use delta_kernel::table_features::ColumnMappingMode;
use delta_kernel::Snapshot;
use delta_kernel_default_engine::DefaultEngine;

use crate::error::{Error, Result};

/// Whether `pattern` (a path or an `s3://` prefix, not a glob) is a Delta Lake table's root:
/// it holds a `_delta_log/` folder with objects in it. A name ending in `.parquet` is a file,
/// not asked about (in a bucket that would be a request for each of many objects).
pub fn is_table(pattern: &str) -> Result<bool> {
    if pattern.contains(['*', '?', '[']) || pattern.to_ascii_lowercase().ends_with(".parquet") {
        return Ok(false);
    }
    if crate::store::is_remote(pattern) {
        let log = format!("{}/_delta_log/", pattern.trim_end_matches('/'));
        let loc = crate::store::Location::parse(&log)?;
        // A listing that fails (no such bucket) says no: the input's own listing names why.
        return Ok(!loc.key.as_ref().is_empty() && loc.list().is_ok_and(|objects| !objects.is_empty()));
    }
    Ok(Path::new(pattern).join("_delta_log").is_dir())
}

/// The live files of the Delta Lake table at `root` (a folder or an `s3://` prefix), at its
/// latest version: absolute paths, or object URLs. An error naming the table when it cannot be
/// read, or holds what Parquet files alone cannot give (deletion vectors, column mapping, a
/// partitioned table's folder holding other Parquet files).
pub fn live_files(root: &str) -> Result<Vec<PathBuf>> {
    let (url, store): (url::Url, Arc<dyn object_store::ObjectStore>) = if crate::store::is_remote(root) {
        let prefix = format!("{}/", root.trim_end_matches('/'));
        let loc = crate::store::Location::parse(&prefix)?;
        // The prefix's key as it is (a `%` in it is that character).
        (crate::store::table_url(&prefix, true)?, loc.store)
    } else {
        let abs = crate::engine::tables::absolute(Path::new(root))?;
        let url = url::Url::from_directory_path(&abs)
            .map_err(|()| Error::Usage(format!("input {}: not a folder path", abs.display())))?;
        (url, Arc::new(object_store::local::LocalFileSystem::new()))
    };
    let fail = |what: &str, e: delta_kernel::KernelError| {
        Error::Usage(format!(
            "input {root} is a Delta Lake table (its log: {root}/_delta_log/), and {what}: {e}"
        ))
    };
    let engine = DefaultEngine::builder(store).build();
    let snapshot = Snapshot::builder_for(url.as_str())
        .build(&engine)
        .map_err(|e| fail("its log cannot be read", e))?;
    let version = snapshot.version();
    let refuse = |why: String| {
        Error::Usage(format!(
            "input {root} is a Delta Lake table (version {version}) {why}; segscore reads a Delta table's current files as plain Parquet: write the table out as plain Parquet (Spark: `df.write.parquet(...)`; delta-rs: `DeltaTable(path).to_pyarrow_table()`)"
        ))
    };
    let mode = match snapshot.table_properties().column_mapping_mode {
        Some(ColumnMappingMode::Id) => Some("id"),
        Some(ColumnMappingMode::Name) => Some("name"),
        _ => None,
    };
    if let Some(mode) = mode {
        return Err(refuse(format!(
            "with column mapping (`delta.columnMapping.mode` = {mode}): its files' columns are not named as the table's"
        )));
    }
    let scan = snapshot
        .scan_builder()
        .build()
        .map_err(|e| fail("its files cannot be listed", e))?;
    let mut files: Vec<ScanFile> = Vec::new();
    let listed = scan
        .scan_metadata(&engine)
        .map_err(|e| fail("its files cannot be listed", e))?;
    for meta in listed {
        let meta = meta.map_err(|e| fail("its files cannot be listed", e))?;
        files = meta
            .visit_scan_files(files, |files: &mut Vec<ScanFile>, f: ScanFile| files.push(f))
            .map_err(|e| fail("its files cannot be listed", e))?;
    }
    if let Some(f) = files.iter().find(|f| f.dv_info.has_vector()) {
        return Err(refuse(format!(
            "whose file {} has a deletion vector (rows a DELETE, UPDATE or MERGE removed, which the file still holds)",
            f.path
        )));
    }
    let mut paths = Vec::with_capacity(files.len());
    for f in &files {
        let file = url
            .join(&f.path)
            .map_err(|e| Error::Usage(format!("input {root}: the log's file {}: {e}", f.path)))?;
        // The log's paths are URIs, percent-encoded (delta-rs writes a partition value `x y` in a
        // folder `day=x%20y`, and that folder in the log as `day=x%2520y`): decoded once, as a
        // path or as an object's key.
        let unreadable = |why: &str| Error::Usage(format!("input {root}: the log's file {}: {why}", f.path));
        paths.push(match file.scheme() {
            "file" => file.to_file_path().map_err(|()| unreadable("not a path"))?,
            _ => {
                let key = object_store::path::Path::from_url_path(file.path())
                    .map_err(|e| unreadable(&e.to_string()))?;
                let bucket = file.host_str().unwrap_or_default();
                PathBuf::from(format!("{}{bucket}/{key}", crate::store::SCHEME))
            }
        });
    }
    paths.sort();
    if let Some(f) = files.iter().find(|f| !f.partition_values.is_empty()) {
        partitioned(root, &url, f, &paths).map_err(refuse)?;
    }
    tracing::info!(table = %root, version, files = paths.len(), "a Delta Lake table: its current files, as its log lists them");
    Ok(paths)
}

/// A partitioned table's values are in its log and its folder names (`day=1/`), not in its
/// files: it is read as its folder (hive partitioning), which takes every Parquet file under it.
/// Why not, where the folder holds a Parquet file the table does not (a removed or replaced file
/// not yet vacuumed, a checkpoint in its log), or a live file lies outside `key=value` folders
/// of its partition columns (`file` is one live file, `live` all, sorted).
fn partitioned(
    root: &str,
    url: &url::Url,
    file: &ScanFile,
    live: &[PathBuf],
) -> std::result::Result<(), String> {
    let mut cols: Vec<&String> = file.partition_values.keys().collect();
    cols.sort();
    let named = cols
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let folder = match crate::store::is_remote(root) {
        true => PathBuf::from(root.trim_end_matches('/')),
        false => url.to_file_path().unwrap_or_else(|()| PathBuf::from(root)),
    };
    let all = super::hive::parquet_files_under(&folder).map_err(|e| e.to_string())?;
    let others: Vec<&PathBuf> = all.iter().filter(|f| live.binary_search(f).is_err()).collect();
    if let Some(other) = others.first() {
        return Err(format!(
            "partitioned by {named} (values in its log and its folder names, not its files), read as its folder; but the folder holds Parquet files the table does not ({} of {}, such as {}: files it removed or replaced, not yet vacuumed (VACUUM removes them), or a checkpoint of its log)",
            others.len(),
            all.len(),
            other.display()
        ));
    }
    for f in live {
        let mut keys: Vec<String> = super::hive::levels(&folder, f)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        if keys.iter().collect::<Vec<_>>() != cols {
            return Err(format!(
                "partitioned by {named}, but its file {} is not in `key=value` folders of those columns",
                f.display()
            ));
        }
    }
    Ok(())
}
