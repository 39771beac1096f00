//! Sink: the output directory contract and crash-safe writes.
//!
//! Everything a run writes goes to a hidden work folder inside the output directory
//! (`.segscore-staging/`), each Parquet part under a `.inprogress` name until it is closed,
//! synced and renamed. Work is committed shard by shard (see [`crate::shard`]): a shard's
//! record is renamed into `shards/` after its files. When every shard is done, the summary is
//! written into the work folder, a `COMMITTING` marker names the outputs produced, the
//! outputs are renamed into place one by one, and `_SUCCESS` is written last. Killed at any
//! moment, the directory therefore holds either a complete output with `_SUCCESS`, or no
//! `_SUCCESS` and only whole files under final names; `--resume` picks up from the committed
//! shards (or finishes an interrupted commit), and an `--overwrite` run that fails leaves
//! the previous complete output as it was until its own commit.

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
/// The work folder of a run in progress (or interrupted), inside the output directory.
pub const WORK_DIR: &str = ".segscore-staging";
/// Prefix of the work folders of earlier segscore versions (`.segscore-staging-<pid>-<ns>`).
const OLD_STAGING_PREFIX: &str = ".segscore-staging-";
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
/// In the work folder: the job's description, checked by `--resume`.
pub const JOB_FILE: &str = "job.json";
/// In the work folder: the committed shards' records.
pub const SHARDS_DIR: &str = "shards";
/// In the work folder: the outputs being moved into place (their names, JSON).
const COMMITTING: &str = "COMMITTING";

/// Fault injection for the crash tests: when the environment variable `SEGSCORE_CRASH_AT`
/// names this point, the process aborts here, as a kill would stop it. Points:
/// `shard-committed` (after a shard's record), `commit-begun` (after the `COMMITTING`
/// marker), `commit-moved` (after the first output is moved into place).
pub fn crash_point(name: &str) {
    if std::env::var_os("SEGSCORE_CRASH_AT").is_some_and(|v| v == name) {
        eprintln!("SEGSCORE_CRASH_AT={name}: aborting");
        std::process::abort();
    }
}

/// What [`OutputDir::prepare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing of a run: a new run starts.
    Fresh,
    /// An interrupted run's work folder, kept for `--resume`.
    Interrupted,
    /// With `--resume`: a complete output and no interrupted work.
    Complete,
}

/// An output directory being written.
#[derive(Debug)]
pub struct OutputDir {
    root: PathBuf,
    work: PathBuf,
    created_root: bool,
    _lock: Option<File>,
    done: bool,
}

fn out_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Locks the work folder for this process (released when the process ends, however it ends).
fn lock(root: &Path, work: &Path) -> Result<File> {
    let f = File::open(work).map_err(|e| Error::io(work, e))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(out_err(
                root,
                format!("another segscore run is writing into it (its {WORK_DIR} folder is locked)"),
            ));
        }
    }
    Ok(f)
}

impl OutputDir {
    /// Opens the output directory for a run.
    ///
    /// - absent: created, with a new work folder;
    /// - holding an interrupted run's work folder: kept with `resume`, removed with
    ///   `overwrite`, an error otherwise;
    /// - holding other files: an error unless `overwrite` (or `resume`, when it holds a
    ///   complete output: [`Found::Complete`]).
    ///
    /// Nothing already there is touched until [`OutputDir::commit`].
    pub fn prepare(root: &Path, overwrite: bool, resume: bool) -> Result<(Self, Found)> {
        let work = root.join(WORK_DIR);
        let mut created_root = false;
        let mut found = Found::Fresh;
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
            // Earlier versions' per-process staging folders: never complete, safe to remove.
            for e in entries.iter().filter(|e| e.starts_with(OLD_STAGING_PREFIX)) {
                let _ = fs::remove_dir_all(root.join(e));
            }
            entries.retain(|e| !e.starts_with(OLD_STAGING_PREFIX) && e != WORK_DIR);
            if work.is_dir() {
                let held = lock(root, &work)?;
                let stale = committed_prefixes(&work).is_empty() && !work.join(COMMITTING).exists();
                if stale && !resume {
                    // Killed before it committed anything: nothing to keep.
                    fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
                    drop(held);
                    return Self::prepare(root, overwrite, resume);
                }
                if resume {
                    return Ok((
                        OutputDir {
                            root: root.to_path_buf(),
                            work,
                            created_root: false,
                            _lock: Some(held),
                            done: false,
                        },
                        Found::Interrupted,
                    ));
                }
                if !overwrite {
                    return Err(out_err(
                        root,
                        format!("holds an interrupted run ({WORK_DIR}); pass --resume to finish it, or --overwrite to start again"),
                    ));
                }
                fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
            } else if resume && root.join(SUCCESS).exists() {
                found = Found::Complete;
            } else if !entries.is_empty() && !overwrite {
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
        } else {
            fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
            created_root = true;
        }
        let held = if found == Found::Complete {
            None
        } else {
            fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
            Some(lock(root, &work)?)
        };
        Ok((
            OutputDir {
                root: root.to_path_buf(),
                work,
                created_root,
                _lock: held,
                done: found == Found::Complete,
            },
            found,
        ))
    }

    /// The final output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The work folder (hidden, inside the output directory) this run writes into.
    pub fn staging(&self) -> &Path {
        &self.work
    }

    /// A folder inside the work folder, created if needed (e.g. "segments").
    pub fn staged(&self, name: &str) -> Result<PathBuf> {
        let p = self.work.join(name);
        fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }

    /// A file of the work folder, if it is there.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let p = self.work.join(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// Writes a file of the work folder atomically (`name` may hold one folder level).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.work.join(name);
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_atomic(&p, bytes)?;
        if let Some(dir) = p.parent() {
            sync_dir(dir);
        }
        Ok(())
    }

    /// The committed shards' records, by file name.
    pub fn shard_records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let dir = self.work.join(SHARDS_DIR);
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".json") && !name.starts_with('.') {
                    out.push((name, fs::read(e.path()).map_err(|err| Error::io(e.path(), err))?));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether an interrupted run had begun moving its outputs into place.
    pub fn committing(&self) -> bool {
        self.work.join(COMMITTING).exists()
    }

    /// Removes everything in the work folder but the job description, the committed shards'
    /// records and the part files whose names start with one of `keep_prefixes`.
    pub fn keep_only(&self, keep_prefixes: &[String]) -> Result<()> {
        tidy(&self.work, keep_prefixes)
    }

    /// Moves the outputs into place: writes `files` (name, bytes) into the work folder, marks
    /// the commit as begun, then [`OutputDir::finish_commit`].
    pub fn commit(self, files: &[(&str, Vec<u8>)]) -> Result<()> {
        for (name, bytes) in files {
            write_atomic(&self.work.join(name), bytes)?;
        }
        let produced: Vec<&str> = OUTPUTS
            .iter()
            .copied()
            .filter(|name| *name != SUCCESS && self.work.join(name).exists())
            .collect();
        self.write(COMMITTING, &serde_json::to_vec(&produced)?)?;
        crash_point("commit-begun");
        self.finish_commit()
    }

    /// Moves each produced output into place (replacing an earlier run's), removes earlier
    /// outputs this run did not produce, writes `_SUCCESS` and removes the work folder. Safe
    /// to repeat after an interruption: what was moved already is not in the work folder.
    pub fn finish_commit(mut self) -> Result<()> {
        let bytes = self
            .read(COMMITTING)?
            .ok_or_else(|| Error::Internal("finish_commit without a COMMITTING marker".into()))?;
        let produced: Vec<String> = serde_json::from_slice(&bytes)?;
        let marker = self.root.join(SUCCESS);
        if marker.exists() {
            fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        }
        let trash = self.work.join(".replaced");
        for name in OUTPUTS.iter().filter(|n| **n != SUCCESS) {
            let src = self.work.join(name);
            let dest = self.root.join(name);
            if produced.iter().any(|p| p == name) {
                if !src.exists() {
                    continue; // moved before the interruption
                }
                if dest.exists() {
                    fs::create_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
                    let old = trash.join(name);
                    if old.exists() {
                        remove_path(&old)?;
                    }
                    fs::rename(&dest, &old).map_err(|e| Error::io(&dest, e))?;
                }
                fs::rename(&src, &dest).map_err(|e| Error::io(&dest, e))?;
                crash_point("commit-moved");
            } else if dest.exists() {
                remove_path(&dest)?;
            }
        }
        sync_dir(&self.root);
        write_atomic(&marker, b"")?;
        let _ = fs::remove_dir_all(&self.work);
        sync_dir(&self.root);
        self.done = true;
        Ok(())
    }

    /// Gives up the run: removes what is not committed (everything, when no shard is) and
    /// returns how many shards stay committed for `--resume`.
    pub fn abort(mut self) -> usize {
        self.done = true;
        abandon(&self.root, self.created_root)
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.done {
            abandon(&self.root, self.created_root);
        }
    }
}

/// Removes an abandoned run's uncommitted work from `root`'s work folder: everything when no
/// shard was committed (and `root` itself if the run created it and it is empty), else every
/// file but the committed shards'. Returns how many shards stay committed.
pub fn abandon(root: &Path, created_root: bool) -> usize {
    let work = root.join(WORK_DIR);
    let committed = committed_prefixes(&work);
    if work.join(COMMITTING).exists() {
        // Everything is committed and being moved into place: --resume finishes the moves.
        return committed.len().max(1);
    }
    if committed.is_empty() {
        let _ = fs::remove_dir_all(&work);
        if created_root {
            let _ = fs::remove_dir(root);
        }
    } else {
        let _ = tidy(&work, &committed);
    }
    committed.len()
}

/// The part-file prefixes of the shards committed in a work folder.
fn committed_prefixes(work: &Path) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(work.join(SHARDS_DIR)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(k) = crate::shard::record_shard(&name) {
                v.push(crate::shard::part_prefix(k));
            }
        }
    }
    v.sort();
    v
}

/// Keeps the job description, the shard records and the part files named by `keep`;
/// removes everything else in the work folder.
fn tidy(work: &Path, keep: &[String]) -> Result<()> {
    let entries = match fs::read_dir(work) {
        Ok(rd) => rd.flatten().collect::<Vec<_>>(),
        Err(_) => return Ok(()),
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        match name.as_str() {
            JOB_FILE | SHARDS_DIR => {}
            "segments" | "rejected" => {
                for f in fs::read_dir(&path)
                    .map_err(|err| Error::io(&path, err))?
                    .flatten()
                {
                    let fname = f.file_name().to_string_lossy().into_owned();
                    if !keep.iter().any(|k| fname.starts_with(k.as_str())) {
                        remove_path(&f.path())?;
                    }
                }
            }
            _ => remove_path(&path)?,
        }
    }
    Ok(())
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

/// Writes `dir/name` as a Parquet file of no rows with `schema`: an output table that keeps
/// its schema for readers when no row reached it.
pub fn write_empty_part(
    dir: &Path,
    name: &str,
    schema: SchemaRef,
    metadata: &[(String, String)],
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let props = writer_properties(&schema, metadata, None);
    PartWriter::create(dir, name, schema, props)?.close()?;
    Ok(())
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
    prefix: String,
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
            prefix: "part-".into(),
            current: None,
            closed: Vec::new(),
        }
    }

    /// Names files `<prefix>NNNNN.parquet` instead of `part-NNNNN.parquet`.
    pub fn with_prefix(mut self, prefix: String) -> Self {
        self.prefix = prefix;
        self
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
                        &format!("{}{n:05}.parquet", self.prefix),
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
