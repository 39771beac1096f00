//! The reward model: an ONNX model run through `ort`, bound to Arrow columns by input name,
//! and exposed to DataFusion as the SQL function `reward_model(input_ids [, token_type_ids])`.
//!
//! Contract:
//! - `input_ids` (int64 or int32, `[batch, seq]`) comes from a list column of token ids,
//!   padded with 0 to the longest row of each model batch;
//! - `attention_mask` (same shape) is 1 on real tokens and 0 on padding;
//! - `token_type_ids`, when the model asks for it, is the second argument of the SQL function,
//!   or zeros;
//! - any other model input is a binding error that names it;
//! - the score is the first output (or the one named), `[batch]` or `[batch, 1]`, float32 or
//!   float64.
//!
//! A row the model cannot take yields a null prediction (SQL semantics: no usable input, no
//! score): a null or empty token list, a null token id, a negative token id or one past the
//! model's embedding (see [`crate::onnx`]), token type ids of another length. The function
//! `reward_model_input_problem(input_ids [, token_type_ids])` says why, as
//! `code: detail` text (NULL for a row the model takes); the job reports such rows as invalid. The model file is read once; a pool of sessions (one
//! per worker thread, each with one intra-op thread) lets every core run the model.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, GenericListArray, OffsetSizeTrait};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueType};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::onnx::Embedding;
use crate::runtime::{self, Provider, Runtime};
use crate::validate::{problem_text, Reason};

/// Sessions in the pool on the CUDA provider, at most.
pub const CUDA_SESSIONS: usize = 2;

/// The SQL name of the model function.
pub const UDF_NAME: &str = "reward_model";

/// The detail of a null token list's problem.
const NULL_LIST: &str = "the token list is null";

/// The SQL name of the function that says why the model cannot take a row.
pub const PROBLEM_UDF_NAME: &str = "reward_model_input_problem";

/// How the model is run.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Execution provider asked for.
    pub provider: Provider,
    /// Rows per model call, at most.
    pub batch_size: usize,
    /// Padded positions (rows x longest row) per model call, at most; a single longer row
    /// still runs, alone.
    pub max_tokens: usize,
    /// Sessions in the pool (concurrent model calls).
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// The output to read the score from (default: the first).
    pub output: Option<String>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            provider: Provider::Auto,
            batch_size: 256,
            max_tokens: 8192,
            sessions: 1,
            intra_threads: 1,
            output: None,
        }
    }
}

/// What feeds a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The token ids list column.
    InputIds,
    /// 1 for real tokens, 0 for padding.
    AttentionMask,
    /// The token type ids column, or zeros.
    TokenTypeIds,
}

/// One model input and how it is bound.
#[derive(Debug, Clone)]
pub struct InputInfo {
    /// The model's input name.
    pub name: String,
    /// Its type as ONNX Runtime reports it, e.g. `Tensor<i64>(-1, -1)`.
    pub type_desc: String,
    /// How segscore feeds it, or why it cannot.
    pub binding: std::result::Result<(Feed, IdType), String>,
}

/// One model output.
#[derive(Debug, Clone)]
pub struct OutputInfo {
    /// The model's output name.
    pub name: String,
    /// Its type as ONNX Runtime reports it.
    pub type_desc: String,
}

/// Integer element type of an id input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    /// int64
    I64,
    /// int32
    I32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScoreType {
    F32,
    F64,
}

/// The model's inputs and outputs, and how its inputs bind.
#[derive(Debug, Clone)]
pub struct ModelSignature {
    /// The inputs, in the model's order.
    pub inputs: Vec<InputInfo>,
    /// The outputs, in the model's order.
    pub outputs: Vec<OutputInfo>,
}

impl ModelSignature {
    fn of(session: &Session) -> Self {
        let inputs = session
            .inputs()
            .iter()
            .map(|o| InputInfo {
                name: o.name().to_string(),
                type_desc: o.dtype().to_string(),
                binding: bind_input(o.name(), o.dtype()),
            })
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| OutputInfo {
                name: o.name().to_string(),
                type_desc: o.dtype().to_string(),
            })
            .collect();
        ModelSignature { inputs, outputs }
    }

    /// Whether the model asks for `token_type_ids`.
    pub fn wants_token_type_ids(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| matches!(i.binding, Ok((Feed::TokenTypeIds, _))))
    }
}

fn bind_input(name: &str, dtype: &ValueType) -> std::result::Result<(Feed, IdType), String> {
    let feed = match name {
        "input_ids" => Feed::InputIds,
        "attention_mask" => Feed::AttentionMask,
        "token_type_ids" => Feed::TokenTypeIds,
        _ => {
            return Err(format!(
                "model input `{name}` ({dtype}) has no column to bind to; segscore feeds input_ids, attention_mask and token_type_ids"
            ))
        }
    };
    match dtype {
        ValueType::Tensor { ty, shape, .. } => {
            if shape.len() != 2 {
                return Err(format!(
                    "model input `{name}` has shape {shape}, expected rank 2 [batch, seq]"
                ));
            }
            match ty {
                TensorElementType::Int64 => Ok((feed, IdType::I64)),
                TensorElementType::Int32 => Ok((feed, IdType::I32)),
                other => Err(format!(
                    "model input `{name}` has element type {other}, expected int64 or int32"
                )),
            }
        }
        other => Err(format!("model input `{name}` is {other}, expected a tensor")),
    }
}

/// A loaded reward model: a pool of ONNX Runtime sessions plus the binding of its inputs.
pub struct RewardModel {
    path: PathBuf,
    sha256: String,
    signature: ModelSignature,
    feeds: Vec<(String, Feed, IdType)>,
    output_name: String,
    output_type: ScoreType,
    provider: Provider,
    runtime: &'static Runtime,
    batch_size: usize,
    max_tokens: usize,
    vocab: Option<Embedding>,
    pool: Vec<Mutex<Session>>,
    next: AtomicUsize,
    stats: ModelStats,
}

impl std::fmt::Debug for RewardModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardModel")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("output", &self.output_name)
            .field("provider", &self.provider)
            .field("sessions", &self.pool.len())
            .field("vocab", &self.vocab)
            .finish()
    }
}

/// Counters of the work the model did.
#[derive(Debug, Default)]
pub struct ModelStats {
    /// Rows scored.
    pub rows: AtomicU64,
    /// Model calls.
    pub calls: AtomicU64,
    /// Real tokens fed.
    pub tokens: AtomicU64,
    /// Padded positions fed (batch * seq), real tokens included.
    pub positions: AtomicU64,
    /// Nanoseconds spent inside `Session::run`, summed over sessions.
    pub run_nanos: AtomicU64,
}

fn model_name(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a model file, naming it in the error.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: "file is empty".into(),
        }),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        }),
    }
}

fn session_builder_err<T>(
    model: &Path,
    r: std::result::Result<T, ort::Error<ort::session::builder::SessionBuilder>>,
) -> Result<T> {
    r.map_err(|e| Error::ModelFile {
        path: model.to_path_buf(),
        reason: format!("ONNX Runtime: {}", e.message()),
    })
}

fn build_session(
    runtime: &Runtime,
    path: &Path,
    bytes: &[u8],
    provider: Provider,
    intra_threads: usize,
) -> Result<Session> {
    let builder = Session::builder(runtime.environment())?;
    let mut builder = session_builder_err(path, builder.with_intra_threads(intra_threads.max(1)))?;
    if provider == Provider::Cuda {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| Error::Provider {
                provider: "cuda".into(),
                reason: format!(
                    "the CUDA execution provider could not be registered with ONNX Runtime {} loaded from {}: {}. Use the CUDA build (`scripts/fetch-ort.sh --cuda`, CUDA 13 and cuDNN 9 on the library path) or --provider cpu",
                    runtime.version,
                    runtime.library.display(),
                    e.message()
                ),
            })?;
    }
    builder.commit_from_memory(bytes).map_err(|e| Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!("ONNX Runtime cannot load it: {}", e.message()),
    })
}

/// Reads the model's signature without requiring its inputs to bind (for `segscore inspect`).
pub fn inspect(path: &Path) -> Result<(ModelSignature, &'static Runtime)> {
    let bytes = read_model_file(path)?;
    let rt = runtime::runtime(Provider::Cpu)?;
    let session = build_session(rt, path, &bytes, Provider::Cpu, 1)?;
    Ok((ModelSignature::of(&session), rt))
}

impl RewardModel {
    /// Loads the model file once and builds the session pool. Fails, naming the input, when a
    /// model input cannot be bound or the score output is unusable.
    pub fn load(path: &Path, opts: &ModelOptions) -> Result<Self> {
        let bytes = read_model_file(path)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let rt = runtime::runtime(opts.provider)?;
        let (first, provider) = match opts.provider {
            Provider::Cpu => (
                build_session(rt, path, &bytes, Provider::Cpu, opts.intra_threads)?,
                Provider::Cpu,
            ),
            Provider::Cuda => (
                build_session(rt, path, &bytes, Provider::Cuda, opts.intra_threads)?,
                Provider::Cuda,
            ),
            Provider::Auto => match build_session(rt, path, &bytes, Provider::Cuda, opts.intra_threads) {
                Ok(s) => (s, Provider::Cuda),
                Err(Error::Provider { reason, .. }) => {
                    tracing::info!(%reason, "provider auto: CUDA unavailable, using the CPU");
                    (
                        build_session(rt, path, &bytes, Provider::Cpu, opts.intra_threads)?,
                        Provider::Cpu,
                    )
                }
                Err(e) => return Err(e),
            },
        };
        tracing::info!(provider = provider.as_str(), model = %path.display(), "execution provider chosen");
        let signature = ModelSignature::of(&first);
        let name = model_name(path);
        let mut feeds = Vec::with_capacity(signature.inputs.len());
        for input in &signature.inputs {
            match &input.binding {
                Ok((feed, ty)) => feeds.push((input.name.clone(), *feed, *ty)),
                Err(reason) => {
                    return Err(Error::ModelBinding {
                        model: name,
                        reason: reason.clone(),
                    })
                }
            }
        }
        if !feeds.iter().any(|(_, f, _)| *f == Feed::InputIds) {
            return Err(Error::ModelBinding {
                model: name,
                reason: "the model has no `input_ids` input".into(),
            });
        }
        let output = match &opts.output {
            Some(wanted) => first
                .outputs()
                .iter()
                .find(|o| o.name() == wanted)
                .ok_or_else(|| Error::ModelBinding {
                    model: name.clone(),
                    reason: format!(
                        "no output named `{wanted}` (outputs: {})",
                        signature
                            .outputs
                            .iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?,
            None => first.outputs().first().ok_or_else(|| Error::ModelBinding {
                model: name.clone(),
                reason: "the model has no outputs".into(),
            })?,
        };
        let output_type = match output.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                let shape_ok = match shape.len() {
                    1 => true,
                    2 => shape[1] == 1 || shape[1] == -1,
                    _ => false,
                };
                if !shape_ok {
                    return Err(Error::ModelBinding {
                        model: name,
                        reason: format!(
                            "output `{}` has shape {shape}; a score output must be [batch] or [batch, 1]",
                            output.name()
                        ),
                    });
                }
                match ty {
                    TensorElementType::Float32 => ScoreType::F32,
                    TensorElementType::Float64 => ScoreType::F64,
                    other => {
                        return Err(Error::ModelBinding {
                            model: name,
                            reason: format!(
                                "output `{}` has element type {other}; a score must be float32 or float64",
                                output.name()
                            ),
                        })
                    }
                }
            }
            other => {
                return Err(Error::ModelBinding {
                    model: name,
                    reason: format!("output `{}` is {other}, expected a tensor", output.name()),
                })
            }
        };
        let output_name = output.name().to_string();
        let vocab = feeds
            .iter()
            .find(|(_, f, _)| *f == Feed::InputIds)
            .and_then(|(input, ..)| crate::onnx::embedding_for_input(&bytes, input));
        if let Some(e) = &vocab {
            tracing::debug!(embedding = %e.name, vocab = e.vocab, "token ids are checked against the model's embedding");
        }
        // One GPU gains nothing from more than two sessions (one prepares while one runs), and
        // each would hold its own device memory arena.
        let sessions = match provider {
            Provider::Cuda => opts.sessions.clamp(1, CUDA_SESSIONS),
            _ => opts.sessions.max(1),
        };
        let mut pool = vec![Mutex::new(first)];
        for _ in 1..sessions {
            pool.push(Mutex::new(build_session(
                rt,
                path,
                &bytes,
                provider,
                opts.intra_threads,
            )?));
        }
        Ok(RewardModel {
            path: path.to_path_buf(),
            sha256,
            signature,
            feeds,
            output_name,
            output_type,
            provider,
            runtime: rt,
            batch_size: opts.batch_size.max(1),
            max_tokens: opts.max_tokens.max(1),
            vocab,
            pool,
            next: AtomicUsize::new(0),
            stats: ModelStats::default(),
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// sha256 of the model file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The provider actually used (cpu or cuda, never auto).
    pub fn provider(&self) -> Provider {
        self.provider
    }
    /// The loaded ONNX Runtime.
    pub fn runtime(&self) -> &'static Runtime {
        self.runtime
    }
    /// The model's inputs and outputs.
    pub fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    /// The output the score is read from.
    pub fn output_name(&self) -> &str {
        &self.output_name
    }
    /// Work counters.
    pub fn stats(&self) -> &ModelStats {
        &self.stats
    }
    /// The token embedding `input_ids` indexes, when the model's graph shows one.
    pub fn embedding(&self) -> Option<&Embedding> {
        self.vocab.as_ref()
    }

    /// Why the model cannot take each row (`code: detail`), or null for a row it takes.
    pub fn input_problems(
        &self,
        input_ids: &dyn Array,
        token_type_ids: Option<&dyn Array>,
    ) -> Result<datafusion::arrow::array::StringArray> {
        input_problems(input_ids, token_type_ids, self.vocab.as_ref())
    }

    /// Scores every row of a token-id list column. Rows the model cannot take (see
    /// [`RewardModel::input_problems`]) get a null score.
    ///
    /// Rows are grouped into model batches by length (longest first), at most `batch_size` rows
    /// and `max_tokens` padded positions each, so that little of each batch is padding; the
    /// batches run in parallel over the session pool.
    pub fn predict(&self, input_ids: &dyn Array, token_type_ids: Option<&dyn Array>) -> Result<Float64Array> {
        let ids = TokenLists::new(input_ids, "input_ids")?;
        let types = token_type_ids
            .map(|a| TokenLists::new(a, "token_type_ids"))
            .transpose()?;
        let mut rows: Vec<usize> = (0..ids.len())
            .filter(|&r| ids.problem(r, types.as_ref(), self.vocab.as_ref()).is_none())
            .collect();
        let ranges = self.group(&ids, &mut rows);
        let scored: Vec<Vec<f64>> = ranges
            .par_iter()
            .map(|range| self.run_chunk(&ids, types.as_ref(), &rows[range.clone()]))
            .collect::<Result<_>>()?;
        let mut out: Vec<Option<f64>> = vec![None; ids.len()];
        for (range, scores) in ranges.iter().zip(scored) {
            for (&r, s) in rows[range.clone()].iter().zip(scores) {
                out[r] = Some(s);
            }
        }
        Ok(Float64Array::from(out))
    }

    /// Sorts `rows` longest first and cuts them into model batches.
    fn group(&self, ids: &TokenLists<'_>, rows: &mut [usize]) -> Vec<std::ops::Range<usize>> {
        rows.sort_by_key(|&r| std::cmp::Reverse(ids.row_len(r).unwrap_or(0)));
        let lengths: Vec<usize> = rows.iter().map(|&r| ids.row_len(r).unwrap_or(0)).collect();
        plan_batches(&lengths, self.batch_size, self.max_tokens)
    }

    /// The padded tensors `predict` would feed the model for a token-id list column, built in
    /// advance (for measuring the model alone).
    pub fn prepare_batches(&self, input_ids: &dyn Array) -> Result<Vec<PaddedBatch>> {
        let ids = TokenLists::new(input_ids, "input_ids")?;
        let mut rows: Vec<usize> = (0..ids.len())
            .filter(|&r| ids.problem(r, None, self.vocab.as_ref()).is_none())
            .collect();
        let ranges = self.group(&ids, &mut rows);
        Ok(ranges.into_iter().map(|r| ids.padded(&rows[r])).collect())
    }

    /// Runs pre-built batches over the session pool and returns (rows, seconds): the model's
    /// own speed, the floor for a whole run.
    pub fn time_batches(&self, batches: &[PaddedBatch]) -> Result<(u64, f64)> {
        let started = std::time::Instant::now();
        batches
            .par_iter()
            .try_for_each(|b| self.run_padded(b, None).map(drop))?;
        let rows = batches.iter().map(|b| b.batch as u64).sum();
        Ok((rows, started.elapsed().as_secs_f64()))
    }

    fn run_chunk(
        &self,
        ids: &TokenLists<'_>,
        types: Option<&TokenLists<'_>>,
        rows: &[usize],
    ) -> Result<Vec<f64>> {
        let padded = ids.padded(rows);
        let tt = types.map(|t| t.padded(rows).ids);
        self.run_padded(&padded, tt.as_deref())
    }

    /// Runs the model on one padded batch (with token type ids, or zeros); one score per row.
    pub fn run_padded(&self, padded: &PaddedBatch, token_type_ids: Option<&[i64]>) -> Result<Vec<f64>> {
        // ONNX Runtime's CPU kernels take another path for a one-row batch (matrix-vector
        // products) and round differently; a copy of the row keeps every prediction
        // independent of how rows were batched.
        if padded.batch == 1 {
            let twice = |v: &[i64]| [v, v].concat();
            let doubled = PaddedBatch {
                ids: twice(&padded.ids),
                mask: twice(&padded.mask),
                batch: 2,
                seq: padded.seq,
                tokens: padded.tokens * 2,
            };
            let tt = token_type_ids.map(twice);
            let mut two = self.run_padded(&doubled, tt.as_deref())?;
            two.truncate(1);
            return Ok(two);
        }
        let (batch, seq) = (padded.batch, padded.seq);
        let tt_buf = token_type_ids;
        let shape = [batch as i64, seq as i64];
        let zeros = match (tt_buf, self.signature.wants_token_type_ids()) {
            (None, true) => vec![0i64; batch * seq],
            _ => Vec::new(),
        };
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.feeds.len());
        for (name, feed, ty) in &self.feeds {
            let data: &[i64] = match (feed, tt_buf) {
                (Feed::InputIds, _) => &padded.ids,
                (Feed::AttentionMask, _) => &padded.mask,
                (Feed::TokenTypeIds, Some(tt)) => tt,
                (Feed::TokenTypeIds, None) => &zeros,
            };
            let value: SessionInputValue<'_> = match *ty {
                // A view: ONNX Runtime reads the padded buffers in place, no copy.
                IdType::I64 => TensorRef::from_array_view((shape, data))?.into(),
                IdType::I32 => {
                    let narrowed = data
                        .iter()
                        .map(|&v| i32::try_from(v))
                        .collect::<std::result::Result<Vec<i32>, _>>()
                        .map_err(|_| Error::ModelBinding {
                            model: model_name(&self.path),
                            reason: format!("a token id does not fit the int32 input `{name}`"),
                        })?;
                    Tensor::from_array((shape, narrowed))?.into()
                }
            };
            inputs.push((Cow::Borrowed(name.as_str()), value));
        }
        let (scores, nanos) = self.with_session(|session| -> Result<(Vec<f64>, u64)> {
            // Timed once the session is ours: waiting for one is not model time.
            let started = std::time::Instant::now();
            let outputs = session.run(inputs)?;
            let value = &outputs[self.output_name.as_str()];
            let (out_shape, scores): (Vec<i64>, Vec<f64>) = match self.output_type {
                ScoreType::F32 => {
                    let (s, d) = value.try_extract_tensor::<f32>()?;
                    (s.to_vec(), d.iter().map(|&v| v as f64).collect())
                }
                ScoreType::F64 => {
                    let (s, d) = value.try_extract_tensor::<f64>()?;
                    (s.to_vec(), d.to_vec())
                }
            };
            if scores.len() != batch {
                return Err(Error::ModelBinding {
                    model: model_name(&self.path),
                    reason: format!(
                        "output `{}` has shape {out_shape:?} for a batch of {batch} rows; expected one score per row",
                        self.output_name
                    ),
                });
            }
            Ok((scores, started.elapsed().as_nanos() as u64))
        })?;
        let st = &self.stats;
        st.run_nanos.fetch_add(nanos, Ordering::Relaxed);
        st.rows.fetch_add(batch as u64, Ordering::Relaxed);
        st.calls.fetch_add(1, Ordering::Relaxed);
        st.tokens.fetch_add(padded.tokens as u64, Ordering::Relaxed);
        st.positions.fetch_add((batch * seq) as u64, Ordering::Relaxed);
        Ok(scores)
    }

    fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let n = self.pool.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(mut s) = self.pool[(start + i) % n].try_lock() {
                return f(&mut s);
            }
        }
        let mut s = self.pool[start].lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// The model as a DataFusion scalar function named [`UDF_NAME`].
    pub fn udf(self: &Arc<Self>) -> ScalarUDF {
        self.function(UdfKind::Score)
    }

    /// The function named [`PROBLEM_UDF_NAME`]: why the model cannot take a row, or NULL.
    pub fn problem_udf(self: &Arc<Self>) -> ScalarUDF {
        self.function(UdfKind::Problem)
    }

    /// Registers both functions with a DataFusion context.
    pub fn register(self: &Arc<Self>, ctx: &datafusion::prelude::SessionContext) {
        ctx.register_udf(self.udf());
        ctx.register_udf(self.problem_udf());
    }

    fn function(self: &Arc<Self>, kind: UdfKind) -> ScalarUDF {
        ScalarUDF::from(RewardModelUdf {
            model: Arc::clone(self),
            kind,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

/// Splits rows sorted by length, longest first, into consecutive batches of at most
/// `max_rows` rows and at most `max_tokens` padded positions (rows x the batch's first, longest,
/// length). A row longer than `max_tokens` forms a batch of its own.
pub fn plan_batches(
    lengths_desc: &[usize],
    max_rows: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lengths_desc.len() {
        let longest = lengths_desc[start].max(1);
        let by_tokens = (max_tokens / longest).max(1);
        let end = (start + max_rows.max(1).min(by_tokens)).min(lengths_desc.len());
        out.push(start..end);
        start = end;
    }
    out
}

/// Token ids of some rows, padded with 0 to the longest, and their attention mask; both
/// row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// Token ids, padded with 0.
    pub ids: Vec<i64>,
    /// 1 on real tokens, 0 on padding.
    pub mask: Vec<i64>,
    /// Rows.
    pub batch: usize,
    /// Longest row (at least 1).
    pub seq: usize,
    /// Real tokens.
    pub tokens: usize,
}

/// Why a model with the embedding `vocab` (if known) cannot take each row of a token-id list
/// column (`code: detail`), or null for a row it takes.
pub fn input_problems(
    input_ids: &dyn Array,
    token_type_ids: Option<&dyn Array>,
    vocab: Option<&Embedding>,
) -> Result<datafusion::arrow::array::StringArray> {
    let ids = TokenLists::new(input_ids, "input_ids")?;
    let types = token_type_ids
        .map(|a| TokenLists::new(a, "token_type_ids"))
        .transpose()?;
    Ok((0..ids.len())
        .map(|r| ids.problem(r, types.as_ref(), vocab))
        .collect())
}

/// Builds the padded `[batch, seq]` tensors for `rows` of a list column of token ids.
pub fn padded_batch(input_ids: &dyn Array, rows: &[usize]) -> Result<PaddedBatch> {
    Ok(TokenLists::new(input_ids, "input_ids")?.padded(rows))
}

/// A list column of integer ids (list or large list of int32 or int64).
struct TokenLists<'a> {
    len: usize,
    offsets: Offsets<'a>,
    values: Values<'a>,
    list: &'a dyn Array,
    child_nulls: Option<&'a datafusion::arrow::buffer::NullBuffer>,
}

enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

enum Values<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl<'a> TokenLists<'a> {
    fn new(array: &'a dyn Array, what: &str) -> Result<Self> {
        fn parts<O: OffsetSizeTrait>(l: &GenericListArray<O>) -> (&[O], &ArrayRef) {
            (l.value_offsets(), l.values())
        }
        let (offsets, values) = match array.data_type() {
            DataType::List(_) => {
                let (o, v) = parts(array.as_list::<i32>());
                (Offsets::Small(o), v)
            }
            DataType::LargeList(_) => {
                let (o, v) = parts(array.as_list::<i64>());
                (Offsets::Large(o), v)
            }
            other => {
                return Err(Error::Usage(format!(
                    "{UDF_NAME}: {what} must be a list of int32 or int64, got {other}"
                )))
            }
        };
        let vals = match values.data_type() {
            DataType::Int32 => Values::I32(values.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Values::I64(values.as_primitive::<Int64Type>().values()),
            other => {
                return Err(Error::Usage(format!(
                    "{UDF_NAME}: {what} must be a list of int32 or int64, got a list of {other}"
                )))
            }
        };
        Ok(TokenLists {
            len: array.len(),
            offsets,
            values: vals,
            list: array,
            child_nulls: values.nulls().filter(|n| n.null_count() > 0),
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    fn range(&self, row: usize) -> (usize, usize) {
        match self.offsets {
            Offsets::Small(o) => (o[row] as usize, o[row + 1] as usize),
            Offsets::Large(o) => (o[row] as usize, o[row + 1] as usize),
        }
    }

    /// Length of the row's list, None when the row is null.
    fn row_len(&self, row: usize) -> Option<usize> {
        if self.list.is_null(row) {
            return None;
        }
        let (a, b) = self.range(row);
        Some(b - a)
    }

    /// Why the model cannot take the row, as `code: detail`; None when it can: the list is
    /// not null, not empty, holds no null, no negative id and no id past the embedding, and
    /// its token type ids (when given) have its length.
    fn problem(
        &self,
        row: usize,
        types: Option<&TokenLists<'_>>,
        vocab: Option<&Embedding>,
    ) -> Option<String> {
        let (a, b) = match self.row_len(row) {
            None => return Some(problem_text(Reason::NullInputIds, NULL_LIST)),
            Some(0) => return Some(problem_text(Reason::EmptyInputIds, "the token list is empty")),
            Some(_) => self.range(row),
        };
        if let Some(p) = self.child_nulls.and_then(|n| (a..b).find(|&i| n.is_null(i))) {
            let detail = format!("the token id at position {} is null", p - a);
            return Some(problem_text(Reason::NullTokenId, detail));
        }
        let limit = vocab.map_or(i64::MAX, |e| e.vocab.min(i64::MAX as u64) as i64);
        let bad = |v: i64| v < 0 || v >= limit;
        let found = match self.values {
            Values::I32(v) => v[a..b]
                .iter()
                .position(|&x| bad(x as i64))
                .map(|p| (p, v[a + p] as i64)),
            Values::I64(v) => v[a..b].iter().position(|&x| bad(x)).map(|p| (p, v[a + p])),
        };
        if let Some((p, id)) = found {
            let why = match vocab {
                Some(e) if id >= 0 => format!(
                    "is not below the vocabulary size {} of the model's embedding `{}`",
                    e.vocab, e.name
                ),
                _ => "is negative".to_string(),
            };
            let detail = format!("token id {id} at position {p} {why}");
            return Some(problem_text(Reason::TokenIdOutOfRange, detail));
        }
        if let Some(t) = types {
            if t.row_len(row) != Some(b - a) {
                let detail = format!(
                    "{} token type ids for {} token ids",
                    t.row_len(row).map_or("null".to_string(), |n| n.to_string()),
                    b - a
                );
                return Some(problem_text(Reason::TokenTypeIdsLengthMismatch, detail));
            }
        }
        None
    }

    fn padded(&self, rows: &[usize]) -> PaddedBatch {
        let batch = rows.len();
        let seq = rows
            .iter()
            .map(|&r| self.row_len(r).unwrap_or(0))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        let mut tokens = 0;
        for (b, &r) in rows.iter().enumerate() {
            let n = self.fill(r, &mut ids[b * seq..(b + 1) * seq]);
            mask[b * seq..b * seq + n].fill(1);
            tokens += n;
        }
        PaddedBatch {
            ids,
            mask,
            batch,
            seq,
            tokens,
        }
    }

    /// Copies the row's ids into `dst` (which is at least as long) and returns how many.
    fn fill(&self, row: usize, dst: &mut [i64]) -> usize {
        let (a, b) = self.range(row);
        match self.values {
            Values::I32(v) => dst.iter_mut().zip(&v[a..b]).for_each(|(d, &s)| *d = s as i64),
            Values::I64(v) => dst[..b - a].copy_from_slice(&v[a..b]),
        }
        b - a
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum UdfKind {
    /// `reward_model`: the score.
    Score,
    /// `reward_model_input_problem`: why there is no score.
    Problem,
}

/// `reward_model(input_ids [, token_type_ids])` or
/// `reward_model_input_problem(input_ids [, token_type_ids])` as a DataFusion scalar function.
#[derive(Debug)]
struct RewardModelUdf {
    model: Arc<RewardModel>,
    kind: UdfKind,
    signature: Signature,
}

impl PartialEq for RewardModelUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.model, &other.model) && self.kind == other.kind
    }
}
impl Eq for RewardModelUdf {}
impl std::hash::Hash for RewardModelUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.model.sha256.hash(state);
        self.kind.hash(state);
    }
}

impl ScalarUDFImpl for RewardModelUdf {
    fn name(&self) -> &str {
        match self.kind {
            UdfKind::Score => UDF_NAME,
            UdfKind::Problem => PROBLEM_UDF_NAME,
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        if arg_types.is_empty() || arg_types.len() > 2 {
            return plan_err!(
                "{UDF_NAME}(input_ids [, token_type_ids]) takes 1 or 2 arguments, got {}",
                arg_types.len()
            );
        }
        for t in arg_types {
            if !matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::Null) {
                return plan_err!("{UDF_NAME} takes lists of token ids, got {t}");
            }
        }
        Ok(match self.kind {
            UdfKind::Score => DataType::Float64,
            UdfKind::Problem => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(ids) = arrays.first() else {
            return exec_err!("{UDF_NAME} needs input_ids");
        };
        if ids.data_type() == &DataType::Null {
            return Ok(ColumnarValue::Array(match self.kind {
                UdfKind::Score => Arc::new(Float64Array::from(vec![None::<f64>; n])),
                UdfKind::Problem => Arc::new(datafusion::arrow::array::StringArray::from(vec![
                    Some(
                        problem_text(Reason::NullInputIds, NULL_LIST)
                    );
                    n
                ])),
            }));
        }
        // token_type_ids only reach a model that asks for them; NULL means zeros.
        let types = arrays
            .get(1)
            .filter(|a| a.data_type() != &DataType::Null && self.model.signature.wants_token_type_ids());
        let types = types.map(|a| a.as_ref());
        let out: ArrayRef = match self.kind {
            UdfKind::Score => self
                .model
                .predict(ids.as_ref(), types)
                .map(|a| Arc::new(a) as ArrayRef),
            UdfKind::Problem => self
                .model
                .input_problems(ids.as_ref(), types)
                .map(|a| Arc::new(a) as ArrayRef),
        }
        .map_err(Error::into_datafusion)?;
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::ListArray;

    #[test]
    fn batches_respect_rows_and_tokens() {
        let lengths = [50, 40, 40, 10, 10, 10, 10, 1];
        let b = plan_batches(&lengths, 3, 100);
        assert_eq!(b, vec![0..2, 2..4, 4..7, 7..8]);
        // A row longer than the budget runs alone.
        assert_eq!(plan_batches(&[500, 2], 8, 100), vec![0..1, 1..2]);
        assert!(plan_batches(&[], 8, 100).is_empty());
    }

    #[test]
    fn padding_and_mask() {
        let a = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(5), Some(6), Some(7)]),
            None,
            Some(vec![Some(9)]),
        ]);
        let p = padded_batch(&a, &[2, 0]).unwrap();
        assert_eq!((p.batch, p.seq, p.tokens), (2, 3, 4));
        assert_eq!(p.ids, vec![9, 0, 0, 5, 6, 7]);
        assert_eq!(p.mask, vec![1, 0, 0, 1, 1, 1]);
    }
}
