//! Source: finds the input Parquet files, checks each one against the data contract from its
//! footer alone (readable, non-empty, required columns present with usable types, no nulls in
//! key and score columns where the statistics tell), and registers them with DataFusion.
//!
//! Tables registered:
//! - `input_files`: the files as they are;
//! - `generations`: a view with the contract's canonical column names (`generation_id`,
//!   `segment_index`, `cumulative_score` as DOUBLE, `input_ids`, `base_score` as DOUBLE,
//!   `token_type_ids` when given) followed by every other column, carried unchanged.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// Names of the input columns that play a role in the job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnNames {
    /// Which generation a row belongs to (string or integer).
    pub generation_id: String,
    /// Position of the segment in its generation (integer).
    pub segment_index: String,
    /// Score of the text up to and including the segment (float).
    pub cumulative_score: String,
    /// Token ids (list of int32/int64).
    pub input_ids: String,
    /// Per-generation baseline score (float), or None for 0.0.
    pub base_score: Option<String>,
    /// Token type ids (list of integers), or None for zeros when the model asks.
    pub token_type_ids: Option<String>,
}

impl ColumnNames {
    /// The name the `generations` view gives an input column: a role column's canonical name,
    /// or the column's own.
    pub fn canonical(&self, name: &str) -> String {
        roles(self)
            .into_iter()
            .find(|r| r.0 == name)
            .map_or_else(|| name.to_string(), |r| r.1.to_string())
    }
}

impl Default for ColumnNames {
    fn default() -> Self {
        ColumnNames {
            generation_id: "generation_id".into(),
            segment_index: "segment_index".into(),
            cumulative_score: "cumulative_score".into(),
            input_ids: "input_ids".into(),
            base_score: None,
            token_type_ids: None,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Key,
    Integer,
    Float,
    IdList,
}

impl Kind {
    fn accepts(self, t: &DataType) -> bool {
        match self {
            Kind::Key => {
                t.is_integer() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            }
            Kind::Integer => t.is_integer(),
            Kind::Float => matches!(t, DataType::Float32 | DataType::Float64),
            Kind::IdList => match t {
                DataType::List(f) | DataType::LargeList(f) => {
                    matches!(f.data_type(), DataType::Int32 | DataType::Int64)
                }
                _ => false,
            },
        }
    }
    fn expected(self) -> &'static str {
        match self {
            Kind::Key => "a string or integer",
            Kind::Integer => "an integer",
            Kind::Float => "float32 or float64",
            Kind::IdList => "list or large_list of int32 or int64",
        }
    }
}

/// A role column: (name in the files, canonical name, kind, role description, nulls forbidden).
fn roles(cols: &ColumnNames) -> Vec<(String, &'static str, Kind, &'static str, bool)> {
    let mut v = vec![
        (
            cols.generation_id.clone(),
            "generation_id",
            Kind::Key,
            "generation id",
            true,
        ),
        (
            cols.segment_index.clone(),
            "segment_index",
            Kind::Integer,
            "segment index",
            true,
        ),
        (
            cols.cumulative_score.clone(),
            "cumulative_score",
            Kind::Float,
            "cumulative score",
            true,
        ),
        (
            cols.input_ids.clone(),
            "input_ids",
            Kind::IdList,
            "token ids",
            false,
        ),
    ];
    if let Some(b) = &cols.base_score {
        v.push((b.clone(), "base_score", Kind::Float, "base score", true));
    }
    if let Some(t) = &cols.token_type_ids {
        v.push((t.clone(), "token_type_ids", Kind::IdList, "token type ids", false));
    }
    v
}

/// The canonical names the `generations` view gives the role columns.
pub const CANONICAL: [&str; 6] = [
    "generation_id",
    "segment_index",
    "cumulative_score",
    "input_ids",
    "base_score",
    "token_type_ids",
];

/// One checked input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Rows, from the footer.
    pub rows: u64,
    /// Arrow schema.
    pub schema: SchemaRef,
    /// Whether every row group declares (`sorting_columns`) that it is sorted by
    /// (generation id, segment index), ascending.
    pub sorted: bool,
    /// Whether a float column's statistics have min == max ([`float_stats_constant`]).
    pub float_stats_constant: bool,
}

/// The checked input files.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The files, in a stable order.
    pub files: Vec<InputFile>,
}

impl Inputs {
    /// Whether DataFusion may take the files' statistics at their word: false when a float
    /// column of some file looks constant ([`float_stats_constant`]).
    pub fn statistics_safe(&self) -> bool {
        !self.files.iter().any(|f| f.float_stats_constant)
    }

    /// Whether every file declares itself sorted by (generation id, segment index).
    pub fn all_sorted(&self) -> bool {
        !self.files.is_empty() && self.files.iter().all(|f| f.sorted)
    }

    /// Total rows over all files.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

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
/// `_`) and globs into a sorted, de-duplicated list of files.
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        return Err(Error::Usage("no --input given".into()));
    }
    let mut all = BTreeSet::new();
    for pat in patterns {
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
            all.insert(abs);
        }
    }
    Ok(all.into_iter().collect())
}

/// Reads one file's footer and checks it against the contract. With `null_stats`, a key or
/// score column whose statistics count nulls is an error (quarantine runs leave nulls to the
/// row checks, which reject their generations).
pub fn check_file(path: &Path, cols: &ColumnNames, null_stats: bool) -> Result<InputFile> {
    let not_parquet = |reason: String| Error::NotParquet {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(not_parquet("the file is empty (0 bytes)".into()));
    }
    let meta = read_footer(&file).map_err(not_parquet)?;
    check_metadata(path, &meta, cols, null_stats)
}

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

/// [`check_file`] on a footer already read (`path` names the file in errors).
pub fn check_metadata(
    path: &Path,
    meta: &ArrowReaderMetadata,
    cols: &ColumnNames,
    null_stats: bool,
) -> Result<InputFile> {
    let schema = Arc::clone(meta.schema());
    let pq = meta.metadata();
    let rows: i64 = pq.file_metadata().num_rows();
    if rows <= 0 {
        return Err(Error::EmptyInput {
            path: path.to_path_buf(),
        });
    }
    for (name, _, kind, role, no_nulls) in roles(cols) {
        let field = schema.field_with_name(&name).map_err(|_| Error::MissingColumn {
            path: path.to_path_buf(),
            column: name.clone(),
            role,
            found: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        if !kind.accepts(field.data_type()) {
            return Err(Error::WrongColumnType {
                path: path.to_path_buf(),
                column: name,
                found: field.data_type().to_string(),
                expected: kind.expected().to_string(),
            });
        }
        if no_nulls && null_stats {
            check_null_stats(path, pq, &name)?;
        }
    }
    Ok(InputFile {
        path: path.to_path_buf(),
        rows: rows as u64,
        schema,
        sorted: declares_key_order(pq, cols),
        float_stats_constant: float_stats_constant(pq, &[]),
    })
}

/// Whether some top-level float column (other than the `trusted` ones, known to hold no NaN;
/// `"*"` trusts all) of a file of two rows or more has statistics saying it holds one value
/// (min == max over the file). Parquet's min/max leave NaN out, and DataFusion 55 replaces a
/// column whose file statistics have min == max with that value, so a NaN among equal values
/// would be read as that value. Scans of such files run without statistics.
pub fn float_stats_constant(
    pq: &datafusion::parquet::file::metadata::ParquetMetaData,
    trusted: &[&str],
) -> bool {
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

/// Whether every row group's `sorting_columns` start with the generation id and the segment
/// index, both ascending.
fn declares_key_order(pq: &datafusion::parquet::file::metadata::ParquetMetaData, cols: &ColumnNames) -> bool {
    metadata_declares_order(pq, &[&cols.generation_id, &cols.segment_index])
}

/// Whether every row group's `sorting_columns` start with `keys`, all ascending.
pub fn metadata_declares_order(
    pq: &datafusion::parquet::file::metadata::ParquetMetaData,
    keys: &[&str],
) -> bool {
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

fn check_null_stats(
    path: &Path,
    pq: &datafusion::parquet::file::metadata::ParquetMetaData,
    column: &str,
) -> Result<()> {
    let mut first_row = 0u64;
    for (i, rg) in pq.row_groups().iter().enumerate() {
        let end_row = first_row + rg.num_rows() as u64;
        let chunk = rg
            .columns()
            .iter()
            .find(|c| c.column_path().parts().len() == 1 && c.column_path().parts()[0] == column);
        if let Some(count) = chunk
            .and_then(|c| c.statistics())
            .and_then(|s| s.null_count_opt())
        {
            if count > 0 {
                return Err(Error::NullsInFile {
                    path: path.to_path_buf(),
                    column: column.to_string(),
                    count,
                    row_group: i,
                    first_row,
                    end_row,
                });
            }
        }
        first_row = end_row;
    }
    Ok(())
}

/// Checks every file ([`check_file`]) and that the role columns have one type across files.
pub fn check_inputs(files: &[PathBuf], cols: &ColumnNames, null_stats: bool) -> Result<Inputs> {
    let checked: Vec<InputFile> = files
        .iter()
        .map(|p| check_file(p, cols, null_stats))
        .collect::<Result<_>>()?;
    if let Some(first) = checked.first() {
        for (name, ..) in roles(cols) {
            let t0 = first
                .schema
                .field_with_name(&name)
                .map(|f| f.data_type().clone())?;
            for other in &checked[1..] {
                let t = other.schema.field_with_name(&name)?.data_type();
                if t != &t0 {
                    return Err(Error::WrongColumnType {
                        path: other.path.clone(),
                        column: name.clone(),
                        found: t.to_string(),
                        expected: format!("{t0}, as in {}", first.path.display()),
                    });
                }
            }
        }
    }
    Ok(Inputs { files: checked })
}

/// Double-quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Registers `input_files` and the `generations` view. Returns the carried column names (in
/// input order).
///
/// With `sorted`, each file is declared sorted by (generation id, segment index), so the
/// window runs streaming (no sort); DataFusion trusts that declaration, so the job checks the
/// order as rows flow.
pub async fn register(
    ctx: &SessionContext,
    inputs: &Inputs,
    cols: &ColumnNames,
    sorted: bool,
) -> Result<Vec<String>> {
    let keys = [cols.generation_id.as_str(), cols.segment_index.as_str()];
    let table = listing_table(
        ctx,
        inputs.files.iter().map(|f| f.path.as_path()),
        if sorted { &keys } else { &[] },
        inputs.statistics_safe(),
    )
    .await?;
    let schema: SchemaRef = datafusion::catalog::TableProvider::schema(&table);
    ctx.register_table("input_files", Arc::new(table))?;
    let carried = carried_columns(&schema, cols)?;
    register_view(ctx, cols, &carried, None).await?;
    Ok(carried)
}

/// A table over Parquet `files` as segscore reads them: strings keep the type they were written
/// as (no Utf8View), so outputs carry columns unchanged; declared sorted by `sort_keys`
/// (ascending, nulls last) when any are given. With `statistics_safe` false, the context's
/// scans stop using file statistics ([`float_stats_constant`]).
pub async fn listing_table<'a>(
    ctx: &SessionContext,
    files: impl IntoIterator<Item = &'a Path>,
    sort_keys: &[&str],
    statistics_safe: bool,
) -> Result<ListingTable> {
    let urls = files
        .into_iter()
        .map(|f| ListingTableUrl::parse(f.to_string_lossy()))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    if !statistics_safe {
        distrust_statistics(ctx);
    }
    let format = ParquetFormat::default().with_force_view_types(false);
    let mut options = ListingOptions::new(Arc::new(format)).with_file_extension("");
    if !sort_keys.is_empty() {
        use datafusion::prelude::ident;
        options = options.with_file_sort_order(vec![sort_keys
            .iter()
            .map(|k| ident(*k).sort(true, false))
            .collect()]);
    }
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    Ok(ListingTable::try_new(config)?)
}

/// (Re-)registers the `generations` view over `input_files`; with `shard = Some((k, n))`,
/// only the generations of shard k of n ([`crate::shard`]).
pub async fn register_view(
    ctx: &SessionContext,
    cols: &ColumnNames,
    carried: &[String],
    shard: Option<(usize, usize)>,
) -> Result<()> {
    let mut sql = generations_view_sql(cols, carried);
    if let Some((k, n)) = shard {
        sql.push_str(&format!(
            " WHERE {}({}, {n}) = {k}",
            crate::shard::UDF_NAME,
            quote_ident(&cols.generation_id)
        ));
    }
    let view = ctx.sql(&sql).await?.into_view();
    ctx.deregister_table("generations")?;
    ctx.register_table("generations", view)?;
    Ok(())
}

fn carried_columns(schema: &Schema, cols: &ColumnNames) -> Result<Vec<String>> {
    let role_names: Vec<String> = roles(cols).into_iter().map(|r| r.0).collect();
    let mut carried = Vec::new();
    for f in schema.fields() {
        let name = f.name();
        if role_names.contains(name) {
            continue;
        }
        if CANONICAL.contains(&name.as_str()) {
            return Err(Error::Usage(format!(
                "input column `{name}` would collide with the canonical column segscore gives a role column; rename it, or use it as that role's column"
            )));
        }
        if crate::loss::OUTPUT_COLUMNS.contains(&name.as_str()) {
            // A segscore output read back as input: this run computes these afresh.
            tracing::warn!(column = %name, "input column is replaced by this run's column of the same name");
            continue;
        }
        carried.push(name.clone());
    }
    Ok(carried)
}

fn generations_view_sql(cols: &ColumnNames, carried: &[String]) -> String {
    let mut items = vec![
        format!("{} AS generation_id", quote_ident(&cols.generation_id)),
        format!("{} AS segment_index", quote_ident(&cols.segment_index)),
        format!(
            "CAST({} AS DOUBLE) AS cumulative_score",
            quote_ident(&cols.cumulative_score)
        ),
        format!("{} AS input_ids", quote_ident(&cols.input_ids)),
        match &cols.base_score {
            Some(b) => format!("CAST({} AS DOUBLE) AS base_score", quote_ident(b)),
            None => "CAST(0.0 AS DOUBLE) AS base_score".to_string(),
        },
    ];
    items.push(match &cols.token_type_ids {
        Some(t) => format!("{} AS token_type_ids", quote_ident(t)),
        None => "NULL AS token_type_ids".to_string(),
    });
    items.extend(carried.iter().map(|c| quote_ident(c)));
    format!("SELECT {} FROM input_files", items.join(", "))
}
