//! The output directory: what a run writes into it, its locked work folder, the shard records
//! that commit work, and the commit that moves the outputs into place with `_SUCCESS` last
//! (the protocol is described in [`crate::sink`]).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::faults::point;
use crate::sink::atomic::{read_if_exists, sync_dir, write_atomic};
use crate::sink::remote::{self, RemoteRun};
use crate::store::Location;

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
    /// With an `s3://` output: the run there; `root` is then a local work folder's root.
    remote: Option<RemoteRun>,
}

/// The first five of `names`, for a message (`a, b, c, d, e, ...`).
pub fn first_names(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    format!(
        "{}{}",
        shown.join(", "),
        if names.len() > 5 { ", ..." } else { "" }
    )
}

/// The names in the folder `dir`, sorted; none when it does not exist.
pub fn entry_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(|err| Error::io(dir, err))?;
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    names.sort();
    Ok(names)
}

/// Refuses `dir` if it holds anything: a command that writes a whole new set of files there
/// (`segscore generate`) would otherwise replace some of what is there and leave the rest
/// mixed in with its own. An absent directory is fine.
pub fn require_empty(dir: &Path, what: &str) -> Result<()> {
    let names = entry_names(dir)?;
    if names.is_empty() {
        return Ok(());
    }
    Err(out_err(
        dir,
        format!(
            "is not empty (holds {}); {what}: choose an empty or new folder",
            first_names(&names)
        ),
    ))
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
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(out_err(
            root,
            format!("another segscore run is writing into it (its {WORK_DIR} folder is locked)"),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(work, e)),
    }
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
        if let Some(loc) = Location::of(root)? {
            return Self::prepare_remote(loc, overwrite, resume);
        }
        let work = root.join(WORK_DIR);
        let mut created_root = false;
        let mut found = Found::Fresh;
        if root.exists() {
            if !root.is_dir() {
                return Err(out_err(root, "exists and is not a directory"));
            }
            let mut entries = entry_names(root)?;
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
                            remote: None,
                        },
                        Found::Interrupted,
                    ));
                }
                if !overwrite {
                    return Err(out_err(
                        root,
                        format!("holds an interrupted run ({WORK_DIR}); pass --resume to finish it with the same inputs and settings, or --overwrite to start again"),
                    ));
                }
                fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
            } else if resume && root.join(SUCCESS).exists() {
                found = Found::Complete;
            } else if !entries.is_empty() && !overwrite {
                return Err(out_err(
                    root,
                    format!(
                        "directory is not empty (holds {}); pass --overwrite to replace segscore's outputs in it, or choose another --output",
                        first_names(&entries)
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
                remote: None,
            },
            found,
        ))
    }

    /// [`OutputDir::prepare`] for an `s3://` output ([`crate::sink::remote`]): the same cases,
    /// read from the prefix's runs; the run is written into a local work folder and uploaded
    /// shard by shard.
    fn prepare_remote(loc: Location, overwrite: bool, resume: bool) -> Result<(Self, Found)> {
        let url = loc.url();
        let s = remote::survey(&loc)?;
        let interrupted = s.interrupted().cloned();
        let mut run = RemoteRun::new(loc);
        let found = match (&interrupted, &s.committed) {
            (Some((id, ..)), _) if resume => {
                run.run = id.clone();
                Found::Interrupted
            }
            (None, Some(_)) if resume => Found::Complete,
            (Some((id, ..)), _) if !overwrite => {
                return Err(Error::Store {
                    url,
                    reason: format!("holds an interrupted run ({}/{id}); pass --resume to finish it with the same inputs and settings, or --overwrite to start again", remote::RUNS),
                })
            }
            (None, Some(_)) if !overwrite => {
                return Err(Error::Store {
                    url,
                    reason: "holds a complete segscore output; pass --overwrite to replace it, or choose another --output".into(),
                })
            }
            _ if !s.others.is_empty() && !overwrite => {
                return Err(Error::Store {
                    url,
                    reason: format!(
                        "is not empty (holds {}); pass --overwrite to replace segscore's outputs in it, or choose another --output",
                        first_names(&s.others)
                    ),
                });
            }
            _ => Found::Fresh,
        };
        // The local work folder: always started afresh (what is committed is in the store).
        let mirror = RemoteRun::mirror(&url);
        if found == Found::Complete {
            // Nothing to write: no work folder (and none to remove when this is dropped).
            return Ok((
                OutputDir {
                    root: mirror.clone(),
                    work: mirror.join(WORK_DIR),
                    created_root: false,
                    _lock: None,
                    done: true,
                    remote: Some(run),
                },
                found,
            ));
        }
        let (mut local, _) = Self::prepare(&mirror, true, false)?;
        local.created_root = true;
        if found == Found::Interrupted {
            run.manifest_written = interrupted.is_some_and(|(_, _, manifest)| manifest);
            run.download(&local.work)?;
        }
        local.remote = Some(run);
        Ok((local, found))
    }

    /// For an `s3://` output: what starts each part file's upload as it closes.
    pub fn on_part_closed(&self) -> Option<crate::sink::PartClosed> {
        Some(self.remote.as_ref()?.on_part_closed(&self.work))
    }

    /// Commits shard `k`: its record (`record`) is written after its part files are in place
    /// (uploaded first, for an `s3://` output).
    pub fn commit_shard(&self, k: usize, record: &[u8]) -> Result<()> {
        self.write(&format!("{SHARDS_DIR}/{}", crate::shard::record_name(k)), record)?;
        if let Some(r) = &self.remote {
            r.commit_shard(&self.work, k, record)?;
        }
        Ok(())
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
        read_if_exists(&self.work.join(name))
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
        if let (Some(r), JOB_FILE) = (&self.remote, name) {
            r.at(JOB_FILE).put(bytes.to_vec())?;
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
        if let Some(r) = &self.remote {
            return r.manifest_written;
        }
        self.work.join(COMMITTING).exists()
    }

    /// Removes everything in the work folder but the job description, the committed shards'
    /// records and the part files whose names start with one of `keep_prefixes`.
    pub fn keep_only(&self, keep_prefixes: &[String]) -> Result<()> {
        if let Some(r) = &self.remote {
            // Uploads of files about to be removed finish first: a rerun's file of the same
            // name is then uploaded after them, never overwritten by them.
            let _ = r.uploads.wait();
        }
        tidy(&self.work, keep_prefixes)
    }

    /// Moves the outputs into place: writes `files` (name, bytes) into the work folder, marks
    /// the commit as begun, then [`OutputDir::finish_commit`].
    pub fn commit(mut self, files: &[(&str, Vec<u8>)]) -> Result<()> {
        for (name, bytes) in files {
            write_atomic(&self.work.join(name), bytes)?;
        }
        if let Some(r) = &mut self.remote {
            let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
            r.write_manifest(&self.work, &names)?;
            return self.finish_commit();
        }
        let produced: Vec<&str> = OUTPUTS
            .iter()
            .copied()
            .filter(|name| *name != SUCCESS && self.work.join(name).exists())
            .collect();
        self.write(COMMITTING, &serde_json::to_vec(&produced)?)?;
        point("commit-begun");
        self.finish_commit()
    }

    /// Moves each produced output into place (replacing an earlier run's), removes earlier
    /// outputs this run did not produce, writes `_SUCCESS` and removes the work folder. Safe
    /// to repeat after an interruption: what was moved already is not in the work folder.
    pub fn finish_commit(mut self) -> Result<()> {
        if let Some(r) = &self.remote {
            r.publish()?;
            self.done = true;
            let _ = fs::remove_dir_all(&self.root);
            return Ok(());
        }
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
                point("commit-moved");
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
        self.abandon()
    }

    fn abandon(&self) -> usize {
        if let Some(r) = &self.remote {
            let _ = r.uploads.wait();
        }
        let kept = abandon(&self.root, self.created_root);
        if let Some(r) = &self.remote {
            // What is committed is in the store; the local work folder goes.
            let _ = fs::remove_dir_all(&self.root);
            if kept == 0 && !r.manifest_written {
                if let Err(e) = r.remove() {
                    tracing::warn!(error = %e, "could not remove the run's uncommitted objects");
                }
            }
        }
        kept
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.done {
            self.abandon();
        } else if self.remote.is_some() && self._lock.is_some() {
            let _ = fs::remove_dir_all(&self.root);
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
            "segments" | "rejected" | "generations" | "sample" => {
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
