//! Tables over Parquet files as segscore reads them: strings keep their written type, a
//! declared sort order where the files have one, and no file statistics where DataFusion would
//! misread them ([`crate::engine::footer::float_stats_constant`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use datafusion::prelude::SessionContext;

use crate::engine::footer::{distrust_statistics, float_stats_constant, Stamped};
use crate::engine::types::table_schema;
use crate::error::{Error, Result};

/// A table over Parquet `files` as segscore reads them: strings keep the type they were written
/// as (no Utf8View), so outputs carry columns unchanged; declared sorted by `sort_keys`
/// (ascending, nulls last) when any are given. With `statistics_safe` false, the context's
/// scans stop using file statistics ([`float_stats_constant`]). With `schema`, the table has
/// that schema and each file's columns are cast to it
/// ([`crate::engine::types::widened_schema`]); else DataFusion infers it from the first path
/// (all the files of a folder, a file alone).
pub async fn listing_table<'a>(
    ctx: &SessionContext,
    files: impl IntoIterator<Item = &'a Path>,
    sort_keys: &[&str],
    statistics_safe: bool,
    schema: Option<SchemaRef>,
) -> Result<ListingTable> {
    let urls = files.into_iter().map(file_url).collect::<Result<Vec<_>>>()?;
    listing(ctx, urls, &[], sort_keys, statistics_safe, schema).await
}

/// A table over every Parquet file under the folders `roots`, with their `key=value` folder
/// levels as the columns `partition_cols` (hive partitioning: a filter on them skips whole
/// folders); otherwise as [`listing_table`].
pub async fn partitioned_table(
    ctx: &SessionContext,
    roots: &[PathBuf],
    partition_cols: &[(String, DataType)],
    sort_keys: &[&str],
    statistics_safe: bool,
    schema: Option<SchemaRef>,
) -> Result<ListingTable> {
    let mut urls = Vec::with_capacity(roots.len());
    for root in roots {
        if let Some(prefix) = crate::store::remote(root) {
            urls.push(ListingTableUrl::try_new(
                crate::store::table_url(prefix, true)?,
                None,
            )?);
            continue;
        }
        let abs = absolute(root)?;
        require_utf8(&abs)?;
        // A folder URL ends with '/': DataFusion lists it.
        let url = url::Url::from_directory_path(&abs)
            .map_err(|()| Error::Usage(format!("{}: not a folder path", abs.display())))?;
        urls.push(ListingTableUrl::try_new(url, None)?);
    }
    listing(ctx, urls, partition_cols, sort_keys, statistics_safe, schema).await
}

async fn listing(
    ctx: &SessionContext,
    urls: Vec<ListingTableUrl>,
    partition_cols: &[(String, DataType)],
    sort_keys: &[&str],
    statistics_safe: bool,
    schema: Option<SchemaRef>,
) -> Result<ListingTable> {
    if !statistics_safe {
        distrust_statistics(ctx);
    }
    let format = ParquetFormat::default()
        .with_force_view_types(false)
        .with_coerce_int96(Some(crate::engine::footer::INT96_UNIT.to_string()));
    let mut options = ListingOptions::new(Arc::new(format));
    options = if partition_cols.is_empty() {
        options.with_file_extension("")
    } else {
        options
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols.to_vec())
    };
    if !sort_keys.is_empty() {
        use datafusion::prelude::ident;
        options = options.with_file_sort_order(vec![sort_keys
            .iter()
            .map(|k| ident(*k).sort(true, false))
            .collect()]);
    }
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options);
    // A schema given (`widened_schema` of files that differ): each file's columns are cast to it
    // as they are read. Else DataFusion infers it from the first path.
    let config = match schema {
        Some(schema) => config.with_schema(schema),
        None => segscore_plan::infer_schema(config, &ctx.state()).await?,
    };
    Ok(ListingTable::try_new(config)?)
}
/// The Parquet part files directly in `dir` (`*.parquet`, not hidden), sorted; empty when
/// `dir` is absent or holds none.
pub fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files = Vec::new();
    for e in entries {
        let path = e.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".parquet") && !name.starts_with(['.', '_']) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Puts footers already read into `ctx`'s file metadata cache, where DataFusion's scans and
/// their statistics look before they read a file's footer: one `(path, (size, last-modified
/// nanoseconds), footer)` per file, as the input check found them. DataFusion takes an entry
/// only while the file it lists has that size and time, so a file replaced since is read again.
/// An object's footer is otherwise fetched again by the planning (a request per object, before
/// the first row) and a file's parsed again.
pub fn seed_metadata_cache<'a>(
    ctx: &SessionContext,
    footers: impl IntoIterator<Item = (&'a Path, (u64, u128), &'a ArrowReaderMetadata)>,
) -> Result<()> {
    use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
    use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    for (path, (size, nanos), footer) in footers {
        // A time the check could not read (0) or past 2262 matches no listing: left out.
        let Some(nanos) = i64::try_from(nanos).ok().filter(|&n| n > 0) else {
            continue;
        };
        let location = file_url(path)?.prefix().clone();
        let object = object_store::ObjectMeta {
            location: location.clone(),
            last_modified: chrono::DateTime::from_timestamp_nanos(nanos),
            size,
            e_tag: None,
            version: None,
        };
        let metadata = Arc::new(CachedParquetMetaData::new(Arc::clone(footer.metadata())));
        cache.put(&location, CachedFileMetadataEntry::new(object, metadata));
    }
    Ok(())
}

/// [`seed_metadata_cache`] with `files` and their footers and stamps, one each, as
/// [`crate::engine::footer::read_stamped_footers`] gives them.
pub fn seed_stamped(ctx: &SessionContext, files: &[PathBuf], stamped: &[Stamped]) -> Result<()> {
    let seeds = files.iter().zip(stamped);
    seed_metadata_cache(ctx, seeds.map(|(f, (m, stamp))| (f.as_path(), *stamp, m)))
}

/// The URL DataFusion reads a file by: an `s3://` URL's object by its key as it is
/// ([`crate::store::table_url`]); a local path as it is. A `%`, `[`, `*` or `?` in a name is
/// that character, never an escape or a glob. A path that is not UTF-8 is an error naming it.
pub fn file_url(path: &Path) -> Result<ListingTableUrl> {
    if let Some(url) = crate::store::remote(path) {
        return Ok(ListingTableUrl::try_new(
            crate::store::table_url(url, false)?,
            None,
        )?);
    }
    let abs = absolute(path)?;
    require_utf8(&abs)?;
    let url = url::Url::from_file_path(&abs)
        .map_err(|()| Error::Usage(format!("{}: not a file path", abs.display())))?;
    Ok(ListingTableUrl::try_new(url, None)?)
}

/// `path` made absolute, for a URL: DataFusion's object store refuses a path with `..` in it
/// (`-i ../data/a.parquet` failed with "illegal character sequence"), so the part up to the
/// last `..` is resolved on the file system (as the OS resolves it, symbolic links and all),
/// and a path without one is only made absolute (its name as given).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let comps: Vec<Component> = abs.components().collect();
    let Some(last_up) = comps.iter().rposition(|c| matches!(c, Component::ParentDir)) else {
        return Ok(abs);
    };
    let head: PathBuf = comps[..=last_up].iter().collect();
    let real = head.canonicalize().map_err(|e| Error::io(&head, e))?;
    Ok(comps[last_up + 1..].iter().fold(real, |p, c| p.join(c)))
}

/// An error naming `path` when it is not valid UTF-8 (DataFusion reads files by URL).
pub fn require_utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::PathNotUtf8 {
        path: path.to_path_buf(),
    })
}

/// A listing table over Parquet `files`, declared sorted by `sort_keys` (ascending) if given.
/// `trusted` names the float columns known to hold no NaN (`"*"`: all), see
/// [`float_stats_constant`].
pub async fn parquet_table(
    ctx: &SessionContext,
    files: &[PathBuf],
    sort_keys: &[&str],
    trusted: &[&str],
) -> Result<Arc<dyn TableProvider>> {
    let stamped = crate::engine::footer::read_stamped_footers(files)?;
    parquet_table_read(ctx, files, &stamped, sort_keys, trusted).await
}

/// [`parquet_table`] over files whose footers are already read (one per file, with its
/// stamp, as [`crate::engine::footer::read_stamped_footers`] gives them): they are put in
/// `ctx`'s metadata cache ([`seed_metadata_cache`]), so its scans do not read them again.
pub async fn parquet_table_read(
    ctx: &SessionContext,
    files: &[PathBuf],
    stamped: &[Stamped],
    sort_keys: &[&str],
    trusted: &[&str],
) -> Result<Arc<dyn TableProvider>> {
    seed_stamped(ctx, files, stamped)?;
    // Footers were read first, so an unreadable one is an error naming the file (DataFusion's
    // schema inference could panic on some).
    let (statistics_safe, schema) = read_as(files, stamped, trusted)?;
    let table = listing_table(
        ctx,
        files.iter().map(PathBuf::as_path),
        sort_keys,
        statistics_safe,
        schema,
    )
    .await?;
    Ok(Arc::new(table))
}

/// Parquet files with their footers (one each) and how a table reads them ([`read_as`]), found
/// once for every table made over them (`segscore sql` registers a table again to read it in
/// key order, or to fall back).
pub struct ParquetFiles {
    /// The files.
    pub files: Vec<PathBuf>,
    /// Their footers, each with the size and last-modified time of its file as it was read.
    stamped: Vec<Stamped>,
    statistics_safe: bool,
    schema: Option<SchemaRef>,
}

impl ParquetFiles {
    /// `files` with their footers and stamps ([`crate::engine::footer::read_stamped_footers`]):
    /// an error where no one type holds a column's values in every file.
    pub fn new(files: Vec<PathBuf>, stamped: Vec<Stamped>) -> Result<Self> {
        let (statistics_safe, schema) = read_as(&files, &stamped, &[])?;
        Ok(ParquetFiles {
            files,
            stamped,
            statistics_safe,
            schema,
        })
    }

    /// Their footers, one per file.
    pub fn footers(&self) -> impl Iterator<Item = &ArrowReaderMetadata> {
        self.stamped.iter().map(|(m, _)| m)
    }

    /// A table over the files, declared sorted by `sort_keys` if any; their footers are put in
    /// `ctx`'s metadata cache ([`seed_stamped`]), so its scans do not read them again.
    pub async fn table(&self, ctx: &SessionContext, sort_keys: &[&str]) -> Result<Arc<dyn TableProvider>> {
        seed_stamped(ctx, &self.files, &self.stamped)?;
        let files = self.files.iter().map(PathBuf::as_path);
        let table = listing_table(ctx, files, sort_keys, self.statistics_safe, self.schema.clone()).await?;
        Ok(Arc::new(table))
    }
}

/// How a table over `files` with `footers` (one each, as [`crate::engine::footer::read_stamped_footers`]
/// gives them; the stamps are not read here) is read: whether its scans may use the
/// files' statistics (no float column's look constant, [`float_stats_constant`], `trusted`
/// aside), and its schema when that is not the first file's
/// ([`crate::engine::types::widened_schema`], a time column's unit as the footers' statistics
/// allow). A column that no one type holds in every file is an error naming it and two files
/// ([`crate::engine::types::Conflict::error`]).
pub fn read_as(
    files: &[PathBuf],
    footers: &[Stamped],
    trusted: &[&str],
) -> Result<(bool, Option<SchemaRef>)> {
    let statistics_safe = !footers
        .iter()
        .any(|(m, _)| float_stats_constant(m.metadata(), trusted));
    let schemas: Vec<&Schema> = footers.iter().map(|(m, _)| m.schema().as_ref()).collect();
    let bounds = |i: usize, path: &[crate::engine::units::Step]| {
        let (footer, _) = footers.get(i)?;
        let crate::engine::units::Step::Field(column) = path.first()? else {
            return None;
        };
        let field = footer.schema().field_with_name(column).ok()?;
        let leaves = crate::engine::units::time_leaves(column, field.data_type());
        let leaf = leaves.iter().find(|l| l.path == path)?;
        crate::engine::footer::time_bounds(footer.metadata(), path, &leaf.data_type)
    };
    let schema = table_schema(files, &schemas, bounds)?;
    Ok((statistics_safe, schema))
}
