//! Reading ahead in object storage. A Parquet scan's partition reads its files one after
//! another, one request in flight at a time (DataFusion's `FileStream`), so over many small
//! objects a scan waits a round trip for each. Where a scan reads from object storage,
//! [`ReadAheadRule`] gives it a reader factory that fetches each partition's next objects in the
//! background (up to [`AHEAD_OBJECTS`] objects and [`AHEAD_BYTES`] bytes ahead of the one being
//! read), and serves the scan's byte ranges from them. An object is fetched whole where the scan
//! reads most of it; where it reads a few of its columns (`SELECT avg(score)` over files whose
//! bulk is token lists), only those columns' chunks are fetched, found in the object's footer in
//! DataFusion's metadata cache (which the inputs' check seeds); and where a partition reads a
//! piece of an object (the scan cuts it between partitions), only the chunks of that piece's row
//! groups, once for the pieces it reads one after another. What is fetched ahead of one
//! object is at most [`AHEAD_MAX_OBJECT`] bytes; a larger object is read by range as before: a
//! round trip is a small part of its reading. What the scan reads, and so its batches, do not
//! change.

mod chunks;
mod queue;

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetAccessPlan, ParquetFileMetrics, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::{BoxFuture, FutureExt, Shared};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use chunks::Reads;
use queue::Ahead;

/// The most objects a partition fetches ahead of the one its scan reads.
pub const AHEAD_OBJECTS: usize = 8;

/// The most bytes a partition holds fetched ahead (the object being read not counted).
pub const AHEAD_BYTES: u64 = 16 << 20;

/// Objects whose bytes the scan reads (the whole object, or its columns' chunks) are this many
/// or fewer are fetched ahead, or when the scan opens them; larger ones are read by range.
pub const AHEAD_MAX_OBJECT: u64 = 8 << 20;

/// A physical optimizer rule: each Parquet scan over object storage whose partitions read
/// more than one small object gets a reader factory that reads ahead.
#[derive(Debug)]
pub struct ReadAheadRule {
    runtime: Arc<RuntimeEnv>,
}

impl ReadAheadRule {
    /// The rule for plans run in `runtime` (where their object stores and metadata cache are).
    pub fn new(runtime: Arc<RuntimeEnv>) -> Self {
        ReadAheadRule { runtime }
    }

    /// `node` with a scan that reads ahead, or None to leave it as it is.
    fn read_ahead(
        &self,
        node: &Arc<dyn ExecutionPlan>,
        options: &ConfigOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(None);
        };
        let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(None);
        };
        let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else {
            return Ok(None);
        };
        if config.object_store_url == ObjectStoreUrl::local_filesystem() {
            return Ok(None);
        }
        // What to fetch of each file: the chunks the scan reads of it where they are few of
        // the object ([`Reads::chunks`]), else the whole object. Pieces of one object next to
        // each other (a run's key ranges cut an object into many) share one fetch: what they
        // read together.
        let cache = self.runtime.cache_manager.get_file_metadata_cache();
        let reads = Reads::of(config);
        let located = |files: &[PartitionedFile]| -> Vec<(PieceId, Wanted)> {
            let mut located = Vec::with_capacity(files.len());
            for run in files.chunk_by(|a, b| a.object_meta.location == b.object_meta.location) {
                let wanted = match reads.chunks(cache.as_ref(), run) {
                    Some(r) => Wanted::Ranges(r.into()),
                    None => Wanted::Whole(run[0].object_meta.size),
                };
                located.extend(run.iter().map(|f| (PieceId::of(f), wanted.clone())));
            }
            located
        };
        let streams = config.file_groups.len();
        let small =
            |files: &[(PieceId, Wanted)]| files.iter().filter(|f| f.1.bytes() <= AHEAD_MAX_OBJECT).count();
        // Where DataFusion lets a partition's stream take files from one queue that all the
        // scan's streams share (its work stealing: the files in no required order nor
        // partitioning), the streams open the files in that queue's order and read ahead of
        // it together; else each partition reads ahead of its own files.
        let shared = !(config.preserve_order
            || config.output_partitioning.is_some()
            || !options.execution.enable_file_stream_work_stealing);
        let queues: Vec<Arc<Mutex<Ahead>>> = if shared {
            let all = source.reorder_files(
                config
                    .file_groups
                    .iter()
                    .flat_map(|g| g.iter().cloned())
                    .collect(),
            );
            let all = located(&all);
            if small(&all) < 2 {
                return Ok(None);
            }
            let queue = Arc::new(Mutex::new(Ahead::new(all, streams)));
            vec![queue; streams]
        } else {
            let groups: Vec<Vec<(PieceId, Wanted)>> =
                config.file_groups.iter().map(|g| located(g.files())).collect();
            if !groups.iter().any(|files| small(files) > 1) {
                return Ok(None);
            }
            groups
                .into_iter()
                .map(|files| Arc::new(Mutex::new(Ahead::new(files, 1))))
                .collect()
        };
        let store = self.runtime.object_store(&config.object_store_url)?;
        let factory = ReadAhead {
            inner: CachedParquetFileReaderFactory::new(Arc::clone(&store), cache),
            store,
            queues,
        };
        let source = source.clone().with_parquet_file_reader_factory(Arc::new(factory));
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .build();
        Ok(Some(DataSourceExec::from_data_source(config)))
    }
}

impl PhysicalOptimizerRule for ReadAheadRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        options: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match self.read_ahead(&node, options)? {
                Some(scan) => Transformed::yes(scan),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "segscore_read_ahead"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What was fetched of an object: pieces of it (their first byte's offset and their bytes),
/// the whole object as one piece from 0.
type Pieces = Arc<[(u64, Bytes)]>;

/// An object's bytes, fetched in the background: None where the fetch failed (the reader then
/// reads by range, and reports the store's error if that fails too).
type Fetch = Shared<BoxFuture<'static, Option<Pieces>>>;

/// The reader factory of a scan that reads ahead: DataFusion's (footers from the metadata
/// cache) with each partition's small objects fetched whole, ahead of the scan.
#[derive(Debug)]
struct ReadAhead {
    inner: CachedParquetFileReaderFactory,
    store: Arc<dyn ObjectStore>,
    /// Each partition's read-ahead (one shared by all where the streams share their files).
    queues: Vec<Arc<Mutex<Ahead>>>,
}

impl ParquetFileReaderFactory for ReadAhead {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let location = file.object_meta.location.clone();
        let fetched = match (
            self.queues.get(partition_index),
            tokio::runtime::Handle::try_current(),
        ) {
            (Some(ahead), Ok(runtime)) => {
                let mut ahead = ahead.lock().unwrap_or_else(|e| e.into_inner());
                let mut start = |path: &Path, wanted: &Wanted| fetch(&runtime, &self.store, path, wanted);
                ahead.take(&PieceId::of(&file), &mut start)
            }
            _ => None,
        };
        let scanned = fetched
            .is_some()
            .then(|| ParquetFileMetrics::new(partition_index, location.as_ref(), metrics));
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(AheadReader {
            inner,
            fetched,
            scanned,
        }))
    }
}

/// A file a scan opens, as the scan names it: the object, and the part of it the scan reads
/// there (DataFusion's byte range of it, the row groups its access plan scans; None: all).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PieceId {
    path: Path,
    range: Option<(i64, i64)>,
    row_groups: Option<Vec<usize>>,
}

impl PieceId {
    fn of(file: &PartitionedFile) -> Self {
        PieceId {
            path: file.object_meta.location.clone(),
            range: file.range.as_ref().map(|r| (r.start, r.end)),
            row_groups: file
                .extensions
                .get::<ParquetAccessPlan>()
                .map(|a| a.row_group_indexes()),
        }
    }
}

/// What to fetch of an object: all of it (its size, as the scan expects it), or these ranges.
#[derive(Clone, Debug, PartialEq)]
enum Wanted {
    Whole(u64),
    Ranges(Arc<[Range<u64>]>),
}

impl Wanted {
    /// The bytes the fetch holds.
    fn bytes(&self) -> u64 {
        match self {
            Wanted::Whole(size) => *size,
            Wanted::Ranges(r) => r.iter().map(|r| r.end - r.start).sum(),
        }
    }
}

/// Starts fetching `what` of the object at `path`, on `runtime`. A whole object of another size
/// than the scan expects is no fetch (the object changed since it was listed).
fn fetch(
    runtime: &tokio::runtime::Handle,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    what: &Wanted,
) -> Fetch {
    let (store, path, what) = (Arc::clone(store), path.clone(), what.clone());
    let task = runtime.spawn(async move {
        let pieces: Vec<(u64, Bytes)> = match what {
            Wanted::Whole(size) => {
                let bytes = store.get(&path).await.ok()?.bytes().await.ok()?;
                (bytes.len() as u64 == size).then_some(vec![(0, bytes)])?
            }
            Wanted::Ranges(ranges) => {
                let bytes = store.get_ranges(&path, &ranges).await.ok()?;
                ranges.iter().map(|r| r.start).zip(bytes).collect()
            }
        };
        Some(Pieces::from(pieces))
    });
    async move { task.await.ok().flatten() }.boxed().shared()
}

/// A reader that serves byte ranges from what was fetched of its object (when the fetch
/// succeeded and holds them), else from DataFusion's reader, which also gives the footer.
struct AheadReader {
    inner: Box<dyn AsyncFileReader + Send>,
    fetched: Option<Fetch>,
    /// The scan's `bytes_scanned` for ranges served from the fetched object.
    scanned: Option<ParquetFileMetrics>,
}

impl AheadReader {
    /// Counts `ranges` served from the fetched object in the scan's `bytes_scanned`.
    fn scanned(&self, ranges: &[Range<u64>]) {
        if let Some(m) = &self.scanned {
            m.bytes_scanned
                .add(ranges.iter().map(|r| (r.end - r.start) as usize).sum());
        }
    }
}

/// `ranges` of an object from what was fetched of it, each inside one fetched piece; None to
/// read them by range.
async fn slices(fetched: Option<Fetch>, ranges: &[Range<u64>]) -> Option<Vec<Bytes>> {
    let pieces = fetched?.await?;
    ranges
        .iter()
        .map(|r| {
            let (start, bytes) = pieces.iter().find(|(start, b)| {
                *start <= r.start && r.start <= r.end && r.end <= start + b.len() as u64
            })?;
            Some(bytes.slice((r.start - start) as usize..(r.end - start) as usize))
        })
        .collect()
}

impl AsyncFileReader for AheadReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        let fetched = self.fetched.clone();
        async move {
            let ranges = [range];
            match slices(fetched, &ranges).await.and_then(|mut b| b.pop()) {
                Some(b) => {
                    self.scanned(&ranges);
                    Ok(b)
                }
                None => {
                    let [range] = ranges;
                    self.inner.get_bytes(range).await
                }
            }
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        let fetched = self.fetched.clone();
        async move {
            match slices(fetched, &ranges).await {
                Some(b) => {
                    self.scanned(&ranges);
                    Ok(b)
                }
                None => self.inner.get_byte_ranges(ranges).await,
            }
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        self.inner.get_metadata(options)
    }
}
