//! One object or prefix of a bucket ([`Location`]): reads (whole, by range, a Parquet file's
//! footer through [`RemoteFile`]), writes, listings and globs, uploads and downloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::{block, bucket_store, remote, spawn, store_error, SCHEME};
use crate::error::{Error, Result};

/// One object (or prefix) of a bucket.
#[derive(Clone, Debug)]
pub struct Location {
    /// The bucket.
    pub bucket: String,
    /// The key (no leading or trailing `/`).
    pub key: Key,
    /// The bucket's store.
    pub store: Arc<dyn ObjectStore>,
}

impl Location {
    /// Parses `s3://bucket/key`.
    pub fn parse(url: &str) -> Result<Self> {
        let (bucket, key) = bucket_and_key(url)?;
        let key = Key::parse(key).map_err(|e| Error::Usage(format!("{url}: not a valid object key: {e}")))?;
        Ok(Location {
            bucket: bucket.to_string(),
            key,
            store: bucket_store(bucket)?,
        })
    }

    /// The location of a path: its URL parsed, if it holds one.
    pub fn of(path: &Path) -> Result<Option<Self>> {
        remote(path).map(Location::parse).transpose()
    }

    /// This location's URL.
    pub fn url(&self) -> String {
        self.url_of(&self.key)
    }

    /// The URL of another key of the same bucket.
    pub fn url_of(&self, key: &Key) -> String {
        format!("{SCHEME}{}/{key}", self.bucket)
    }

    /// The parts of `key` below this location (`["segments", "part-0.parquet"]`); empty when
    /// `key` is not under it.
    pub fn parts_under(&self, key: &Key) -> Vec<String> {
        key.prefix_match(&self.key)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default()
    }

    /// `self/name` (`name` may hold `/`).
    pub fn join(&self, name: &str) -> Location {
        let key = name
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.key.clone(), |k, part| k.join(part));
        Location {
            bucket: self.bucket.clone(),
            key,
            store: Arc::clone(&self.store),
        }
    }

    /// The object's size and time, or None when there is no such object.
    pub fn head(&self) -> Result<Option<ObjectMeta>> {
        let (store, key, url) = (Arc::clone(&self.store), self.key.clone(), self.url());
        block(async move {
            match store.head(&key).await {
                Ok(m) => Ok(Some(m)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_error(&url, e)),
            }
        })
    }

    /// The object's bytes, or None when there is no such object.
    pub fn get(&self) -> Result<Option<Bytes>> {
        let (store, key, url) = (Arc::clone(&self.store), self.key.clone(), self.url());
        block(async move {
            match store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some).map_err(|e| store_error(&url, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_error(&url, e)),
            }
        })
    }

    /// Bytes `start..start+len` of the object.
    pub fn get_range(&self, start: u64, len: u64) -> Result<Bytes> {
        let (store, key, url) = (Arc::clone(&self.store), self.key.clone(), self.url());
        block(async move {
            store
                .get_range(&key, start..start + len)
                .await
                .map_err(|e| store_error(&url, e))
        })
    }

    /// Writes the object whole (a single PUT: readers see all of it or none).
    pub fn put(&self, bytes: Vec<u8>) -> Result<()> {
        let (store, key, url) = (Arc::clone(&self.store), self.key.clone(), self.url());
        block(async move {
            store
                .put(&key, Bytes::from(bytes).into())
                .await
                .map(drop)
                .map_err(|e| store_error(&url, e))
        })
    }

    /// Every object under this prefix (recursively), sorted by key.
    pub fn list(&self) -> Result<Vec<ObjectMeta>> {
        let (store, key, url) = (Arc::clone(&self.store), self.key.clone(), self.url());
        block(async move {
            let prefix = (!key.as_ref().is_empty()).then_some(&key);
            let mut all: Vec<ObjectMeta> = store
                .list(prefix)
                .try_collect()
                .await
                .map_err(|e| store_error(&url, e))?;
            all.sort_by(|a, b| a.location.cmp(&b.location));
            Ok(all)
        })
    }

    /// Deletes the objects `keys` (missing ones are no error).
    pub fn delete(&self, keys: Vec<Key>) -> Result<()> {
        let (store, url) = (Arc::clone(&self.store), self.url());
        block(async move {
            let stream = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
            let results: Vec<_> = store.delete_stream(stream).collect().await;
            for r in results {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(store_error(&url, e)),
                }
            }
            Ok(())
        })
    }

    /// Downloads keys of this bucket to local files (their folders created), several at once.
    pub fn download(&self, files: Vec<(Key, PathBuf)>) -> Result<()> {
        let store = Arc::clone(&self.store);
        let bucket = self.bucket.clone();
        block(async move {
            futures::stream::iter(files)
                .map(|(key, local)| {
                    let store = Arc::clone(&store);
                    let url = format!("{SCHEME}{bucket}/{key}");
                    async move {
                        let bytes = async { store.get(&key).await?.bytes().await }
                            .await
                            .map_err(|e| store_error(&url, e))?;
                        if let Some(dir) = local.parent() {
                            tokio::fs::create_dir_all(dir)
                                .await
                                .map_err(|e| Error::io(dir, e))?;
                        }
                        tokio::fs::write(&local, &bytes)
                            .await
                            .map_err(|e| Error::io(&local, e))
                    }
                })
                .buffer_unordered(8)
                .try_collect::<Vec<()>>()
                .await
                .map(drop)
        })
    }

    /// Uploads local files to keys of this bucket, several at once; large files in parts.
    pub fn upload(&self, files: Vec<(PathBuf, Key)>) -> Result<()> {
        block(self.upload_future(files))
    }

    /// Starts [`Location::upload`] in the background; the handle gives its outcome.
    pub fn start_upload(&self, files: Vec<(PathBuf, Key)>) -> tokio::task::JoinHandle<Result<()>> {
        spawn(self.upload_future(files))
    }

    fn upload_future(
        &self,
        files: Vec<(PathBuf, Key)>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let store = Arc::clone(&self.store);
        let bucket = self.bucket.clone();
        async move {
            futures::stream::iter(files)
                .map(|(local, key)| {
                    let store = Arc::clone(&store);
                    let url = format!("{SCHEME}{bucket}/{key}");
                    async move {
                        let mut file = tokio::fs::File::open(&local)
                            .await
                            .map_err(|e| Error::io(&local, e))?;
                        let mut w = object_store::buffered::BufWriter::new(store, key);
                        let copied = tokio::io::copy(&mut file, &mut w).await;
                        if let Err(e) = copied {
                            w.abort().await.ok();
                            return Err(Error::Store {
                                url,
                                reason: format!("upload failed: {e}"),
                            });
                        }
                        tokio::io::AsyncWriteExt::shutdown(&mut w)
                            .await
                            .map_err(|e| Error::Store {
                                url,
                                reason: format!("upload failed: {e}"),
                            })
                    }
                })
                .buffer_unordered(8)
                .try_collect::<Vec<()>>()
                .await
                .map(drop)
        }
    }
}

/// The URL DataFusion reads the object at `url` by (with `folder`, every object under that
/// prefix): its key as it is, each character a URL reads otherwise (`%`, `?`, `#`, a space)
/// percent-encoded. DataFusion decodes the path of the URL it is given, so an object named
/// `a%20b.parquet` was looked for as `a b.parquet` (and `q?=1.parquet` as `q`): "No files found".
pub fn table_url(url: &str, folder: bool) -> Result<url::Url> {
    let (bucket, key) = bucket_and_key(url)?;
    let bad = |why: String| Error::Usage(format!("{url}: {why}"));
    let mut table = url::Url::parse(&format!("{SCHEME}{bucket}/")).map_err(|e| bad(e.to_string()))?;
    {
        let mut segments = table
            .path_segments_mut()
            .map_err(|()| bad("not a URL with a path".into()))?;
        segments.clear();
        if !key.is_empty() {
            segments.extend(key.split('/'));
            if folder {
                segments.push("");
            }
        }
    }
    Ok(table)
}

/// The bucket and the key (no leading or trailing `/`) of `s3://bucket/key`: an error where it
/// is not such a URL or names no bucket.
fn bucket_and_key(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| Error::Usage(format!("{url}: not an {SCHEME} URL")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::Usage(format!("{url}: no bucket in the URL")));
    }
    Ok((bucket, key.trim_matches('/')))
}

/// Expands `s3://bucket/key` (the object, where one has that key), `s3://bucket/prefix` (every
/// `*.parquet` object under it, skipping names starting with `.` or `_`) or `s3://bucket/glob`
/// (`*`, `?`, `[...]` matched against whole keys; a matched key is also a prefix) into object
/// URLs, sorted. None found is [`Error::NoInputFiles`], counting and naming the objects passed
/// over for their names (Hive and Flink name theirs `000000_0`). With `pin`, each object found
/// is pinned with what the listing (or the HEAD of a key that names one) said of it
/// ([`super::pin_head`]): its check then asks for no HEAD of its own.
pub fn expand(pattern: &str, pin: bool) -> Result<Vec<PathBuf>> {
    let glob_at = pattern.find(['*', '?', '[']);
    let loc = Location::parse(pattern)?;
    if glob_at.is_some_and(|at| at < SCHEME.len() + loc.bucket.len()) {
        return Err(Error::Usage(format!(
            "input {pattern}: a glob must be in the key, not the bucket name"
        )));
    }
    // The parts of a key below the prefix: a Parquet file, no part hidden.
    let visible = |parts: &[&str]| {
        parts.last().is_some_and(|p| p.ends_with(".parquet"))
            && !parts.iter().any(|p| p.starts_with(['.', '_']))
    };
    // A folder searched (`folder`: a key's first parts, `below`: the rest) must not be an open
    // table format's (one inside a hidden folder is not read, as a local search skips it).
    let table_format = |folder: &[&str], below: &[&str]| match super::table_format(below) {
        Some((i, format)) if !below[..i].iter().any(|p| p.starts_with(['.', '_'])) => {
            let url = |n: usize| {
                let parts: Vec<&str> = folder.iter().chain(&below[..n]).copied().collect();
                format!("{SCHEME}{}/{}", loc.bucket, parts.join("/"))
            };
            Err(super::table_format_refusal(&url(i), format, &(url(i + 1) + "/")))
        }
        _ => Ok(()),
    };
    // Objects that are not hidden but not `*.parquet` either, for the error when none is.
    let mut passed_over: Vec<Key> = Vec::new();
    // A key that names an object is that object, whatever characters it holds (a `[` in
    // `data[1].parquet` too, as a local path that exists is that path); one that names none is
    // a prefix, or a glob. The bucket itself (no key) is a prefix (a HEAD of the empty key can
    // answer, as moto's does, with an empty object).
    let object = (!pattern.ends_with('/') && !loc.key.as_ref().is_empty())
        .then(|| loc.head().ok().flatten())
        .flatten();
    let found: Vec<ObjectMeta> = match (object, glob_at) {
        (Some(m), _) => vec![m],
        (None, None) => {
            let prefix: Vec<&str> = loc.key.as_ref().split('/').filter(|p| !p.is_empty()).collect();
            let mut found = Vec::new();
            for m in loc.list()? {
                let parts = loc.parts_under(&m.location);
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                table_format(&prefix, &parts)?;
                if visible(&parts) {
                    found.push(m);
                } else if !parts.iter().any(|p| p.starts_with(['.', '_'])) {
                    passed_over.push(m.location);
                }
            }
            found
        }
        (None, Some(at)) => {
            let fixed = &pattern[..at];
            let base = Location::parse(&fixed[..fixed.rfind('/').map_or(fixed.len(), |i| i + 1)])?;
            let key_pattern = pattern[SCHEME.len() + loc.bucket.len()..].trim_start_matches('/');
            let pat = glob::Pattern::new(key_pattern)
                .map_err(|e| Error::Usage(format!("input {pattern}: bad glob: {e}")))?;
            let opts = glob::MatchOptions {
                require_literal_separator: true,
                ..Default::default()
            };
            let mut found = Vec::new();
            for m in base.list()? {
                // The key itself, or a folder above it, matches the glob; a folder matched is
                // searched.
                let parts: Vec<&str> = m.location.as_ref().split('/').collect();
                let mut matched = false;
                for n in 1..=parts.len() {
                    if pat.matches_with(&parts[..n].join("/"), opts) {
                        table_format(&parts[..n], &parts[n..])?;
                        matched |= n == parts.len() || visible(&parts[n..]);
                    }
                }
                let parquet = m.location.as_ref().ends_with(".parquet");
                let hidden = parts.iter().any(|p| p.starts_with(['.', '_']));
                if matched && parquet {
                    found.push(m);
                } else if matched && !hidden {
                    passed_over.push(m.location);
                }
            }
            found
        }
    };
    if found.is_empty() {
        let first = passed_over.first().map(|k| loc.url_of(k));
        return Err(Error::no_parquet_files(
            pattern,
            "object",
            passed_over.len(),
            first.as_deref(),
            "give such objects by name",
        ));
    }
    let mut urls = Vec::with_capacity(found.len());
    for m in found {
        urls.push(PathBuf::from(loc.url_of(&m.location)));
        if pin {
            super::pin_head(&loc.bucket, m)?;
        }
    }
    Ok(urls)
}

/// The bytes of the object a path names (a model, a tokenizer), or None for a local path.
pub fn read_object(path: &Path) -> Option<Result<Vec<u8>>> {
    let url = remote(path)?;
    Some(Location::parse(url).and_then(|loc| {
        loc.get()?.map(|b| b.to_vec()).ok_or_else(|| Error::Store {
            url: url.to_string(),
            reason: "no such object".into(),
        })
    }))
}

/// A file's bytes, local or in object storage, the error naming it.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    match read_object(path) {
        Some(bytes) => bytes,
        None => std::fs::read(path).map_err(|e| Error::io(path, e)),
    }
}

/// A text file's contents, local or in object storage (`--query-file`, `sql --file`).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| Error::Usage(format!("{}: not UTF-8 text: {e}", path.display())))
}

/// A Parquet file in object storage, read by ranges (its footer, say).
pub struct RemoteFile {
    loc: Location,
    /// What its HEAD said (or its listing, where that pinned it).
    meta: ObjectMeta,
    /// The object's last bytes ([`RemoteFile::tail_len`]: where its footer, and often its page
    /// index, lie), fetched whole by the first read of its end (a footer's length), and
    /// serving the reads in them after it: a footer is then one request, not one for its
    /// length, one for itself and one or two for the page index.
    tail: std::sync::Mutex<Option<Bytes>>,
}

/// The most bytes at an object's end [`RemoteFile`] fetches at once.
pub const TAIL_BYTES: u64 = 64 << 10;

/// The fewest bytes at an object's end [`RemoteFile`] fetches at once (all of a smaller one).
pub const TAIL_MIN_BYTES: u64 = 16 << 10;

impl RemoteFile {
    /// Opens `url`: an error naming it when there is no such object.
    pub fn open(url: &str) -> Result<Self> {
        let loc = Location::parse(url)?;
        let meta = loc.head()?.ok_or_else(|| Error::Store {
            url: url.to_string(),
            reason: "no such object".into(),
        })?;
        Ok(RemoteFile {
            loc,
            meta,
            tail: std::sync::Mutex::new(None),
        })
    }

    /// Answers this object's later HEADs in this process with what its open found
    /// ([`super::pin_head`]): for an input once checked, so DataFusion's scan asks no more.
    pub fn pin(&self) -> Result<()> {
        super::pin_head(&self.loc.bucket, self.meta.clone())
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.meta.size
    }

    /// How many bytes at its end its first read there fetches: an eighth of the object, from
    /// 16 KiB to 64 KiB. A small object's footer is small (a row group or two), and the scan
    /// that follows reads the object's rows again, so its tail should add little to what a run
    /// downloads of it (64 KiB more for an object of 100 KB, before).
    pub fn tail_len(&self) -> u64 {
        (self.meta.size / 8)
            .clamp(TAIL_MIN_BYTES, TAIL_BYTES)
            .min(self.meta.size)
    }

    /// Its size and when it was last modified, in nanoseconds since the epoch (0 before it),
    /// as its HEAD said: the stamp `--resume` compares and DataFusion's metadata cache checks
    /// (a local file's is [`crate::engine::footer::file_stamp`]).
    pub fn stamp(&self) -> (u64, u128) {
        let nanos = self.meta.last_modified.timestamp_nanos_opt().unwrap_or(0).max(0);
        (self.meta.size, nanos as u128)
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.meta.size == 0
    }
}

impl datafusion::parquet::file::reader::Length for RemoteFile {
    fn len(&self) -> u64 {
        self.meta.size
    }
}

impl datafusion::parquet::file::reader::ChunkReader for RemoteFile {
    type T = std::io::Cursor<Bytes>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        Ok(std::io::Cursor::new(self.get_bytes(
            start,
            (self.meta.size - start.min(self.meta.size)) as usize,
        )?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        let external = |e| datafusion::parquet::errors::ParquetError::External(Box::new(e));
        let tail_start = self.meta.size - self.tail_len();
        if start < tail_start || start + length as u64 > self.meta.size {
            return self.loc.get_range(start, length as u64).map_err(external);
        }
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = match &*tail {
            Some(bytes) => bytes.clone(),
            // Other reads in the tail before it is fetched (a column chunk of the last row
            // group, read by a reader given the footer) read what they ask for.
            None if start + length as u64 != self.meta.size => {
                drop(tail);
                return self.loc.get_range(start, length as u64).map_err(external);
            }
            None => {
                let bytes = self
                    .loc
                    .get_range(tail_start, self.meta.size - tail_start)
                    .map_err(external)?;
                *tail = Some(bytes.clone());
                bytes
            }
        };
        let from = (start - tail_start) as usize;
        match bytes.get(from..from + length) {
            Some(_) => Ok(bytes.slice(from..from + length)),
            // A store that gave less than it was asked for: ask for the range itself.
            None => self.loc.get_range(start, length as u64).map_err(external),
        }
    }
}

/// A local folder for files on their way to object storage (`sql --to s3://...`, `generate
/// -o s3://...`), under the temporary directory; removed, with what it holds, when dropped.
#[derive(Debug)]
pub struct Staged(pub PathBuf);

impl Staged {
    /// A new, empty folder.
    pub fn new() -> Result<Staged> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("segscore-staged-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Staged(dir))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
