//! Input expansion: files, directories (searched recursively for `*.parquet`) and globs into
//! a sorted, de-duplicated list of files; `s3://` prefixes and globs into objects
//! ([`crate::store::expand`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::engine::tables::require_utf8;
use crate::error::{Error, Result};

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        if is_hidden(&p) {
            continue;
        }
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// Expands files, directories (recursively, `*.parquet`, skipping names starting with `.` or
/// `_`) and globs into a sorted, de-duplicated list of files. A path that exists is that path,
/// whatever characters it holds; only one that names nothing is taken as a glob. Every file
/// found must have a UTF-8 path ([`require_utf8`]).
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        return Err(Error::Usage("no --input given".into()));
    }
    let mut all = BTreeSet::new();
    for pat in patterns {
        if crate::store::is_remote(pat) {
            let found = crate::store::expand(pat)?;
            if found.is_empty() {
                return Err(Error::NoInputFiles { pattern: pat.clone() });
            }
            all.extend(found);
            continue;
        }
        let mut found = Vec::new();
        let path = Path::new(pat);
        if path.is_dir() {
            walk_dir(path, &mut found)?;
        } else if path.exists() {
            found.push(path.to_path_buf());
        } else if pat.contains(['*', '?', '[']) {
            let paths = glob::glob(pat).map_err(|e| Error::Usage(format!("input {pat}: bad glob: {e}")))?;
            for p in paths {
                let p = p.map_err(|e| Error::io(e.path().to_path_buf(), std::io::Error::from(e)))?;
                if p.is_dir() {
                    walk_dir(&p, &mut found)?;
                } else {
                    found.push(p);
                }
            }
        } else {
            return Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        if found.is_empty() {
            return Err(Error::NoInputFiles { pattern: pat.clone() });
        }
        for p in found {
            let abs = std::path::absolute(&p).map_err(|e| Error::io(&p, e))?;
            require_utf8(&abs)?;
            all.insert(abs);
        }
    }
    Ok(all.into_iter().collect())
}
