//! Outputs in object storage (`--output s3://bucket/prefix`): a commit protocol without rename.
//!
//! Object stores have no rename and no lock, but a single PUT is atomic: a reader sees a whole
//! object or none. So every run writes under a prefix of its own, and one small object,
//! `_SUCCESS`, says which run is the output:
//!
//! ```text
//! s3://bucket/prefix/_runs/<run>/job.json             the job, checked by --resume
//! s3://bucket/prefix/_runs/<run>/shards/shard-K.json  shard K committed (after its parts)
//! s3://bucket/prefix/_runs/<run>/segments/*.parquet   (and generations/, rejected/)
//! s3://bucket/prefix/_runs/<run>/summary.json         (and report.html)
//! s3://bucket/prefix/_runs/<run>/manifest.json        every file of the output, written last
//! s3://bucket/prefix/_SUCCESS                         {"run": "<run>", "manifest": ...}
//! ```
//!
//! A shard's part files are uploaded, then its record; when every shard is committed the
//! summary and the manifest are uploaded, and `_SUCCESS` is written, pointing at the manifest.
//! Readers (`segscore sql`, `report`, `compare`) follow `_SUCCESS` to the manifest and read
//! exactly the files it lists, never a listing, so during a run, after a crash, or while an
//! `--overwrite` run replaces an older output, they see the previous complete output or none:
//! never parts of two runs. After `_SUCCESS` is written, the other runs' prefixes are
//! deleted. `--resume` continues the newest run that is not the committed one, from its
//! committed shards. The run is written locally first, in a work folder under the temporary
//! folder, and uploaded shard by shard; that folder is removed when the run ends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object_store::path::Path as Key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::Location;

/// The folder of the runs' prefixes under the output prefix.
pub const RUNS: &str = "_runs";
/// In a run's prefix: the list of the output's files, written before `_SUCCESS`.
pub const MANIFEST: &str = "manifest.json";
/// The output tables, in a run's prefix.
pub const TABLES: [&str; 3] = ["segments", "generations", "rejected"];
/// The folders a run uploads shard by shard (the sample is only read back by `--resume`).
const SHARD_FOLDERS: [&str; 4] = ["segments", "rejected", "generations", "sample"];

/// The list of a committed output's files, relative to its run's prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The run.
    pub run: String,
    /// Each table's part files (`segments/part-00000.parquet`, ...).
    pub tables: BTreeMap<String, Vec<String>>,
    /// The other files (`summary.json`, `report.html`).
    pub files: Vec<String>,
}

/// What `_SUCCESS` holds: the run that is the output, and its manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pointer {
    /// The run.
    pub run: String,
    /// The manifest's key, relative to the output prefix.
    pub manifest: String,
}

/// What an output prefix holds.
#[derive(Debug, Default)]
pub struct Survey {
    /// The committed run, from `_SUCCESS`.
    pub committed: Option<String>,
    /// Every run prefix with its job: (run, committed shards, manifest written).
    pub runs: Vec<(String, usize, bool)>,
    /// Objects that are not segscore's.
    pub others: Vec<String>,
}

impl Survey {
    /// The newest run that is not the committed one and committed something (shards or a
    /// manifest): the one `--resume` continues.
    pub fn interrupted(&self) -> Option<&(String, usize, bool)> {
        self.runs
            .iter()
            .filter(|(r, shards, manifest)| Some(r) != self.committed.as_ref() && (*shards > 0 || *manifest))
            .max_by(|a, b| a.0.cmp(&b.0))
    }
}

/// Lists an output prefix.
pub fn survey(root: &Location) -> Result<Survey> {
    let mut s = Survey::default();
    let mut runs: BTreeMap<String, (bool, usize, bool)> = BTreeMap::new();
    for m in root.list()? {
        let rel = root.parts_under(&m.location);
        match rel.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            // Another tool's `_SUCCESS` (Spark writes an empty one) is not a segscore commit.
            [super::SUCCESS] => match read_pointer(root) {
                Ok(p) => s.committed = p.map(|p| p.run),
                Err(_) => s.others.push(super::SUCCESS.to_string()),
            },
            [RUNS, run, rest @ ..] => {
                let e = runs.entry(run.to_string()).or_default();
                match rest {
                    [super::JOB_FILE] => e.0 = true,
                    [super::SHARDS_DIR, name] if crate::shard::record_shard(name).is_some() => e.1 += 1,
                    [MANIFEST] => e.2 = true,
                    _ => {}
                }
            }
            _ => s.others.push(rel.join("/")),
        }
    }
    s.runs = runs
        .into_iter()
        .filter(|(_, (job, ..))| *job)
        .map(|(r, (_, shards, manifest))| (r, shards, manifest))
        .collect();
    Ok(s)
}

/// `_SUCCESS` of an output prefix, when there is one.
pub fn read_pointer(root: &Location) -> Result<Option<Pointer>> {
    let loc = root.join(super::SUCCESS);
    match loc.get()? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::Store {
            url: loc.url(),
            reason: format!("not a segscore commit marker: {e}"),
        }),
    }
}

/// The committed output's manifest; an error naming the URL when there is none.
pub fn read_manifest(root: &Location) -> Result<Manifest> {
    let pointer = read_pointer(root)?.ok_or_else(|| Error::Store {
        url: root.url(),
        reason: format!("not a complete segscore output (no {})", super::SUCCESS),
    })?;
    let loc = root.join(&pointer.manifest);
    let bytes = loc.get()?.ok_or_else(|| Error::Store {
        url: loc.url(),
        reason: "the manifest named by _SUCCESS is missing".into(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Store {
        url: loc.url(),
        reason: format!("not a segscore manifest: {e}"),
    })
}

/// Part files being uploaded as they close, so the uploads overlap the pass.
#[derive(Debug, Default)]
pub struct Uploads {
    pending: Mutex<Vec<(PathBuf, tokio::task::JoinHandle<Result<()>>)>>,
}

impl Uploads {
    fn add(&self, local: PathBuf, handle: tokio::task::JoinHandle<Result<()>>) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((local, handle));
    }

    /// Waits for every upload started so far: the files uploaded, and the first failure.
    pub fn wait(&self) -> (BTreeSet<PathBuf>, Option<Error>) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        crate::store::block(async move {
            let (mut done, mut failure) = (BTreeSet::new(), None);
            for (local, handle) in pending {
                match handle.await {
                    Ok(Ok(())) => {
                        done.insert(local);
                    }
                    Ok(Err(e)) => {
                        failure.get_or_insert(e);
                    }
                    Err(e) => {
                        failure.get_or_insert(Error::Internal(format!("an upload task failed: {e}")));
                    }
                }
            }
            (done, failure)
        })
    }
}

/// A run writing into an output prefix.
#[derive(Debug)]
pub struct RemoteRun {
    /// The output prefix.
    pub root: Location,
    /// This run's id (its prefix is `_runs/<run>/`).
    pub run: String,
    /// Whether the run's manifest is written (its commit began).
    pub manifest_written: bool,
    /// The part files being uploaded.
    pub uploads: Arc<Uploads>,
}

impl RemoteRun {
    /// A new run: its id orders runs by start time.
    pub fn new(root: Location) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        RemoteRun {
            root,
            run: format!("{nanos:020}-{}", std::process::id()),
            manifest_written: false,
            uploads: Arc::default(),
        }
    }

    /// The run's prefix, or a file in it.
    pub fn at(&self, name: &str) -> Location {
        self.root.join(&format!("{RUNS}/{}/{name}", self.run))
    }

    /// The local work folder's root for an output URL (under the temporary folder).
    pub fn mirror(url: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(url.trim_end_matches('/').as_bytes()));
        std::env::temp_dir().join(format!("segscore-output-{}", &h[..16]))
    }

    /// Downloads an interrupted run's job, shard records and committed shards' files into the
    /// local work folder `work`.
    pub fn download(&self, work: &Path) -> Result<()> {
        let prefix = self.at("");
        let mut wanted = Vec::new();
        let all = prefix.list()?;
        let committed: Vec<String> = all
            .iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                crate::shard::record_shard(name).map(crate::shard::part_prefix)
            })
            .collect();
        for m in all {
            let rel = prefix.parts_under(&m.location);
            let keep = match rel.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                [super::JOB_FILE] | [MANIFEST] => true,
                [super::SHARDS_DIR, name] => crate::shard::record_shard(name).is_some(),
                [folder, name] if SHARD_FOLDERS.contains(folder) => {
                    committed.iter().any(|p| name.starts_with(p.as_str()))
                }
                _ => false,
            };
            if keep {
                wanted.push((m.location, work.join(rel.join("/"))));
            }
        }
        prefix.download(wanted)
    }

    /// What starts each part file's upload as it closes (files of the work folder `work`).
    pub fn on_part_closed(&self, work: &Path) -> crate::sink::PartClosed {
        let (prefix, work, uploads) = (self.at(""), work.to_path_buf(), Arc::clone(&self.uploads));
        Arc::new(move |local: &Path| {
            if let Ok(rel) = local.strip_prefix(&work) {
                let key = prefix.join(&rel.to_string_lossy()).key;
                uploads.add(
                    local.to_path_buf(),
                    prefix.start_upload(vec![(local.to_path_buf(), key)]),
                );
            }
        })
    }

    /// Uploads shard `k`'s part files from the work folder `work` (those not uploaded as they
    /// closed), then its record: the shard is committed when its record is there.
    pub fn commit_shard(&self, work: &Path, k: usize, record: &[u8]) -> Result<()> {
        let (uploaded, failure) = self.uploads.wait();
        if let Some(e) = failure {
            return Err(e);
        }
        let prefix = crate::shard::part_prefix(k);
        let mut files = Vec::new();
        for folder in SHARD_FOLDERS {
            for f in names_in(&work.join(folder))? {
                if f.starts_with(&prefix) && !uploaded.contains(&work.join(folder).join(&f)) {
                    files.push((work.join(folder).join(&f), self.at(&format!("{folder}/{f}")).key));
                }
            }
        }
        self.root.upload(files)?;
        crate::faults::point("shard-uploaded");
        self.at(&format!("{}/{}", super::SHARDS_DIR, crate::shard::record_name(k)))
            .put(record.to_vec())
    }

    /// Uploads the outputs not uploaded yet (the files `extra` and those the evaluation
    /// wrote), then the manifest: after this, [`RemoteRun::publish`] makes the run the output.
    pub fn write_manifest(&mut self, work: &Path, extra: &[&str]) -> Result<()> {
        let prefix = self.at("");
        let present: BTreeSet<String> = prefix
            .list()?
            .into_iter()
            .map(|m| prefix.parts_under(&m.location).join("/"))
            .collect();
        let mut manifest = Manifest {
            run: self.run.clone(),
            tables: BTreeMap::new(),
            files: Vec::new(),
        };
        let mut uploads = Vec::new();
        for t in TABLES {
            let names = names_in(&work.join(t))?;
            for n in &names {
                let rel = format!("{t}/{n}");
                if !present.contains(&rel) {
                    uploads.push((work.join(t).join(n), self.at(&rel).key));
                }
            }
            if !names.is_empty() {
                manifest
                    .tables
                    .insert(t.to_string(), names.iter().map(|n| format!("{t}/{n}")).collect());
            }
        }
        for name in extra {
            uploads.push((work.join(name), self.at(name).key));
            manifest.files.push(name.to_string());
        }
        self.root.upload(uploads)?;
        self.at(MANIFEST).put(serde_json::to_vec_pretty(&manifest)?)?;
        self.manifest_written = true;
        crate::faults::point("commit-begun");
        Ok(())
    }

    /// Writes `_SUCCESS`, pointing at this run's manifest (the one atomic step that makes it
    /// the output), then deletes every other run's prefix and what this run no longer needs.
    pub fn publish(&self) -> Result<()> {
        let pointer = Pointer {
            run: self.run.clone(),
            manifest: format!("{RUNS}/{}/{MANIFEST}", self.run),
        };
        self.root
            .join(super::SUCCESS)
            .put(serde_json::to_vec_pretty(&pointer)?)?;
        crate::faults::point("commit-moved");
        let manifest = read_manifest(&self.root)?;
        let mut listed: BTreeSet<String> = manifest.tables.values().flatten().cloned().collect();
        listed.extend(manifest.files.iter().cloned());
        listed.insert(MANIFEST.into());
        listed.insert(super::JOB_FILE.into());
        let mine = format!("{RUNS}/{}/", self.run);
        let doomed: Vec<Key> = self
            .root
            .join(RUNS)
            .list()?
            .into_iter()
            .map(|m| m.location)
            .filter(|k| {
                let rel = self.root.parts_under(k).join("/");
                match rel.strip_prefix(&mine) {
                    // This run's own: drop the sample and parts of uncommitted attempts.
                    Some(r) => !listed.contains(r) && !r.starts_with(super::SHARDS_DIR),
                    None => true,
                }
            })
            .collect();
        // Best effort: a reader follows _SUCCESS, so leftovers are garbage, never output.
        if let Err(e) = self.root.delete(doomed) {
            tracing::warn!(error = %e, "could not delete the replaced runs' objects");
        }
        Ok(())
    }

    /// Deletes this run's prefix (a run that committed nothing).
    pub fn remove(&self) -> Result<()> {
        let prefix = self.at("");
        let keys = prefix.list()?.into_iter().map(|m| m.location).collect();
        prefix.delete(keys)
    }
}

/// The visible file names directly in a local folder, sorted.
fn names_in(dir: &Path) -> Result<Vec<String>> {
    Ok(super::output_dir::entry_names(dir)?
        .into_iter()
        .filter(|name| !name.starts_with('.') && dir.join(name).is_file())
        .collect())
}

/// The part files of table `table` of the committed output at `root`, as URLs.
pub fn committed_parts(root: &Location, table: &str) -> Result<Vec<PathBuf>> {
    let manifest = read_manifest(root)?;
    let prefix = root.join(&format!("{RUNS}/{}", manifest.run));
    Ok(manifest
        .tables
        .get(table)
        .map(|files| {
            files
                .iter()
                .map(|f| PathBuf::from(prefix.join(f).url()))
                .collect()
        })
        .unwrap_or_default())
}

/// A file (`summary.json`) of the committed output at `root`.
pub fn committed_file(root: &Location, name: &str) -> Result<Option<Vec<u8>>> {
    let manifest = read_manifest(root)?;
    Ok(root
        .join(&format!("{RUNS}/{}/{name}", manifest.run))
        .get()?
        .map(|b| b.to_vec()))
}

/// Writes `name` into the committed output's run prefix (`segscore report`): returns its URL.
pub fn write_committed_file(root: &Location, name: &str, bytes: Vec<u8>) -> Result<String> {
    let manifest = read_manifest(root)?;
    let loc = root.join(&format!("{RUNS}/{}/{name}", manifest.run));
    loc.put(bytes)?;
    Ok(loc.url())
}
