//! Reading ahead in object storage. A Parquet scan's partition reads its files one after
//! another, one request in flight at a time (DataFusion's `FileStream`), so over many small
//! objects a scan waits a round trip for each. Where a scan reads from object storage,
//! [`ReadAheadRule`] gives it a reader factory that fetches each partition's next small objects
//! whole, in the background (up to [`AHEAD_OBJECTS`] objects and [`AHEAD_BYTES`] bytes ahead of
//! the one being read), and serves the scan's byte ranges from them. Footers still come from
//! DataFusion's metadata cache (which the inputs' check seeds). Objects larger than
//! [`AHEAD_MAX_OBJECT`] are read by range as before: a round trip is a small part of their
//! reading. What the scan reads, and so its batches, do not change.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileMetrics, ParquetFileReaderFactory,
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

/// The most objects a partition fetches ahead of the one its scan reads.
pub const AHEAD_OBJECTS: usize = 8;

/// The most bytes a partition holds fetched ahead (the object being read not counted).
pub const AHEAD_BYTES: u64 = 16 << 20;

/// Objects up to this size are fetched whole (ahead, or when the scan opens them); larger ones
/// are read by range.
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
        let located = |files: Vec<PartitionedFile>| -> Vec<(Path, u64)> {
            files
                .into_iter()
                .map(|f| (f.object_meta.location, f.object_meta.size))
                .collect()
        };
        let groups: Vec<Vec<(Path, u64)>> = config
            .file_groups
            .iter()
            .map(|g| located(g.files().to_vec()))
            .collect();
        let small = |files: &[(Path, u64)]| files.iter().filter(|f| f.1 <= AHEAD_MAX_OBJECT).count();
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
            let all = located(all);
            if small(&all) < 2 {
                return Ok(None);
            }
            let queue = Arc::new(Mutex::new(Ahead::new(all, groups.len())));
            vec![queue; groups.len()]
        } else {
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
            inner: CachedParquetFileReaderFactory::new(
                Arc::clone(&store),
                self.runtime.cache_manager.get_file_metadata_cache(),
            ),
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

/// An object's bytes, fetched in the background: None where the fetch failed (the reader then
/// reads by range, and reports the store's error if that fails too).
type Fetch = Shared<BoxFuture<'static, Option<Bytes>>>;

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
        let size = file.object_meta.size;
        let whole = match (
            self.queues.get(partition_index),
            tokio::runtime::Handle::try_current(),
        ) {
            (Some(ahead), Ok(runtime)) => {
                let mut ahead = ahead.lock().unwrap_or_else(|e| e.into_inner());
                ahead.take(&location, &mut |path| fetch(&runtime, &self.store, path))
            }
            _ => None,
        };
        let scanned = whole
            .is_some()
            .then(|| ParquetFileMetrics::new(partition_index, location.as_ref(), metrics));
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(AheadReader {
            inner,
            whole: whole.map(|f| (f, size)),
            scanned,
        }))
    }
}

/// Starts fetching the object at `path` whole, on `runtime`.
fn fetch(runtime: &tokio::runtime::Handle, store: &Arc<dyn ObjectStore>, path: &Path) -> Fetch {
    let (store, path) = (Arc::clone(store), path.clone());
    let task = runtime.spawn(async move { store.get(&path).await.ok()?.bytes().await.ok() });
    async move { task.await.ok().flatten() }.boxed().shared()
}

/// The read-ahead of one partition, or of the queue all of a scan's streams take files from:
/// its files in the order the scan opens them, and the fetches started and not yet taken.
struct Ahead {
    /// Location and size of each file, in order.
    files: Vec<(Path, u64)>,
    /// Which files the scan has opened.
    opened: Vec<bool>,
    /// Every file before this one is opened.
    lowest: usize,
    /// Files before this one have had their fetch started, or were opened, or are too large.
    considered: usize,
    /// Fetches started ahead, by file, in order.
    started: VecDeque<(usize, Fetch)>,
    /// The last fetches taken, one for each stream and one more, for a file opened again.
    recent: VecDeque<(usize, Fetch)>,
    streams: usize,
    /// The most files ahead, and bytes held ahead: [`AHEAD_OBJECTS`] and [`AHEAD_BYTES`] for
    /// each stream that opens these files.
    objects: usize,
    bytes: u64,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("files", &self.files.len())
            .field("lowest", &self.lowest)
            .field("started", &self.started.len())
            .finish()
    }
}

impl Ahead {
    /// The read-ahead of `files`, opened by `streams` streams.
    fn new(files: Vec<(Path, u64)>, streams: usize) -> Self {
        let streams = streams.max(1);
        Ahead {
            opened: vec![false; files.len()],
            files,
            lowest: 0,
            considered: 0,
            started: VecDeque::new(),
            recent: VecDeque::new(),
            streams,
            objects: AHEAD_OBJECTS * streams,
            bytes: AHEAD_BYTES * streams as u64,
        }
    }

    /// The scan opens the file at `location`: its bytes, fetched ahead or fetched now (None
    /// for a large object, or a file not in the list), and the fetches of the files after it
    /// started, within the limits. A file opened again soon after (DataFusion opens a second
    /// reader of a file to decode it once it has read its bloom filters with the first) gets
    /// the fetch it took. `start` starts a fetch.
    fn take(&mut self, location: &Path, start: &mut dyn FnMut(&Path) -> Fetch) -> Option<Fetch> {
        let unopened =
            (self.lowest..self.files.len()).find(|&i| !self.opened[i] && self.files[i].0 == *location);
        let Some(at) = unopened else {
            let files = &self.files;
            let again = self.recent.iter().rev().find(|(i, _)| files[*i].0 == *location);
            return again.map(|(_, f)| f.clone());
        };
        self.opened[at] = true;
        while self.opened.get(self.lowest) == Some(&true) {
            self.lowest += 1;
        }
        let taken = match self.started.iter().position(|(i, _)| *i == at) {
            Some(p) => self.started.remove(p).map(|(_, f)| f),
            None if self.files[at].1 <= AHEAD_MAX_OBJECT => Some(start(&self.files[at].0)),
            None => None,
        };
        if let Some(f) = &taken {
            self.recent.push_back((at, f.clone()));
            if self.recent.len() > self.streams + 1 {
                self.recent.pop_front();
            }
        }
        let mut held: u64 = self.started.iter().map(|(i, _)| self.files[*i].1).sum();
        while self.considered < self.files.len() && self.considered <= at + self.objects {
            let j = self.considered;
            let (path, size) = &self.files[j];
            if !self.opened[j] && *size <= AHEAD_MAX_OBJECT {
                if held + size > self.bytes {
                    break;
                }
                // Two pieces of one object in a row share its fetch.
                let same = match self.started.back() {
                    _ if j == 0 || self.files[j - 1].0 != *path => None,
                    Some((i, f)) if *i == j - 1 => Some(f.clone()),
                    _ if at == j - 1 => taken.clone(),
                    _ => None,
                };
                held += size;
                self.started.push_back((j, same.unwrap_or_else(|| start(path))));
            }
            self.considered += 1;
        }
        taken
    }
}

/// A reader that serves byte ranges from its object fetched whole (when that fetch succeeded
/// and has the size the scan expects), else from DataFusion's reader, which also gives the
/// footer.
struct AheadReader {
    inner: Box<dyn AsyncFileReader + Send>,
    whole: Option<(Fetch, u64)>,
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

/// `ranges` of an object fetched whole (`size` bytes expected), None to read them by range.
async fn slices(whole: Option<(Fetch, u64)>, ranges: &[Range<u64>]) -> Option<Vec<Bytes>> {
    let (fetch, size) = whole?;
    let bytes = fetch.await.filter(|b| b.len() as u64 == size)?;
    ranges
        .iter()
        .map(|r| (r.start <= r.end && r.end <= size).then(|| bytes.slice(r.start as usize..r.end as usize)))
        .collect()
}

impl AsyncFileReader for AheadReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        let whole = self.whole.clone();
        async move {
            let ranges = [range];
            match slices(whole, &ranges).await.and_then(|mut b| b.pop()) {
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
        let whole = self.whole.clone();
        async move {
            match slices(whole, &ranges).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition's files, `n` of `size` bytes each (`f0`, `f1`, ...).
    fn files(sizes: &[u64]) -> Vec<(Path, u64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (Path::from(format!("f{i}")), *s))
            .collect()
    }

    /// Opens `locations` in turn; each open's fetched file (if any) and the fetches started.
    fn opens(ahead: &mut Ahead, locations: &[&str]) -> Vec<(Option<String>, Vec<String>)> {
        locations
            .iter()
            .map(|l| {
                let mut started = Vec::new();
                let mut start = |p: &Path| {
                    started.push(p.to_string());
                    let name = Bytes::from(p.to_string());
                    futures::future::ready(Some(name)).boxed().shared()
                };
                let taken = ahead.take(&Path::from(*l), &mut start);
                let name =
                    taken.map(|f| String::from_utf8(f.now_or_never().flatten().unwrap().to_vec()).unwrap());
                (name, started)
            })
            .collect()
    }

    #[test]
    fn fetches_run_ahead_within_the_object_and_byte_limits() {
        let mb = 1 << 20;
        // Ten objects of 3 MiB: five fit in 16 MiB ahead; each open tops the queue up.
        let mut ahead = Ahead::new(files(&[3 * mb; 10]), 1);
        let got = opens(&mut ahead, &["f0", "f1", "f2"]);
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(got[0], (Some("f0".into()), names(0..6)));
        assert_eq!(got[1], (Some("f1".into()), names(6..7)));
        assert_eq!(got[2], (Some("f2".into()), names(7..8)));
        // Small objects: at most AHEAD_OBJECTS ahead.
        let mut ahead = Ahead::new(files(&[100; 20]), 1);
        let got = opens(&mut ahead, &["f0", "f1"]);
        assert_eq!(got[0], (Some("f0".into()), names(0..AHEAD_OBJECTS + 1)));
        assert_eq!(
            got[1],
            (Some("f1".into()), names(AHEAD_OBJECTS + 1..AHEAD_OBJECTS + 2))
        );
    }

    #[test]
    fn large_objects_are_read_by_range_and_files_opened_out_of_order_found() {
        let mb = 1 << 20;
        let mut ahead = Ahead::new(files(&[100, 9 * mb, 100, 100, 100]), 1);
        // f1 is too large to fetch whole; f3 opened before f2 (another stream of a shared
        // queue took f2) takes its fetch, and f2 still finds its own.
        let got = opens(&mut ahead, &["f0", "f1", "f3", "f2"]);
        assert_eq!(
            got[0],
            (
                Some("f0".into()),
                vec!["f0".into(), "f2".into(), "f3".into(), "f4".into()]
            )
        );
        assert_eq!(got[1], (None, vec![]));
        assert_eq!(got[2], (Some("f3".into()), vec![]));
        assert_eq!(got[3], (Some("f2".into()), vec![]));
        // A file opened again soon after gets the same fetch; one opened long before, or not
        // in the list, is read by range; nothing is started.
        assert_eq!(
            opens(&mut ahead, &["f2", "f0", "elsewhere"]),
            vec![(Some("f2".into()), vec![]), (None, vec![]), (None, vec![])]
        );
        // A file opened before its turn is fetched then, and not again when the others pass it.
        let mut ahead = Ahead::new(files(&[100; 12]), 1);
        let got = opens(&mut ahead, &["f10", "f0"]);
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(
            got[0],
            (
                Some("f10".into()),
                [vec!["f10".to_string()], names(0..10), names(11..12)].concat()
            )
        );
        assert_eq!(got[1], (Some("f0".into()), vec![]));
    }

    #[test]
    fn a_shared_queue_reads_ahead_for_each_stream() {
        let mut ahead = Ahead::new(files(&[100; 40]), 2);
        let got = opens(&mut ahead, &["f0", "f1"]);
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(got[0], (Some("f0".into()), names(0..2 * AHEAD_OBJECTS + 1)));
        assert_eq!(
            got[1],
            (
                Some("f1".into()),
                names(2 * AHEAD_OBJECTS + 1..2 * AHEAD_OBJECTS + 2)
            )
        );
    }

    #[test]
    fn pieces_of_one_object_in_a_row_share_its_fetch() {
        let mut ahead = Ahead::new(
            vec![
                (Path::from("a"), 100),
                (Path::from("a"), 100),
                (Path::from("b"), 100),
                (Path::from("b"), 100),
            ],
            1,
        );
        let got = opens(&mut ahead, &["a", "a", "b", "b"]);
        assert_eq!(got[0], (Some("a".into()), vec!["a".into(), "b".into()]));
        for (i, name) in [(1, "a"), (2, "b"), (3, "b")] {
            assert_eq!(got[i], (Some(name.into()), vec![]));
        }
        // The same where the object's first piece opens out of order (another stream's file
        // before it fetched ahead then): its second piece shares the first's fetch.
        let mut ahead = Ahead::new(
            vec![
                (Path::from("x"), 100),
                (Path::from("a"), 100),
                (Path::from("a"), 100),
            ],
            1,
        );
        let got = opens(&mut ahead, &["a", "x", "a"]);
        assert_eq!(got[0], (Some("a".into()), vec!["a".into(), "x".into()]));
        assert_eq!(got[1], (Some("x".into()), vec![]));
        assert_eq!(got[2], (Some("a".into()), vec![]));
    }
}
