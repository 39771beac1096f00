//! Sink: the output directory contract and crash-safe writes.
//!
//! Everything a run writes goes to a hidden staging folder inside the output directory
//! (`.segscore-staging-<pid>-<time>/`), each Parquet part under a `.inprogress` name until it
//! is closed. Only when the whole job has succeeded are the staged outputs moved into place,
//! `summary.json` written by rename, and `_SUCCESS` written last. A crashed or failed run
//! therefore never leaves a file that looks complete, and an `--overwrite` run that fails
//! leaves the previous complete output as it was.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};

/// The marker written last by a successful run.
pub const SUCCESS: &str = "_SUCCESS";
/// Prefix of the staging folder of a run in progress.
pub const STAGING_PREFIX: &str = ".segscore-staging-";
/// What a run writes at the top of its output directory; `--overwrite` replaces these and
/// leaves anything else alone.
pub const OUTPUTS: [&str; 6] = [
    "segments",
    "generations",
    "rejected",
    "summary.json",
    "report.html",
    SUCCESS,
];

/// An output directory being written.
#[derive(Debug)]
pub struct OutputDir {
    root: PathBuf,
    staging: PathBuf,
    created_root: bool,
    done: bool,
}

fn out_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl OutputDir {
    /// Refuses a non-empty directory unless `overwrite`; creates the directory and a staging
    /// folder inside it. Nothing already there is touched until [`OutputDir::commit`].
    pub fn prepare(root: &Path, overwrite: bool) -> Result<Self> {
        let mut created_root = false;
        if root.exists() {
            if !root.is_dir() {
                return Err(out_err(root, "exists and is not a directory"));
            }
            let mut entries: Vec<String> = fs::read_dir(root)
                .map_err(|e| Error::io(root, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            entries.sort();
            if !entries.is_empty() && !overwrite {
                let shown: Vec<_> = entries.iter().take(5).cloned().collect();
                return Err(out_err(
                    root,
                    format!(
                        "directory is not empty (holds {}{}); pass --overwrite to replace segscore's outputs in it, or choose another --output",
                        shown.join(", "),
                        if entries.len() > 5 { ", ..." } else { "" }
                    ),
                ));
            }
            // Left behind by runs that were killed: never complete, safe to remove.
            for e in entries.iter().filter(|e| e.starts_with(STAGING_PREFIX)) {
                let _ = fs::remove_dir_all(root.join(e));
            }
        } else {
            fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
            created_root = true;
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let staging = root.join(format!("{STAGING_PREFIX}{}-{stamp}", std::process::id()));
        fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(OutputDir {
            root: root.to_path_buf(),
            staging,
            created_root,
            done: false,
        })
    }

    /// The final output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The staging folder (hidden, inside the output directory) this run writes into.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// A folder inside staging, created if needed (e.g. "segments").
    pub fn staged(&self, name: &str) -> Result<PathBuf> {
        let p = self.staging.join(name);
        fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }

    /// Moves the staged outputs into place, then writes `files` (name, bytes) atomically,
    /// then `_SUCCESS`. Outputs of an earlier run that this run did not produce again are
    /// removed, so the directory holds one run's outputs only.
    pub fn commit(mut self, files: &[(&str, Vec<u8>)]) -> Result<()> {
        let marker = self.root.join(SUCCESS);
        if marker.exists() {
            fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        }
        let staged: Vec<std::ffi::OsString> = fs::read_dir(&self.staging)
            .map_err(|e| Error::io(&self.staging, e))?
            .map(|e| e.map(|e| e.file_name()).map_err(|e| Error::io(&self.staging, e)))
            .collect::<Result<_>>()?;
        let trash = self.staging.join(".replaced");
        for name in &staged {
            let dest = self.root.join(name);
            if dest.exists() {
                fs::create_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
                fs::rename(&dest, trash.join(name)).map_err(|e| Error::io(&dest, e))?;
            }
            fs::rename(self.staging.join(name), &dest).map_err(|e| Error::io(&dest, e))?;
        }
        for name in OUTPUTS {
            let p = self.root.join(name);
            let produced = staged.iter().any(|s| s == name) || files.iter().any(|(f, _)| *f == name);
            if name != SUCCESS && !produced && p.exists() {
                remove_path(&p)?;
            }
        }
        for (name, bytes) in files {
            write_atomic(&self.root.join(name), bytes)?;
        }
        let _ = fs::remove_dir_all(&self.staging);
        write_atomic(&marker, b"")?;
        sync_dir(&self.root);
        self.done = true;
        Ok(())
    }

    /// Removes the staging folder, and the output directory itself if this run created it
    /// and it is empty.
    pub fn abort(mut self) {
        self.cleanup();
        self.done = true;
    }

    fn cleanup(&self) {
        let _ = fs::remove_dir_all(&self.staging);
        if self.created_root {
            let _ = fs::remove_dir(&self.root);
        }
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.done {
            self.cleanup();
        }
    }
}

/// Removes this process's staging folders in `root` (after an abandoned run).
pub fn remove_own_staging(root: &Path) {
    let prefix = format!("{STAGING_PREFIX}{}-", std::process::id());
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn remove_path(p: &Path) -> Result<()> {
    if p.is_dir() {
        fs::remove_dir_all(p).map_err(|e| Error::io(p, e))
    } else {
        fs::remove_file(p).map_err(|e| Error::io(p, e))
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes a file under a temporary name, syncs it, and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = inprogress_name(path);
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `dir/.name.inprogress`: where a file is written before it is renamed to `dir/name`.
pub fn inprogress_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.inprogress"))
}

/// Parquet writer settings shared by every file segscore writes: zstd, row groups of 128Ki
/// rows, the run's key-value metadata, and `sorting_columns` when the file is sorted.
/// Float columns are written without dictionary encoding: their values are nearly all
/// distinct, so a dictionary only costs time before the writer falls back.
pub fn writer_properties(
    schema: &datafusion::arrow::datatypes::Schema,
    metadata: &[(String, String)],
    sorting: Option<Vec<SortingColumn>>,
) -> WriterProperties {
    let mut builder = WriterProperties::builder();
    for f in schema.fields() {
        if f.data_type().is_floating() {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
        }
    }
    builder
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_sorting_columns(sorting)
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ))
        .build()
}

/// One Parquet part file being written under its `.inprogress` name.
pub struct PartWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl PartWriter {
    /// Creates `dir/name` (written as `dir/.name.inprogress` until [`PartWriter::close`]).
    pub fn create(dir: &Path, name: &str, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let path = dir.join(name);
        let tmp = inprogress_name(&path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let writer = ArrowWriter::try_new(file, schema, Some(props))?;
        Ok(PartWriter {
            path,
            tmp,
            writer,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the file, syncs it and renames it to its final name.
    pub fn close(self) -> Result<PathBuf> {
        let file = self.writer.into_inner()?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path)
    }
}

/// Writes one stream of batches as part files of at most `max_rows` rows each, named
/// `part-NNNNN.parquet` from a counter shared by all writers of a run. Files claim the
/// `sorting` order until [`RollingWriter::mark_unsorted`] is called; the file open then is
/// closed, and later files make no claim.
pub struct RollingWriter {
    dir: PathBuf,
    schema: SchemaRef,
    metadata: Arc<Vec<(String, String)>>,
    sorting: Option<Vec<SortingColumn>>,
    max_rows: u64,
    counter: Arc<AtomicUsize>,
    current: Option<PartWriter>,
    closed: Vec<PathBuf>,
}

impl RollingWriter {
    /// A writer into `dir`; nothing is created before the first row.
    pub fn new(
        dir: PathBuf,
        schema: SchemaRef,
        metadata: Arc<Vec<(String, String)>>,
        sorting: Option<Vec<SortingColumn>>,
        max_rows: u64,
        counter: Arc<AtomicUsize>,
    ) -> Self {
        RollingWriter {
            dir,
            schema,
            metadata,
            sorting,
            max_rows: max_rows.max(1),
            counter,
            current: None,
            closed: Vec::new(),
        }
    }

    /// Appends a batch, starting new files as files fill up.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.current.as_ref().is_some_and(|w| w.rows() >= self.max_rows) {
                self.close_current()?;
            }
            let w = match &mut self.current {
                Some(w) => w,
                None => {
                    let n = self.counter.fetch_add(1, Ordering::Relaxed);
                    let props = writer_properties(&self.schema, &self.metadata, self.sorting.clone());
                    self.current.insert(PartWriter::create(
                        &self.dir,
                        &format!("part-{n:05}.parquet"),
                        Arc::clone(&self.schema),
                        props,
                    )?)
                }
            };
            let room = (self.max_rows - w.rows()) as usize;
            let take = room.min(batch.num_rows() - offset);
            w.write(&batch.slice(offset, take))?;
            offset += take;
        }
        Ok(())
    }

    /// The rows from now on may be out of order: close the current (sorted) file, and let
    /// later files make no sort-order claim.
    pub fn mark_unsorted(&mut self) -> Result<()> {
        if self.sorting.take().is_some() {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            self.closed.push(w.close()?);
        }
        Ok(())
    }

    /// Closes the last file; returns every file written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.closed))
    }
}
