//! A committed output as readers find it (`segscore sql`, `report`, `compare`): a local
//! directory's part files by listing, an `s3://` output's by its manifest
//! ([`crate::sink::remote`]), so a reader never mixes two runs.

use std::path::{Path, PathBuf};

use crate::engine::tables::part_files;
use crate::error::Result;
use crate::sink::atomic::read_if_exists;
use crate::sink::remote;
use crate::store::Location;

/// Whether `dir` is a segscore output: a local directory with `segments/`, or an `s3://`
/// prefix with `_SUCCESS`.
pub fn is_output(dir: &Path) -> Result<bool> {
    match Location::of(dir)? {
        Some(loc) => Ok(remote::read_pointer(&loc)?.is_some()),
        None => Ok(dir.join("segments").is_dir()),
    }
}

/// The part files of one table (`segments`, `generations`, `rejected`) of the output at
/// `dir`, sorted; empty when it has none.
pub fn output_parts(dir: &Path, table: &str) -> Result<Vec<PathBuf>> {
    match Location::of(dir)? {
        Some(loc) => remote::committed_parts(&loc, table),
        None => part_files(&dir.join(table)),
    }
}

/// A file of the output at `dir` (`summary.json`), if it is there.
pub fn output_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    match Location::of(dir)? {
        Some(loc) => remote::committed_file(&loc, name),
        None => read_if_exists(&dir.join(name)),
    }
}

/// Writes `name` into the output at `dir` (atomically; into the committed run's prefix for an
/// `s3://` output). Returns where it went.
pub fn write_output_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<String> {
    match Location::of(dir)? {
        Some(loc) => remote::write_committed_file(&loc, name, bytes.to_vec()),
        None => {
            let path = dir.join(name);
            crate::sink::write_atomic(&path, bytes)?;
            Ok(path.display().to_string())
        }
    }
}
