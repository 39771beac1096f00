//! Input expansion: files, directories (searched recursively for `*.parquet`) and globs into
//! a sorted, de-duplicated list of files; `s3://` prefixes and globs into objects
//! ([`crate::store::expand`]). [`output_apart`] keeps a job from reading its own output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::engine::tables::require_utf8;
use crate::error::{Error, Result};

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
}

/// The files a folder search passed over: not hidden, without the `.parquet` extension.
#[derive(Default)]
struct Skipped {
    count: usize,
    first: Option<PathBuf>,
    /// The first of a format `segscore sql` reads and converts (Arrow IPC, CSV, JSON).
    convertible: Option<PathBuf>,
}

/// Files other than Parquet that `segscore sql` reads as a table (and `run` names with the
/// command that converts them), by their names' ends: CSV (`.csv`, its separator found from
/// its header line; `.tsv`, tab separated), with a header line, JSON, objects one per line or
/// an array of them (`.json`, `.jsonl`, `.ndjson`), both also compressed (`.csv.gz`, ...),
/// and Arrow IPC files or streams (`.arrow`,
/// `.feather`, `.ipc`, `.arrows`: Hugging Face `datasets`' `save_to_disk` writes streams).
/// DataFusion's CSV reader takes its columns' types from the first 1,000 rows; JSON's are taken
/// from every row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OtherFormat {
    /// CSV with this separator.
    Csv(u8),
    /// Newline-delimited JSON.
    Json,
    /// Arrow IPC, the file or the stream format.
    Arrow,
}

/// The endings of compressed CSV and JSON files, as DuckDB and DataFusion know them: gzip,
/// bzip2, xz and zstd.
pub const COMPRESSED: [&str; 4] = [".gz", ".bz2", ".xz", ".zst"];

/// A name's compression ending ([`COMPRESSED`], any case) and the name before it:
/// `("labels.CSV", ".gz")` for `labels.CSV.GZ`; None for a name that ends in none.
pub fn compressed(name: &str) -> Option<(&str, &'static str)> {
    let lower = name.to_ascii_lowercase();
    let ending = COMPRESSED.iter().copied().find(|c| lower.ends_with(c))?;
    Some((&name[..name.len() - ending.len()], ending))
}

impl OtherFormat {
    /// The format a path's name says, if one of these; CSV and JSON also compressed
    /// ([`COMPRESSED`]: `labels.csv.gz`, `data.jsonl.zst`).
    pub fn of(path: &str) -> Option<OtherFormat> {
        let lower = path.to_ascii_lowercase();
        let text = compressed(&lower)
            .map(|(plain, _)| OtherFormat::of(plain))
            .filter(|f| *f != Some(OtherFormat::Arrow));
        if let Some(format) = text {
            format
        } else if lower.ends_with(".csv") {
            Some(OtherFormat::Csv(b','))
        } else if lower.ends_with(".tsv") {
            Some(OtherFormat::Csv(b'\t'))
        } else if [".json", ".jsonl", ".ndjson"].iter().any(|e| lower.ends_with(e)) {
            Some(OtherFormat::Json)
        } else if [".arrow", ".feather", ".ipc", ".arrows"]
            .iter()
            .any(|e| lower.ends_with(e))
        {
            Some(OtherFormat::Arrow)
        } else {
            None
        }
    }
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>, skipped: &mut Skipped) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        table_format_log(dir, &p)?;
        if is_hidden(&p) {
            continue;
        }
        if p.is_dir() {
            walk_dir(&p, out, skipped)?;
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        } else {
            skipped.count += 1;
            if OtherFormat::of(&p.to_string_lossy()).is_some() {
                skipped.convertible.get_or_insert(p.clone());
            }
            skipped.first.get_or_insert(p);
        }
    }
    Ok(())
}

/// Refuses a folder `dir` whose entry `entry` is an open table format's log
/// ([`crate::store::table_format`]): only a folder of that name is listed, hidden or not.
fn table_format_log(dir: &Path, entry: &Path) -> Result<()> {
    let Some(name) = entry.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    if !matches!(name, "_delta_log" | ".hoodie" | "metadata") || !entry.is_dir() {
        return Ok(());
    }
    for child in std::fs::read_dir(entry).map_err(|e| Error::io(entry, e))? {
        let child = child.map_err(|e| Error::io(entry, e))?.file_name();
        if let Some((_, format)) = crate::store::table_format(&[name, &child.to_string_lossy()]) {
            return Err(crate::store::table_format_refusal(
                &dir.display().to_string(),
                format,
                &entry.display().to_string(),
            ));
        }
    }
    Ok(())
}

/// Expands files, directories (recursively, `*.parquet`, skipping names starting with `.` or
/// `_`) and globs into a sorted, de-duplicated list of files. A path that exists is that path,
/// whatever characters it holds; only one that names nothing is taken as a glob. Every file
/// found must have a UTF-8 path ([`require_utf8`]). A folder searched that holds an open table
/// format's log (Delta Lake, Hudi, Iceberg) is refused ([`crate::store::table_format`]); a
/// Delta Lake table given itself is its live files ([`super::delta`], in the default build).
/// With `pin`, the objects found in object storage are pinned with what their listing said
/// ([`crate::store::expand`]): a job's inputs, which it never writes (`segscore sql` may write
/// an object a script then reads again: it pins none).
pub fn expand_inputs(patterns: &[String], pin: bool) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        return Err(Error::Usage("no --input given".into()));
    }
    let mut all = BTreeSet::new();
    for pat in patterns {
        #[cfg(feature = "delta")]
        if super::delta::is_table(pat)? {
            all.extend(super::delta::live_files(pat)?);
            continue;
        }
        if crate::store::is_remote(pat) {
            // None found is an error there, saying what the listing passed over.
            all.extend(crate::store::expand(pat, pin)?);
            continue;
        }
        let mut found = Vec::new();
        let mut skipped = Skipped::default();
        let path = Path::new(pat);
        if path.is_dir() {
            walk_dir(path, &mut found, &mut skipped)?;
        } else if path.exists() {
            found.push(path.to_path_buf());
        } else if pat.contains(['*', '?', '[']) {
            let paths = glob::glob(pat).map_err(|e| Error::Usage(format!("input {pat}: bad glob: {e}")))?;
            for p in paths {
                let p = p.map_err(|e| Error::io(e.path().to_path_buf(), std::io::Error::from(e)))?;
                if p.is_dir() {
                    walk_dir(&p, &mut found, &mut skipped)?;
                } else {
                    found.push(p);
                }
            }
        } else {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
        if found.is_empty() {
            let first = skipped.convertible.as_ref().or(skipped.first.as_ref());
            let how = match &skipped.convertible {
                // Hugging Face's save_to_disk writes `.arrow` streams; pandas, CSV and JSON.
                Some(c) => {
                    let glob = format!(
                        "{}/*.{}",
                        c.parent().unwrap_or(Path::new(".")).display(),
                        c.extension().unwrap_or_default().to_string_lossy()
                    );
                    format!(
                        "segscore sql reads such files by a glob, '{glob}', and `segscore sql \"COPY '{glob}' TO 'OUT.parquet'\"` writes them as Parquet, which segscore run reads"
                    )
                }
                None => format!(
                    "give such files by name, or by a glob such as {}/*",
                    pat.trim_end_matches('/')
                ),
            };
            let first = first.map(|p| p.display().to_string());
            return Err(Error::no_parquet_files(
                pat,
                "file",
                skipped.count,
                first.as_deref(),
                &how,
            ));
        }
        for p in found {
            let abs = crate::engine::tables::absolute(&p)?;
            require_utf8(&abs)?;
            all.insert(abs);
        }
    }
    Ok(all.into_iter().collect())
}

/// Refuses a local `output` (given by `flag`) that a job would read back as input, or that
/// would replace one: an input file that is it or lies inside it (an output directory that is
/// an input folder, a glob reaching into it), or an output inside an input directory that the
/// search reaches (no level of it below the input starts with `.` or `_`). The first run
/// would work, and every re-run would read the last one's output as input; `why` says what
/// that does. Paths are compared with symbolic links and `..` resolved. An output in object
/// storage is not checked here: a run writes under a `_runs/` prefix that a listing skips,
/// and [`object_apart`] checks `sql --to s3://...`.
pub fn output_apart(
    flag: &str,
    why: &str,
    patterns: &[String],
    files: &[PathBuf],
    output: &Path,
) -> Result<()> {
    if crate::store::remote(output).is_some() {
        return Ok(());
    }
    let out = resolved(output)?;
    let refuse = |what: String| Err(refusal(flag, output, &what, why));
    for pat in patterns.iter().filter(|p| !crate::store::is_remote(p)) {
        let dir = Path::new(pat);
        if !dir.is_dir() {
            continue;
        }
        if let Ok(below) = out.strip_prefix(resolved(dir)?) {
            if !below.components().any(|c| is_hidden(Path::new(c.as_os_str()))) {
                return refuse(if below.as_os_str().is_empty() {
                    format!("is the input directory {pat}")
                } else {
                    format!("is inside the input directory {pat}, which is searched for *.parquet at every level (a name starting with `_` or `.` is skipped)")
                });
            }
        }
    }
    for f in files.iter().filter(|f| crate::store::remote(f).is_none()) {
        let file = resolved(f)?;
        if file == out {
            return refuse(format!("is the input file {}", f.display()));
        }
        if file.starts_with(&out) {
            return refuse(format!("it holds the input file {}", f.display()));
        }
    }
    Ok(())
}

/// [`output_apart`] for an object-store file (`sql --to s3://...`): refused if it is one of
/// the `files` read, or lies under a prefix among `patterns` (no level of it below starting
/// with `.` or `_`), where the next read of that table would take it in. Globs are not
/// checked (the file is compared with what they matched).
pub fn object_apart(
    flag: &str,
    why: &str,
    patterns: &[String],
    files: &[PathBuf],
    output: &Path,
) -> Result<()> {
    let Some(out) = crate::store::remote(output) else {
        return Ok(());
    };
    let refuse = |what: String| Err(refusal(flag, output, &what, why));
    if let Some(f) = files.iter().find(|f| crate::store::remote(f) == Some(out)) {
        return refuse(format!("is the input file {}", f.display()));
    }
    for pat in patterns
        .iter()
        .filter(|p| crate::store::is_remote(p) && !p.contains(['*', '?', '[']))
    {
        let prefix = format!("{}/", pat.trim_end_matches('/'));
        if let Some(below) = out.strip_prefix(&prefix) {
            if !below.split('/').any(|level| level.starts_with(['.', '_'])) {
                return refuse(format!(
                    "is under the input prefix {pat}, whose every *.parquet object is read"
                ));
            }
        }
    }
    Ok(())
}

/// The usage error of an output (`flag`) that the inputs reach: `what` it is, and `why` that
/// matters.
fn refusal(flag: &str, output: &Path, what: &str, why: &str) -> Error {
    Error::Usage(format!(
        "{flag} {}: {what}; {why}. Choose {flag} outside the inputs",
        output.display()
    ))
}

/// `path` absolute, with symbolic links and `..` resolved as far as it exists (the rest, not
/// yet created, appended as given).
fn resolved(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut missing = Vec::new();
    let mut at = abs.as_path();
    loop {
        match at.canonicalize() {
            Ok(real) => return Ok(missing.iter().rev().fold(real, |p, c| p.join(c))),
            Err(_) => match (at.parent(), at.file_name()) {
                (Some(parent), Some(name)) => {
                    missing.push(name.to_os_string());
                    at = parent;
                }
                _ => return Ok(abs),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apart(patterns: &[&Path], files: &[PathBuf], output: &Path) -> std::result::Result<(), String> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.display().to_string()).collect();
        output_apart("--output", "why", &patterns, files, output).map_err(|e| e.to_string())
    }

    #[test]
    fn an_output_the_inputs_reach_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("day=1")).unwrap();
        let file = data.join("day=1").join("a.parquet");
        std::fs::write(&file, b"").unwrap();
        let files = [file.clone()];
        // The input directory itself, a folder inside it (not yet created), through `..`.
        let err = apart(&[&data], &files, &data).unwrap_err();
        assert!(err.contains("is the input directory"), "{err}");
        let err = apart(&[&data], &files, &data.join("scored")).unwrap_err();
        assert!(
            err.contains("is inside the input directory") && err.contains("; why. Choose --output outside"),
            "{err}"
        );
        let err = apart(&[&data], &files, &data.join("day=1/../x/y")).unwrap_err();
        assert!(err.contains("is inside the input directory"), "{err}");
        // An input file inside the output (given alone, or by a glob).
        let err = apart(&[&file], &files, &data).unwrap_err();
        assert!(
            err.contains(&format!("it holds the input file {}", file.display())),
            "{err}"
        );
        // Beside the inputs, or hidden from the search: fine.
        apart(&[&data], &files, &tmp.path().join("out")).unwrap();
        apart(&[&data], &files, &data.join("_scored")).unwrap();
        apart(&[&data], &files, &data.join(".cache/out")).unwrap();
        apart(&[&file], &files, &data.join("day=2")).unwrap();
        // The input file itself (`sql --to` over its own table).
        let err = apart(&[&file], &files, &file).unwrap_err();
        assert!(
            err.contains(&format!("is the input file {}", file.display())),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_the_input_directory_is_the_input_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let err = apart(&[&data], &[], &link.join("out")).unwrap_err();
        assert!(err.contains("is inside the input directory"), "{err}");
    }
}
