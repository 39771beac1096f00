//! Object storage: `s3://bucket/key` URLs for inputs, models, tokenizers and outputs, through
//! the `object_store` crate DataFusion reads with.
//!
//! A location that is an `s3://` URL travels through segscore as a path holding the URL
//! (`Path::new("s3://bucket/key")`); [`remote`] tells the two kinds apart.
//!
//! Credentials and endpoint come from the standard places, in this order: `AWS_*` environment
//! variables (keys, session token, region, `AWS_ENDPOINT_URL`, web identity, container
//! credentials), then the profile `AWS_PROFILE` (default `default`) in
//! `~/.aws/credentials` and `~/.aws/config`, then the instance metadata service. The
//! `--s3-endpoint` flag selects an S3-compatible store; an `http://` endpoint allows plain
//! HTTP. No credential is ever logged or written: errors name the URL and the problem only.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::limit::LimitStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::error::{Error, Result};

mod location;
mod pinned;
pub use location::{expand, read_bytes, read_object, read_text, table_url, Location, RemoteFile, Staged};
pub use pinned::Pinned;

/// The URL scheme segscore reads and writes object storage by.
pub const SCHEME: &str = "s3://";

/// Whether `s` is an object-store URL.
pub fn is_remote(s: &str) -> bool {
    s.starts_with(SCHEME)
}

/// Why `s`, a URL of a scheme other than `s3://` (`gs://`, `s3a://`, `hdfs://`, `file://`...),
/// cannot be used: taken as a path, `--output gs://bucket/out` wrote a local folder `gs:` and
/// the run said it had succeeded. None for an `s3://` URL or a path (a scheme of one letter is
/// a Windows drive, `C://`).
pub fn foreign_url(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let named = scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    if !named || is_remote(s) {
        return None;
    }
    let hint = match scheme.to_ascii_lowercase().as_str() {
        "s3a" | "s3n" => format!("write it {SCHEME}{rest}"),
        "file" => format!("give the path itself ({rest})"),
        _ => format!("segscore reads and writes local paths and {SCHEME} URLs (S3 and S3-compatible stores: --s3-endpoint)"),
    };
    Some(format!(
        "{s}: {scheme}:// is not a scheme segscore reads or writes; {hint}"
    ))
}

/// The URL a path holds, when it is an object-store URL.
pub fn remote(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| is_remote(s))
}

/// Refuses an object-store URL given (by `flag`) for something that only lives on local disk:
/// "`flag` URL: `why`; give a path" (a URL taken as a path made a local folder named `s3:`).
pub fn local_only(flag: &str, path: &Path, why: &str) -> Result<()> {
    match remote(path) {
        Some(url) => Err(Error::Usage(format!("{flag} {url}: {why}; give a path"))),
        None => Ok(()),
    }
}

/// An open table format whose folders hold files a table has removed or replaced beside its
/// live ones (until they are vacuumed): reading every Parquet file of such a folder would
/// count those rows again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFormat {
    /// "a Delta Lake table".
    pub name: &'static str,
    /// How a user lists the table's current files.
    pub listing: &'static str,
}

const DELTA: TableFormat = TableFormat {
    name: "a Delta Lake table",
    listing: "delta-rs: `DeltaTable(path).file_uris()`; Spark: `spark.read.format(\"delta\").load(path).inputFiles()`",
};
const HUDI: TableFormat = TableFormat {
    name: "an Apache Hudi table",
    listing: "Spark: `spark.read.format(\"hudi\").load(path).inputFiles()`",
};
const ICEBERG: TableFormat = TableFormat {
    name: "an Apache Iceberg table",
    listing: "PyIceberg: the data files of `table.scan().plan_files()`",
};

/// The open table format whose log a file below a searched folder is in: `parts` are the
/// file's path components below that folder (its name last). Delta Lake keeps its log in
/// `_delta_log/`, Apache Hudi in `.hoodie/`, Apache Iceberg in `metadata/*.metadata.json`.
/// Returns how many leading components name the table's folder, and the format.
pub fn table_format(parts: &[&str]) -> Option<(usize, TableFormat)> {
    let n = parts.len();
    parts
        .iter()
        .take(n.saturating_sub(1))
        .enumerate()
        .find_map(|(i, p)| match *p {
            "_delta_log" => Some((i, DELTA)),
            ".hoodie" => Some((i, HUDI)),
            "metadata" if i + 2 == n && parts[n - 1].ends_with(".metadata.json") => Some((i, ICEBERG)),
            _ => None,
        })
}

/// The refusal of an input folder `table` that is an open table format's ([`table_format`]),
/// whose log is `log`.
pub fn table_format_refusal(table: &str, format: TableFormat, log: &str) -> Error {
    // A Delta Lake table given itself is read from its log (the `delta` feature).
    let delta = match format.name == DELTA.name {
        true if cfg!(feature = "delta") => {
            "; or give the table's folder itself as an input, which is read from its log"
        }
        true => "; a build with the `delta` feature (the default) reads the table from its log",
        false => "",
    };
    Error::Usage(format!(
        "input {table} is {} (its log: {log}): the folder can hold Parquet files the table has \
         removed or replaced, and reading it would count their rows. Give the table's current \
         files by name ({}), when no deletes are pending in other files; or write the table \
         out as plain Parquet{delta}",
        format.name, format.listing
    ))
}

/// `--s3-endpoint`: set once at start, before any store is built.
static ENDPOINT: OnceLock<String> = OnceLock::new();

/// Selects an S3-compatible endpoint for every bucket (`--s3-endpoint`; without it,
/// `AWS_ENDPOINT_URL` or AWS itself).
pub fn set_endpoint(url: &str) {
    let _ = ENDPOINT.set(url.trim_end_matches('/').to_string());
}

fn stores() -> &'static Mutex<HashMap<String, Arc<Pinned>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<Pinned>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// The store of one bucket, built once per process: requests held to [`REQUESTS_AT_ONCE`],
/// and the HEADs of the objects [`pin_head`] pinned answered from their pins ([`Pinned`]).
pub fn bucket_store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    Ok(pinned_store(bucket)?)
}

/// From now on in this process, a HEAD of `meta.location` in `bucket` gives `meta`, without
/// a request ([`Pinned::pin`]).
pub fn pin_head(bucket: &str, meta: object_store::ObjectMeta) -> Result<()> {
    pinned_store(bucket)?.pin(meta);
    Ok(())
}

fn pinned_store(bucket: &str) -> Result<Arc<Pinned>> {
    let mut map = stores().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = map.get(bucket) {
        return Ok(Arc::clone(s));
    }
    let url = format!("{SCHEME}{bucket}");
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(300)),
        );
    if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        b = b.with_allow_http(true);
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        for (key, value) in profile_settings() {
            b = b.with_config(key, value);
        }
    }
    let endpoint = ENDPOINT
        .get()
        .cloned()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT").ok());
    if let Some(e) = &endpoint {
        b = b.with_endpoint(e.clone());
        if e.starts_with("http://") {
            b = b.with_allow_http(true);
        }
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        b = b.with_region("us-east-1");
    }
    // A few quick retries: an unreachable endpoint is an error within seconds, not minutes.
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    };
    let s3 = b.with_retry(retry).build().map_err(|e| store_error(&url, e))?;
    let store = Arc::new(Pinned::new(Arc::new(LimitStore::new(s3, REQUESTS_AT_ONCE))));
    map.insert(bucket.to_string(), Arc::clone(&store));
    Ok(store)
}

/// Keys and region of the profile `AWS_PROFILE` (or `default`) from the shared credentials
/// and config files, as object_store settings (it reads neither file itself).
fn profile_settings() -> Vec<(AmazonS3ConfigKey, String)> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let file = |var: &str, default: &str| {
        let path = std::env::var_os(var).map_or_else(|| home.join(default), PathBuf::from);
        std::fs::read_to_string(path).unwrap_or_default()
    };
    let region_set =
        std::env::var_os("AWS_REGION").is_some() || std::env::var_os("AWS_DEFAULT_REGION").is_some();
    profile_from(
        &file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        &file("AWS_CONFIG_FILE", ".aws/config"),
        &std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into()),
        !region_set,
    )
}

/// The settings of `profile` in a shared credentials file's and a config file's text (INI:
/// `[name]` in the first, `[profile name]` or `[name]` in the second); the region only with
/// `want_region`.
fn profile_from(
    credentials: &str,
    config: &str,
    profile: &str,
    want_region: bool,
) -> Vec<(AmazonS3ConfigKey, String)> {
    let section = |text: &str, names: &[String]| -> HashMap<String, String> {
        let mut current = None::<String>;
        let mut found = HashMap::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = Some(name.trim().to_string());
            } else if let (Some(c), Some((k, v))) = (&current, line.split_once('=')) {
                if names.contains(c) && !line.starts_with(['#', ';']) {
                    found.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        found
    };
    let mut out = Vec::new();
    let creds = section(credentials, &[profile.to_string()]);
    for (file_key, key) in [
        ("aws_access_key_id", AmazonS3ConfigKey::AccessKeyId),
        ("aws_secret_access_key", AmazonS3ConfigKey::SecretAccessKey),
        ("aws_session_token", AmazonS3ConfigKey::Token),
    ] {
        if let Some(v) = creds.get(file_key) {
            out.push((key, v.clone()));
        }
    }
    if want_region {
        let names = [format!("profile {profile}"), profile.to_string()];
        if let Some(r) = section(config, &names).get("region") {
            out.push((AmazonS3ConfigKey::Region, r.clone()));
        }
    }
    out
}

/// An object-store error as segscore's error naming `url`, with the likely cause in words.
pub fn store_error(url: &str, e: object_store::Error) -> Error {
    let text = error_chain(&e);
    let reason = match &e {
        // With no keys in the environment or the profile, the last link of the chain is the
        // instance metadata service: its failure means "no credentials", not an unreachable store.
        _ if text.contains("/latest/api/token") || text.contains("/latest/meta-data/") => format!(
            "no credentials: none in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile \
             (AWS_PROFILE, default `default`), and the instance metadata service gave none \
             (set them, or AWS_SKIP_SIGNATURE=true for a public bucket): {text}"
        ),
        object_store::Error::NotFound { .. } if text.contains("NoSuchBucket") => {
            "the bucket does not exist".to_string()
        }
        object_store::Error::NotFound { .. } => "no such object".to_string(),
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            format!("access denied (check the credentials: AWS_* variables or AWS_PROFILE): {text}")
        }
        _ if text.contains("NoSuchBucket") => "the bucket does not exist".to_string(),
        _ if text.contains("AccessDenied")
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch") =>
        {
            format!("access denied (check the credentials: AWS_* variables or AWS_PROFILE): {text}")
        }
        _ if text.contains("error sending request") || text.contains("connect") => format!(
            "cannot reach the object store{}: {text}",
            ENDPOINT.get().map(|e| format!(" at {e}")).unwrap_or_default()
        ),
        _ => text,
    };
    Error::Store {
        url: url.to_string(),
        reason,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A runtime of its own for object-store calls made from synchronous code (footers, the
/// output's commit), so they work from any thread.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("segscore-io")
            .enable_all()
            .build()
            .expect("the object-store runtime starts")
    })
}

/// Requests to object storage [`side_by_side`] keeps in flight at once.
pub const IN_FLIGHT: usize = 16;

/// `f` of each of `items`, in their order: where `remote` (each call waits on object
/// storage's round trips, not on a core), up to [`IN_FLIGHT`] calls at once on threads of their
/// own; else one after another here. Every item is called, whatever an earlier one returned.
pub fn side_by_side<T: Sync, R: Send>(items: &[T], remote: bool, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = if remote { IN_FLIGHT.min(items.len()) } else { 1 };
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let work = || {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break out };
                out.push((i, f(item)));
            }
        };
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// Starts `fut` on the object-store runtime, from any thread.
pub fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> tokio::task::JoinHandle<T> {
    io_runtime().spawn(fut)
}

/// Runs `fut` to completion from synchronous code (inside a Tokio worker or not).
pub fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let handle = spawn(fut);
    let wait = move || futures::executor::block_on(handle);
    let joined = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    match joined {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Requests (opens, reads, listings) at once on the local file system, and on each bucket.
/// DataFusion asks for every input path's metadata at once when it plans a scan: 5,000 input
/// files held some 2,000 files open at a time, past the usual limit of 1,024 open files
/// ("Too many open files"), and would send as many requests at once to a bucket.
pub const REQUESTS_AT_ONCE: usize = 128;

/// DataFusion's object-store registry with `s3://` buckets added as they are first read, and
/// the local file system's store held to [`REQUESTS_AT_ONCE`].
#[derive(Debug)]
pub struct Registry {
    inner: DefaultObjectStoreRegistry,
}

impl Default for Registry {
    fn default() -> Self {
        let inner = DefaultObjectStoreRegistry::new();
        let local = object_store::local::LocalFileSystem::new();
        let file = Url::parse("file://").expect("a constant URL");
        inner.register_store(&file, Arc::new(LimitStore::new(local, REQUESTS_AT_ONCE)));
        Registry { inner }
    }
}

impl ObjectStoreRegistry for Registry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if url.scheme() == "s3" {
            if let Some(bucket) = url.host_str() {
                return bucket_store(bucket).map_err(Error::into_datafusion);
            }
        }
        self.inner.get_store(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_urls_name_keys_as_they_are() {
        use datafusion::datasource::listing::ListingTableUrl;
        // What DataFusion lists and reads: the key, whatever characters it holds.
        for key in [
            "a%20b.parquet",
            "q?=1.parquet",
            "x#y.parquet",
            "my data/part 1.parquet",
            "ünï/cödé.parquet",
            "x+y.parquet",
        ] {
            let url = table_url(&format!("s3://bucket/{key}"), false).unwrap();
            let table = ListingTableUrl::try_new(url, None).unwrap();
            assert_eq!(table.prefix().as_ref(), key);
            assert_eq!(table.object_store().as_str(), "s3://bucket/");
        }
        let folder = table_url("s3://bucket/day=1/odd%dir/", true).unwrap();
        assert_eq!(folder.as_str(), "s3://bucket/day=1/odd%25dir/");
        let table = ListingTableUrl::try_new(folder, None).unwrap();
        assert!(table.is_collection());
        assert_eq!(table.prefix().as_ref(), "day=1/odd%dir");
        assert_eq!(table_url("s3://bucket", true).unwrap().as_str(), "s3://bucket/");
    }

    #[test]
    fn side_by_side_calls_every_item_once_and_keeps_their_order() {
        let items: Vec<u64> = (0..100).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let f = |&i: &u64| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The later items finish first.
            std::thread::sleep(std::time::Duration::from_micros(100 * (100 - i)));
            if i % 7 == 3 {
                Err(i)
            } else {
                Ok(i * 2)
            }
        };
        for remote in [false, true] {
            calls.store(0, std::sync::atomic::Ordering::Relaxed);
            let out = side_by_side(&items, remote, f);
            assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 100);
            let want: Vec<Result<u64, u64>> = items
                .iter()
                .map(|&i| if i % 7 == 3 { Err(i) } else { Ok(i * 2) })
                .collect();
            assert_eq!(out, want);
            assert_eq!(out.into_iter().collect::<Result<Vec<_>, _>>(), Err(3));
        }
    }

    #[test]
    fn a_profile_is_read_from_the_shared_credentials_and_config_files() {
        let credentials = "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sdefault\n\n[work]\n# a comment = no\naws_access_key_id=AKWORK\naws_secret_access_key = swork\naws_session_token = tok\n";
        let config = "[default]\nregion = us-east-1\n[profile work]\nregion = eu-west-3\n";
        let got = profile_from(credentials, config, "work", true);
        let want = vec![
            (AmazonS3ConfigKey::AccessKeyId, "AKWORK".to_string()),
            (AmazonS3ConfigKey::SecretAccessKey, "swork".to_string()),
            (AmazonS3ConfigKey::Token, "tok".to_string()),
            (AmazonS3ConfigKey::Region, "eu-west-3".to_string()),
        ];
        assert_eq!(got, want);
        let got = profile_from(credentials, config, "default", false);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, "AKDEFAULT");
        assert!(profile_from(credentials, config, "absent", true).is_empty());
    }

    #[test]
    fn table_formats_are_known_by_their_logs() {
        let at = |path: &str| {
            let parts: Vec<&str> = path.split('/').collect();
            table_format(&parts).map(|(i, f)| (i, f.name))
        };
        assert_eq!(
            at("t/_delta_log/00000000000000000000.json"),
            Some((1, DELTA.name))
        );
        assert_eq!(
            at("_delta_log/00000000000000000010.checkpoint.parquet"),
            Some((0, DELTA.name))
        );
        assert_eq!(at("a/b/.hoodie/hoodie.properties"), Some((2, HUDI.name)));
        assert_eq!(at("t/metadata/v3.metadata.json"), Some((1, ICEBERG.name)));
        assert_eq!(at("t/metadata/00000-1.metadata.json"), Some((1, ICEBERG.name)));
        // A folder of that name with other files, or a file of that name, is no table's log.
        assert_eq!(at("t/metadata/part-0.parquet"), None);
        assert_eq!(at("t/metadata/sub/v1.metadata.json"), None);
        assert_eq!(at("t/_delta_log"), None);
        assert_eq!(at("day=1/part-0.parquet"), None);
        assert_eq!(at(""), None);
    }

    #[test]
    fn urls_parse_into_bucket_and_key() {
        let loc = Location::parse("s3://bucket/a/b/").unwrap();
        assert_eq!(loc.bucket, "bucket");
        assert_eq!(loc.key.as_ref(), "a/b");
        assert_eq!(loc.join("c/d.parquet").url(), "s3://bucket/a/b/c/d.parquet");
        assert!(Location::parse("s3:///key").is_err());
        assert!(remote(Path::new("s3://b/k")).is_some());
        assert!(remote(Path::new("/tmp/s3://x")).is_none());
    }

    #[test]
    fn urls_of_other_schemes_are_foreign_paths_and_s3_urls_are_not() {
        for path in [
            "s3://b/k",
            "data/x.parquet",
            "/tmp/x",
            "C://data",
            "./a://b",
            "x:/y",
        ] {
            assert_eq!(foreign_url(path), None, "{path}");
        }
        assert_eq!(
            foreign_url("s3a://b/k.parquet").unwrap(),
            "s3a://b/k.parquet: s3a:// is not a scheme segscore reads or writes; write it s3://b/k.parquet"
        );
        for url in [
            "gs://b/k",
            "hdfs://nn:8020/x",
            "abfss://c@a.dfs.core.windows.net/x",
            "git+ssh://h/x",
        ] {
            assert!(foreign_url(url).is_some(), "{url}");
        }
    }
}
