//! The job's model and tokenizer for a process that did not load them (a Ballista executor):
//! the client sends their paths and sha256 with every query as `segscore.*` settings
//! ([`JobModel`], a DataFusion config extension); the functions read them from the settings
//! of each call, load each file once per sha256 (kept for the next job) and refuse a file
//! whose sha256 is not the job's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::extensions_options;
use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::contract::EXECUTOR_COLUMN;
use crate::error::{Error, Result};
use crate::model::{ModelOptions, Provider, RewardModel, TextTokenizer};

extensions_options! {
    /// The job's model and tokenizer, as `segscore.*` settings of the query.
    pub struct JobModel {
        /// The model file (the same path on every executor).
        pub model_path: String, default = String::new()
        /// sha256 of the model file (and its external data files) the client loaded, hex.
        pub model_sha256: String, default = String::new()
        /// The output read (`--model-output`).
        pub model_output: Option<String>, default = None
        /// The class scored (`--score-label`).
        pub score_label: Option<usize>, default = None
        /// The longest sequence (`--max-length`).
        pub max_length: Option<usize>, default = None
        /// Rows per model call, at most (`--batch-size`).
        pub batch_size: usize, default = 256
        /// Padded positions per model call, at most (`--max-tokens-per-batch`).
        pub max_tokens: usize, default = 8192
        /// The tokenizer file, if any.
        pub tokenizer_path: String, default = String::new()
        /// sha256 of the tokenizer file, hex.
        pub tokenizer_sha256: String, default = String::new()
    }
}

/// [`JobModel`] as a config extension whose entries carry their prefix: Ballista sends a
/// query's settings as `key=value` pairs, and the macro's own entries (`.model_path`) would
/// reach no extension on the executors.
#[derive(Debug, Clone, Default)]
pub struct JobSettings(pub JobModel);

impl ConfigExtension for JobSettings {
    const PREFIX: &'static str = "segscore";
}

impl ExtensionOptions for JobSettings {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> datafusion::error::Result<()> {
        self.0.set(key, value)
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        self.0
            .entries()
            .into_iter()
            .map(|mut e| {
                e.key = format!("{}.{}", Self::PREFIX, e.key.trim_start_matches('.'));
                e
            })
            .collect()
    }
}

impl JobModel {
    /// The settings that name `model` (loaded with `opts`) and `tokenizer`.
    pub fn new(model: &RewardModel, opts: &ModelOptions, tokenizer: Option<&TextTokenizer>) -> Self {
        // Absolute, as the inputs' URLs are: an executor's working folder is not the client's.
        let absolute = |p: &Path| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .to_string_lossy()
                .into_owned()
        };
        JobModel {
            model_path: absolute(model.path()),
            model_sha256: model.sha256().to_string(),
            model_output: opts.output.clone(),
            score_label: opts.score_label,
            max_length: opts.max_length,
            batch_size: opts.batch_size,
            max_tokens: opts.max_tokens,
            tokenizer_path: tokenizer.map(|t| absolute(t.path())).unwrap_or_default(),
            tokenizer_sha256: tokenizer.map(|t| t.sha256().to_string()).unwrap_or_default(),
        }
    }
}

/// A function's model or tokenizer: loaded by this process, or the job's, named by the
/// query's settings.
#[derive(Debug)]
pub enum Shared<T> {
    /// Loaded here.
    Loaded(Arc<T>),
    /// Loaded here once set: a job plans its query while its model loads, and sets it before
    /// the plan runs.
    Pending(Arc<OnceLock<Arc<T>>>),
    /// The job's, from the query's `segscore.*` settings.
    FromJob,
}

impl<T> Shared<T> {
    /// What this process loaded: the model or tokenizer, an error where it is still pending,
    /// None for the job's.
    fn here(&self, what: &str) -> Option<Result<Arc<T>>> {
        match self {
            Shared::Loaded(t) => Some(Ok(Arc::clone(t))),
            Shared::Pending(cell) => {
                Some(cell.get().cloned().ok_or_else(|| {
                    Error::Internal(format!("{what} called before the job's file was loaded"))
                }))
            }
            Shared::FromJob => None,
        }
    }
}

/// What a shared file is known by.
pub trait Fingerprint {
    /// sha256 of the file, hex.
    fn fingerprint(&self) -> &str;
}
impl Fingerprint for RewardModel {
    fn fingerprint(&self) -> &str {
        self.sha256()
    }
}
impl Fingerprint for TextTokenizer {
    fn fingerprint(&self) -> &str {
        self.sha256()
    }
}

impl<T: Fingerprint> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Shared::Loaded(a), Shared::Loaded(b)) => a.fingerprint() == b.fingerprint(),
            (Shared::Pending(a), Shared::Pending(b)) => Arc::ptr_eq(a, b),
            (Shared::FromJob, Shared::FromJob) => true,
            _ => false,
        }
    }
}
impl<T: Fingerprint> Eq for Shared<T> {}
impl<T: Fingerprint> std::hash::Hash for Shared<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Shared::Loaded(a) => a.fingerprint().hash(state),
            Shared::Pending(cell) => Arc::as_ptr(cell).hash(state),
            Shared::FromJob => "job".hash(state),
        }
    }
}

/// How this process runs the models it loads for jobs: its provider, sessions and name.
#[derive(Debug, Clone)]
pub struct Host {
    /// Execution provider asked for.
    pub provider: Provider,
    /// Sessions in each model's pool.
    pub sessions: usize,
    /// This process as errors name it (`executor 127.0.0.1:50051`).
    pub name: String,
    /// Its address as `segscore_executor()` gives it (`127.0.0.1:50051`).
    pub address: String,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Sets how this process runs the job's models (once, at start, before any query: an
/// executor's flags). Later calls change nothing.
pub fn set_host(host: Host) {
    let _ = HOST.set(host);
}

/// This process's settings: as set, else (a client, a standalone cluster) the defaults.
fn host() -> &'static Host {
    HOST.get_or_init(|| Host {
        provider: Provider::Auto,
        sessions: crate::engine::default_threads(),
        name: "this process".into(),
        address: "local".into(),
    })
}

/// `segscore_executor()`: the address of the process that evaluates it (on a cluster, the
/// executor that reads and scores the row). Volatile, so no planner evaluates it ahead of
/// time. (Plain strings: Ballista's shuffle does not keep a dictionary type.)
pub fn executor_udf() -> ScalarUDF {
    ScalarUDF::from(ExecutorUdf {
        signature: Signature::nullary(Volatility::Volatile),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExecutorUdf {
    signature: Signature,
}

impl ScalarUDFImpl for ExecutorUdf {
    fn name(&self) -> &str {
        EXECUTOR_COLUMN
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let address = host().address.as_str();
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(
            vec![address; args.number_rows],
        ))))
    }
}

type Cache<T> = Mutex<HashMap<String, Arc<T>>>;

/// The model of `shared`: its own, or the job's (loaded once per sha256 and settings).
pub fn model(shared: &Shared<RewardModel>, config: &ConfigOptions) -> Result<Arc<RewardModel>> {
    static MODELS: OnceLock<Cache<RewardModel>> = OnceLock::new();
    if let Some(here) = shared.here("reward_model") {
        return here;
    }
    let job = job(config, "reward_model", |j| &j.model_path)?;
    // A test may hold an executor here, in its first model call, to kill it or change the
    // model file under it.
    static NEVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    crate::faults::point_blocking("job-model", &NEVER);
    let key = format!(
        "{} {:?} {:?} {:?} {} {}",
        job.model_sha256, job.model_output, job.score_label, job.max_length, job.batch_size, job.max_tokens
    );
    let host = host();
    cached(&MODELS, key, || {
        let path = PathBuf::from(&job.model_path);
        let opts = ModelOptions {
            provider: host.provider,
            batch_size: job.batch_size,
            max_tokens: job.max_tokens,
            sessions: host.sessions.max(1),
            intra_threads: 1,
            output: job.model_output.clone(),
            score_label: job.score_label,
            max_length: job.max_length,
        };
        let model = RewardModel::load(&path, &opts).map_err(|e| unreachable_file(host, "model", &path, e))?;
        same_file(host, "model", &path, model.sha256(), &job.model_sha256)?;
        Ok(model)
    })
}

/// The tokenizer of `shared`: its own, or the job's (loaded once per sha256).
pub fn tokenizer(shared: &Shared<TextTokenizer>, config: &ConfigOptions) -> Result<Arc<TextTokenizer>> {
    static TOKENIZERS: OnceLock<Cache<TextTokenizer>> = OnceLock::new();
    if let Some(here) = shared.here("tokenize") {
        return here;
    }
    let job = job(config, "tokenize", |j| &j.tokenizer_path)?;
    let host = host();
    cached(&TOKENIZERS, job.tokenizer_sha256.clone(), || {
        let path = PathBuf::from(&job.tokenizer_path);
        let t = TextTokenizer::load(&path).map_err(|e| unreachable_file(host, "tokenizer", &path, e))?;
        same_file(host, "tokenizer", &path, t.sha256(), &job.tokenizer_sha256)?;
        Ok(t)
    })
}

/// The job's settings, when they name the file `path` picks.
fn job<'a>(
    config: &'a ConfigOptions,
    function: &str,
    path: impl Fn(&JobModel) -> &String,
) -> Result<&'a JobModel> {
    match config.extensions.get::<JobSettings>() {
        Some(JobSettings(j)) if !path(j).is_empty() => Ok(j),
        _ => Err(Error::Usage(format!(
            "{function}: this query names no model or tokenizer (segscore.* settings); on a cluster, run the job with `segscore run --cluster`"
        ))),
    }
}

fn cached<T>(
    cache: &'static OnceLock<Cache<T>>,
    key: String,
    load: impl FnOnce() -> Result<T>,
) -> Result<Arc<T>> {
    let mut map = cache
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = map.get(&key) {
        return Ok(Arc::clone(found));
    }
    // Loaded under the lock: the tasks that need it at once wait for one load.
    let loaded = Arc::new(load()?);
    map.insert(key, Arc::clone(&loaded));
    Ok(loaded)
}

fn unreachable_file(host: &Host, what: &str, path: &Path, e: Error) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!(
            "{} cannot use the job's {what} ({e}); on a cluster the model, the tokenizer and the inputs must be at the same path on every executor (a shared filesystem)",
            host.name
        ),
    }
}

fn same_file(host: &Host, what: &str, path: &Path, found: &str, wanted: &str) -> Result<()> {
    if found == wanted {
        return Ok(());
    }
    Err(Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!(
            "{} sees another file: sha256 {found}, the job's {what} has sha256 {wanted}; every executor must see the client's file"
        , host.name),
    })
}
