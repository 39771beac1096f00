//! Hive partitioning: `key=value` folder levels (DuckDB's `PARTITION_BY`, Spark's
//! `partitionBy`, pyarrow's hive partitioning) as columns of the table, read by DataFusion's
//! `table_partition_cols` from the input folders, so a filter on them prunes whole folders.
//!
//! With `--hive-partitioning auto` (the default) an input folder is partitioned when every
//! Parquet file under it sits under the same sequence of `key=value` levels (a glob that takes
//! every Parquet file under its folder, `data/day=*/*.parquet`, is that folder); `on` requires
//! it, `off` reads the files alone. A column's type is an integer when every value is one, else a
//! string, unless `--partition-col KEY:TYPE` says. [`NULL_VALUE`] (how Hive, Spark and pyarrow
//! write a null) is a null of the column's type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// Whether input folders are read as hive-partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiveMode {
    /// When every file under the input folders has the same `key=value` levels.
    #[default]
    Auto,
    /// Always: an input that is not such a folder is an error.
    On,
    /// Never.
    Off,
}

impl std::str::FromStr for HiveMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(HiveMode::Auto),
            "on" => Ok(HiveMode::On),
            "off" => Ok(HiveMode::Off),
            o => Err(format!(
                "unknown --hive-partitioning `{o}` (expected auto, on or off)"
            )),
        }
    }
}

/// A partition column's declared type: `--partition-col day:int`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionCol {
    /// The key.
    pub name: String,
    /// int (64-bit) or string.
    pub kind: String,
}

impl std::str::FromStr for PartitionCol {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, kind) = s.split_once(':').unwrap_or((s, "string"));
        match kind {
            "int" | "string" if !name.is_empty() => Ok(PartitionCol {
                name: name.to_string(),
                kind: kind.to_string(),
            }),
            _ => Err(format!("--partition-col {s}: expected KEY:int or KEY:string")),
        }
    }
}

impl PartitionCol {
    fn data_type(&self) -> DataType {
        if self.kind == "int" {
            DataType::Int64
        } else {
            DataType::Utf8
        }
    }
}

/// The folder name Hive, Spark and pyarrow write for a null partition value
/// (`day=__HIVE_DEFAULT_PARTITION__`).
pub const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// The hive layout found: the input folders and the partition columns, in level order.
#[derive(Debug, Clone, PartialEq)]
pub struct Hive {
    /// The input folders (absolute), or `s3://` prefixes.
    pub roots: Vec<PathBuf>,
    /// The partition columns and their types.
    pub cols: Vec<(String, DataType)>,
    /// The partition columns with a null value ([`NULL_VALUE`]) in some folder.
    pub with_nulls: Vec<String>,
}

impl Hive {
    /// The table over the folders ([`crate::engine::tables::partitioned_table`]), each
    /// partition column of its type. DataFusion parses every folder value as the column's type
    /// and has no null: a column with [`NULL_VALUE`] folders is read as text, then made null
    /// there and cast (a filter on it still prunes folders: it is an expression of the
    /// partition column alone).
    pub async fn table(
        &self,
        ctx: &SessionContext,
        sort_keys: &[&str],
        statistics_safe: bool,
        schema: Option<SchemaRef>,
    ) -> Result<Arc<dyn TableProvider>> {
        use datafusion::functions::expr_fn::nullif;
        use datafusion::prelude::{cast, ident, lit};
        let nulls = |name: &str| self.with_nulls.iter().any(|n| n == name);
        let listed: Vec<(String, DataType)> = self
            .cols
            .iter()
            .map(|(n, t)| (n.clone(), if nulls(n) { DataType::Utf8 } else { t.clone() }))
            .collect();
        let table = crate::engine::tables::partitioned_table(
            ctx,
            &self.roots,
            &listed,
            sort_keys,
            statistics_safe,
            schema,
        )
        .await?;
        if self.with_nulls.is_empty() {
            return Ok(Arc::new(table));
        }
        let df = ctx.read_table(Arc::new(table))?;
        let columns = df
            .schema()
            .fields()
            .iter()
            .map(
                |f| match self.cols.iter().find(|(n, _)| n == f.name() && nulls(n)) {
                    Some((n, t)) => cast(nullif(ident(n), lit(NULL_VALUE)), t.clone()).alias(n),
                    None => ident(f.name()),
                },
            )
            .collect::<Vec<_>>();
        Ok(df.select(columns)?.into_view())
    }
}

/// The `key=value` levels of `file` below `root`, in order (none where it is not below it).
pub(crate) fn levels(root: &Path, file: &Path) -> Vec<(String, String)> {
    let Ok(rel) = file.strip_prefix(root) else {
        return Vec::new();
    };
    let dirs: Vec<String> = rel
        .parent()
        .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    dirs.iter()
        .filter_map(|d| d.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// The folder a glob's files lie under: its path up to the first level with a `*`, `?` or `[`
/// (absolute; an `s3://` prefix as it is).
fn glob_root(pattern: &str) -> Result<PathBuf> {
    let literal: Vec<&str> = pattern
        .split('/')
        .take_while(|level| !level.contains(['*', '?', '[']))
        .collect();
    let root = literal.join("/");
    if crate::store::is_remote(pattern) {
        return Ok(PathBuf::from(root.trim_end_matches('/')));
    }
    crate::engine::tables::absolute(Path::new(if root.is_empty() { "." } else { &root }))
}

/// Every `*.parquet` file under `root` (a folder, or an `s3://` prefix: object URLs), hidden
/// ones included: what a partitioned table over `root` reads.
pub(crate) fn parquet_files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    match crate::store::remote(root) {
        Some(url) => {
            let loc = crate::store::Location::parse(url)?;
            all.extend(
                loc.list()?
                    .into_iter()
                    .filter(|m| m.location.as_ref().ends_with(".parquet"))
                    .map(|m| PathBuf::from(loc.url_of(&m.location))),
            );
        }
        None => every_parquet_file(root, &mut all),
    }
    Ok(all)
}

/// Every `*.parquet` file under `dir`, hidden ones included.
fn every_parquet_file(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                every_parquet_file(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
}

/// Finds the hive layout of the inputs: `patterns` as given, `files` as expanded (absolute),
/// `schemas` the files' schemas (by file) where they are known. A folder level named like a
/// column the files have (a writer that kept the partition column in its files) leaves the
/// levels unread in `auto` mode (the files' column is read), and is an error in `on` mode: a
/// table cannot have both.
pub fn detect(
    patterns: &[String],
    files: &[PathBuf],
    mode: HiveMode,
    given: &[PartitionCol],
    schemas: &[(&Path, &Schema)],
) -> Result<Option<Hive>> {
    let mode = if given.is_empty() || mode == HiveMode::Off {
        mode
    } else {
        HiveMode::On
    };
    if mode == HiveMode::Off {
        return Ok(None);
    }
    let refuse = |why: String| -> Result<Option<Hive>> {
        match mode {
            HiveMode::On => Err(Error::Usage(format!("--hive-partitioning on: {why}"))),
            _ => {
                tracing::debug!(%why, "inputs read without hive partitioning");
                Ok(None)
            }
        }
    };
    let mut roots = Vec::new();
    // The roots of globs: read as the folder when the glob takes every Parquet file under it.
    let mut glob_roots = Vec::new();
    for p in patterns {
        let path = Path::new(p);
        let glob = !path.exists() && p.contains(['*', '?', '[']);
        // A prefix in object storage is a folder: its objects lie below it, not at it.
        let root = if glob {
            let root = glob_root(p)?;
            glob_roots.push((root.clone(), p));
            Some(root)
        } else if crate::store::is_remote(p) {
            let root = PathBuf::from(p.trim_end_matches('/'));
            let prefix =
                !p.contains(['*', '?', '[']) && files.iter().any(|f| f.starts_with(&root) && *f != root);
            prefix.then_some(root)
        } else if path.is_dir() {
            Some(crate::engine::tables::absolute(path)?)
        } else {
            None
        };
        match root {
            Some(r) => roots.push(r),
            None => {
                return refuse(format!(
                    "input {p} is not a folder; partition columns come from the folders under an input folder"
                ))
            }
        }
    }
    let mut keys: Option<Vec<String>> = None;
    let mut values: Vec<Vec<String>> = Vec::new();
    for f in files {
        let Some(root) = roots.iter().find(|r| f.starts_with(r)) else {
            continue;
        };
        let lv = levels(root, f);
        let k: Vec<String> = lv.iter().map(|(k, _)| k.clone()).collect();
        match &keys {
            None => {
                values = vec![Vec::new(); k.len()];
                keys = Some(k.clone());
            }
            Some(prev) if *prev != k => {
                return refuse(format!(
                    "{} has the partition levels [{}], other files [{}]",
                    f.display(),
                    k.join(", "),
                    prev.join(", ")
                ))
            }
            _ => {}
        }
        for (i, (_, v)) in lv.into_iter().enumerate() {
            values[i].push(v);
        }
    }
    let keys = match keys {
        Some(k) if !k.is_empty() => k,
        _ => return refuse("no `key=value` folder levels under the input folders".into()),
    };
    let in_files = keys.iter().find_map(|k| {
        schemas
            .iter()
            .find(|(_, schema)| schema.field_with_name(k).is_ok())
            .map(|(file, _)| (k, file))
    });
    if let Some((key, file)) = in_files {
        let why = format!(
            "the folder levels `{key}=...` name a column that the files have too (`{key}` in {}): a table cannot have both",
            file.display()
        );
        if mode == HiveMode::Auto {
            tracing::info!(%why, "hive partitioning left off: the files' own columns are read");
            return Ok(None);
        }
        return refuse(format!(
            "{why}; pass --hive-partitioning off to read the files' column, or rename it"
        ));
    }
    for g in given {
        if !keys.contains(&g.name) {
            return Err(Error::Usage(format!(
                "--partition-col {}: the input folders' levels are {}",
                g.name,
                keys.join(", ")
            )));
        }
    }
    // DataFusion reads every Parquet file under the folder: none may hide in a hidden or
    // temporary folder (Spark's _temporary/) that segscore skips, and a glob's root is read only
    // where the glob took every one (`data/day=*/*.parquet`, not `data/day=1*/*.parquet`).
    for root in &roots {
        let all = parquet_files_under(root)?;
        let hidden = all.iter().find(|f| {
            f.strip_prefix(root)
                .unwrap_or(f)
                .iter()
                .any(|c| c.to_string_lossy().starts_with(['.', '_']))
        });
        if let Some((_, glob)) = glob_roots.iter().find(|(r, _)| r == root) {
            let taken = files.iter().filter(|f| f.starts_with(root)).count();
            if hidden.is_some() || taken != all.len() {
                return refuse(format!(
                    "the glob {glob} takes {taken} of the {} Parquet files under {}, which a partitioned table would read; give the folder, and filter on the partition columns",
                    all.len(),
                    root.display()
                ));
            }
        }
        if let Some(hidden) = hidden {
            return Err(Error::Usage(format!(
                "input folder {}: {} is hidden or in a temporary folder, and a hive-partitioned table would read it with the rest; remove it, or pass --hive-partitioning off",
                root.display(),
                hidden.display()
            )));
        }
    }
    let cols = keys
        .iter()
        .zip(&values)
        .map(|(k, vs)| {
            let mut values = vs.iter().filter(|v| *v != NULL_VALUE).peekable();
            let t = match given.iter().find(|g| &g.name == k) {
                Some(g) => g.data_type(),
                None if values.peek().is_some() && values.all(|v| v.parse::<i64>().is_ok()) => {
                    DataType::Int64
                }
                None => DataType::Utf8,
            };
            (k.clone(), t)
        })
        .collect();
    let with_nulls = keys
        .iter()
        .zip(&values)
        .filter(|(_, vs)| vs.iter().any(|v| v == NULL_VALUE))
        .map(|(k, _)| k.clone())
        .collect();
    Ok(Some(Hive {
        roots,
        cols,
        with_nulls,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_types_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let f = |p: &str| {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"x").unwrap();
            path
        };
        let files = vec![f("day=1/split=train/a.parquet"), f("day=20/split=test/b.parquet")];
        let pat = vec![root.display().to_string()];
        let hive = detect(&pat, &files, HiveMode::Auto, &[], &[]).unwrap().unwrap();
        assert_eq!(
            hive.cols,
            vec![("day".into(), DataType::Int64), ("split".into(), DataType::Utf8)]
        );
        assert!(hive.with_nulls.is_empty());
        let given = vec!["day:string".parse().unwrap()];
        let hive = detect(&pat, &files, HiveMode::Auto, &given, &[])
            .unwrap()
            .unwrap();
        assert_eq!(hive.cols[0].1, DataType::Utf8);
        // A null value (Hive's, Spark's and pyarrow's folder name) leaves the type to the others.
        let mut with_null = files.clone();
        with_null.push(f(&format!("day={NULL_VALUE}/split={NULL_VALUE}/c.parquet")));
        let hive = detect(&pat, &with_null, HiveMode::Auto, &[], &[])
            .unwrap()
            .unwrap();
        assert_eq!(
            hive.cols,
            vec![("day".into(), DataType::Int64), ("split".into(), DataType::Utf8)]
        );
        assert_eq!(hive.with_nulls, ["day", "split"]);
        // Levels that differ: auto reads the files alone, on is an error.
        let mixed = vec![f("day=1/a.parquet"), f("b.parquet")];
        assert_eq!(detect(&pat, &mixed, HiveMode::Auto, &[], &[]).unwrap(), None);
        assert!(detect(&pat, &mixed, HiveMode::On, &[], &[])
            .unwrap_err()
            .to_string()
            .contains("partition levels"));
        assert_eq!(detect(&pat, &files, HiveMode::Off, &[], &[]).unwrap(), None);
        let dir2 = tempfile::tempdir().unwrap();
        let root2 = dir2.path().to_path_buf();
        let visible = root2.join("day=1/a.parquet");
        std::fs::create_dir_all(root2.join("day=1/_temporary")).unwrap();
        std::fs::write(&visible, b"x").unwrap();
        std::fs::write(root2.join("day=1/_temporary/b.parquet"), b"x").unwrap();
        let pat2 = vec![root2.display().to_string()];
        let err = detect(&pat2, &[visible], HiveMode::Auto, &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("temporary"), "{err}");
        assert!("day:float".parse::<PartitionCol>().is_err());
        // A level named like a column the files have: not read in auto mode, refused in on.
        let with_day = Schema::new(vec![datafusion::arrow::datatypes::Field::new(
            "day",
            DataType::Utf8,
            true,
        )]);
        let schemas = [(files[1].as_path(), &with_day)];
        assert_eq!(detect(&pat, &files, HiveMode::Auto, &[], &schemas).unwrap(), None);
        let err = detect(&pat, &files, HiveMode::On, &[], &schemas)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the folder levels `day=...` name a column that the files have too (`day` in")
                && err.contains("b.parquet"),
            "{err}"
        );
    }
}
