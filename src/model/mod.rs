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
//! model's embedding (see [`onnx`]), token type ids of another length. The function
//! `reward_model_input_problem(input_ids [, token_type_ids])` says why, as
//! `code: detail` text (NULL for a row the model takes); the job reports such rows as invalid.
//!
//! The model file is read once; a pool of sessions (one per worker thread, each with one
//! intra-op thread) lets every core run the model.
//!
//! - [`runtime`]: finding and loading the ONNX Runtime library, the execution provider;
//! - [`session`]: reading the model file and building sessions;
//! - [`signature`]: the model's inputs and outputs and how they bind;
//! - [`onnx`]: what the graph tells that ONNX Runtime does not (the embedding's size);
//! - [`tokens`]: token-id list columns, their problems, and padded batches;
//! - [`output`]: the score output's kinds, read where asked; [`run`]: one batch on a session;
//!   `caller.rs`: whether a call's batches run on the calling partition's thread or the pool;
//! - [`text`]: text to token ids; [`udf`]: the model as SQL functions; [`shared`]: the job's
//!   model and tokenizer where the job did not load them (a cluster's executors).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};

use datafusion::arrow::array::{Array, Float64Array};
use rayon::prelude::*;

use crate::error::{Error, Result};

mod caller;
pub use caller::streaming_ended;
pub mod onnx;
pub mod output;
pub mod run;
pub mod runtime;
pub mod sequences;
pub mod session;
pub mod shared;
pub mod signature;
pub mod text;
pub mod text_udf;
pub mod tokens;
pub mod udf;

pub use onnx::Embedding;
pub use output::OutputKind;
pub use runtime::{Provider, Runtime};
pub use session::{inspect, ModelFile};
pub use signature::{Feed, IdType, InputInfo, ModelSignature, OutputInfo};
pub use text::TextTokenizer;
pub use tokens::{input_problems, padded_batch, plan_batches, InputLimits, PaddedBatch};
pub use udf::{PROBLEM_UDF_NAME, UDF_NAME};

use session::{build_session, model_name, Sessions};
use signature::ScoreType;
use tokens::TokenLists;

/// Sessions in the pool on the CUDA provider, at most.
pub const CUDA_SESSIONS: usize = 2;

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
    /// For an output of classes per token: the class scored (`--score-label`).
    pub score_label: Option<usize>,
    /// The longest sequence the model takes (`--max-length`); default: the model's fixed
    /// sequence length, else its position embedding's size, else none.
    pub max_length: Option<usize>,
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
            score_label: None,
            max_length: None,
        }
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
    output_kind: OutputKind,
    fixed_seq: Option<usize>,
    /// Whether padding would reach the model as tokens: it takes no attention mask, or it
    /// compares the token ids themselves (a pad id), and its length is not fixed.
    pads_unmasked: bool,
    provider: Provider,
    runtime: &'static Runtime,
    batch_size: usize,
    max_tokens: usize,
    limits: InputLimits,
    pool: Sessions,
    next: AtomicUsize,
    /// The job's partitions streaming now (see [`RewardModel::partition`]).
    partitions: AtomicUsize,
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
            .field("kind", &self.output_kind)
            .field("limits", &self.limits)
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

impl RewardModel {
    /// Loads the model file once and builds the session pool. Fails, naming the input, when a
    /// model input cannot be bound or the score output is unusable.
    pub fn load(path: &Path, opts: &ModelOptions) -> Result<Self> {
        let file = ModelFile::read(path)?;
        let sha256 = file.sha256();
        let rt = runtime::runtime(opts.provider)?;
        let (first, provider) = match opts.provider {
            Provider::Cpu => (
                build_session(rt, path, &file, Provider::Cpu, opts.intra_threads)?,
                Provider::Cpu,
            ),
            Provider::Cuda => (
                build_session(rt, path, &file, Provider::Cuda, opts.intra_threads)?,
                Provider::Cuda,
            ),
            Provider::Auto => match build_session(rt, path, &file, Provider::Cuda, opts.intra_threads) {
                Ok(s) => (s, Provider::Cuda),
                Err(Error::Provider { reason, .. }) => {
                    tracing::info!(%reason, "provider auto: CUDA unavailable, using the CPU");
                    (
                        build_session(rt, path, &file, Provider::Cpu, opts.intra_threads)?,
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
        let bad = |reason: String| Error::ModelBinding {
            model: name.clone(),
            reason,
        };
        let (seq_dim, seq_symbol) = signature::input_seq(&first);
        let fixed_seq = (seq_dim > 0).then_some(seq_dim as usize);
        let fixed_batch = signature.fixed_batch;
        if let Some(n) = fixed_batch {
            tracing::info!(
                rows = n,
                "the model's batch dimension is fixed: every call takes {n} rows (export it with a dynamic batch axis to batch freely)"
            );
        }
        let (output_type, declared) = output::score_output(
            output.name(),
            output.dtype(),
            (seq_dim, &seq_symbol),
            opts.score_label,
        )
        .map_err(bad)?;
        let output_name = output.name().to_string();
        let input_named = |feed: Feed| feeds.iter().find(|(_, f, _)| *f == feed).map(|(n, ..)| n.clone());
        let vocab = input_named(Feed::InputIds).and_then(|input| file.graph.embedding_for_input(&input));
        let masked = feeds.iter().any(|(_, f, _)| *f == Feed::AttentionMask);
        let reads_pad_id = input_named(Feed::InputIds).is_some_and(|input| file.graph.compares_input(&input));
        if let Some(e) = &vocab {
            tracing::debug!(embedding = %e.name, vocab = e.vocab, "token ids are checked against the model's embedding");
        }
        // The longest input: as asked, else the fixed sequence length, else as many positions
        // as the position embedding has.
        let position_embedding =
            input_named(Feed::PositionIds).and_then(|input| file.graph.embedding_for_input(&input));
        let max_length = match (opts.max_length, fixed_seq, &position_embedding) {
            (Some(m), Some(f), _) if m > f => {
                return Err(Error::Usage(format!(
                    "--max-length {m}: model {name} takes sequences of exactly {f} tokens"
                )))
            }
            // Past the position embedding, ONNX Runtime fails mid-run (an index out of bounds).
            (Some(m), None, Some(e)) if m as u64 > e.vocab => {
                return Err(Error::Usage(format!(
                    "--max-length {m}: model {name} has {} positions (its position embedding `{}`)",
                    e.vocab, e.name
                )))
            }
            (Some(m), _, _) => Some(m),
            (None, Some(f), _) => Some(f),
            (None, None, e) => e.as_ref().map(|e| e.vocab as usize),
        };
        // One GPU gains nothing from more than two sessions (one prepares while one runs), and
        // each would hold its own device memory arena.
        let sessions = match provider {
            Provider::Cuda => opts.sessions.clamp(1, CUDA_SESSIONS),
            _ => opts.sessions.max(1),
        };
        let pool = Sessions::new(first, sessions - 1, rt, path, file, provider, opts.intra_threads);
        let mut model = RewardModel {
            path: path.to_path_buf(),
            sha256,
            signature,
            feeds,
            output_name,
            output_type,
            output_kind: declared.unwrap_or(OutputKind::Sequence),
            fixed_seq,
            provider,
            runtime: rt,
            batch_size: opts.batch_size.max(1).min(fixed_batch.unwrap_or(usize::MAX)),
            max_tokens: opts.max_tokens.max(1),
            limits: InputLimits { vocab, max_length },
            pads_unmasked: fixed_seq.is_none() && (!masked || reads_pad_id),
            pool,
            next: AtomicUsize::new(0),
            partitions: AtomicUsize::new(0),
            stats: ModelStats::default(),
        };
        if declared.is_none() {
            // `[batch, N]` with N unknown: one call on 2 rows of 3 tokens (or as many rows as a
            // fixed batch takes) tells.
            let rows = fixed_batch.unwrap_or(2);
            let probe = PaddedBatch::from_sequences(&[&[0, 0, 0]], fixed_seq).filled_to(rows);
            let (shape, _) = model.run_raw(&probe, None)?;
            model.output_kind =
                output::kind_of_shape(&model.output_name, &shape, rows, probe.seq, opts.score_label)
                    .map_err(|reason| Error::ModelBinding {
                        model: model_name(path),
                        reason,
                    })?;
        }
        tracing::debug!(output = %model.output_name, kind = %model.output_kind.describe(), max_length = ?model.limits.max_length, "model output");
        let why = match (masked, reads_pad_id) {
            (false, _) => Some("takes no attention_mask"),
            (true, true) => Some("compares input_ids with a constant (a pad id, as transformers' classifiers find each row's last token)"),
            (true, false) => None,
        };
        match (why, model.fixed_seq) {
            (Some(why), None) => tracing::info!(
                model = %path.display(),
                "the model {why}: each call takes rows of one length, so no padding reaches it"
            ),
            (Some(why), Some(n)) => tracing::warn!(
                model = %path.display(),
                "the model {why} and takes exactly {n} tokens: shorter rows are padded with 0, which it may read as tokens"
            ),
            (None, _) => {}
        }
        Ok(model)
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// sha256 of the model file and its external data files, hex ([`ModelFile::sha256`]).
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
        self.limits.vocab.as_ref()
    }
    /// What the score output gives (one score per sequence, or per token).
    pub fn output_kind(&self) -> OutputKind {
        self.output_kind
    }
    /// The longest sequence the model takes, if it has a limit.
    pub fn max_length(&self) -> Option<usize> {
        self.limits.max_length
    }
    /// Rows per model call, at most.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Why the model cannot take each row (`code: detail`), or null for a row it takes.
    pub fn input_problems(
        &self,
        input_ids: &dyn Array,
        token_type_ids: Option<&dyn Array>,
    ) -> Result<datafusion::arrow::array::StringArray> {
        input_problems(input_ids, token_type_ids, &self.limits)
    }

    /// Scores every row of a token-id list column. Rows the model cannot take (see
    /// [`RewardModel::input_problems`]) get a null score.
    ///
    /// Rows are grouped into model batches by length (longest first), at most `batch_size` rows
    /// and `max_tokens` padded positions each, so that little of each batch is padding; the
    /// batches run in parallel over the session pool, or in sequence on the calling job
    /// partition's thread while every core drives one ([`RewardModel::partition`]).
    pub fn predict(&self, input_ids: &dyn Array, token_type_ids: Option<&dyn Array>) -> Result<Float64Array> {
        let ids = TokenLists::new(input_ids, "input_ids")?;
        let types = token_type_ids
            .map(|a| TokenLists::new(a, "token_type_ids"))
            .transpose()?;
        let mut rows = ids.rows_taken(types.as_ref(), &self.limits);
        let ranges = self.group(&ids, &mut rows);
        let scored = self.map_batches(&ranges, |range| {
            self.run_chunk(&ids, types.as_ref(), &rows[range.clone()])
        })?;
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
        // Each length read once; (longest first, then row) orders the rows as a stable sort by
        // length would, the pairs sorted in place without a call per comparison.
        let mut keyed: Vec<(std::cmp::Reverse<usize>, usize)> = rows
            .iter()
            .map(|&r| (std::cmp::Reverse(ids.row_len(r).unwrap_or(0)), r))
            .collect();
        keyed.sort_unstable();
        let mut lengths = Vec::with_capacity(keyed.len());
        for (slot, (std::cmp::Reverse(len), r)) in rows.iter_mut().zip(keyed) {
            *slot = r;
            lengths.push(len);
        }
        self.batches(&lengths)
    }

    /// Model batches over rows sorted longest first ([`plan_batches`]); for a model that would
    /// read padding as tokens (no attention mask, or a pad id compared with the ids) and has
    /// no fixed length, cut again where the length changes, so that no padding reaches it.
    fn batches(&self, lengths_desc: &[usize]) -> Vec<std::ops::Range<usize>> {
        let planned = plan_batches(lengths_desc, self.batch_size, self.max_tokens);
        if !self.pads_unmasked {
            return planned;
        }
        planned
            .into_iter()
            .flat_map(|r| tokens::one_length_batches(lengths_desc, r))
            .collect()
    }

    /// The padded tensors `predict` would feed the model for a token-id list column, built in
    /// advance (for measuring the model alone).
    pub fn prepare_batches(&self, input_ids: &dyn Array) -> Result<Vec<PaddedBatch>> {
        let ids = TokenLists::new(input_ids, "input_ids")?;
        let mut rows = ids.rows_taken(None, &self.limits);
        let ranges = self.group(&ids, &mut rows);
        Ok(ranges
            .into_iter()
            .map(|r| ids.padded(&rows[r], self.fixed_seq))
            .collect())
    }

    /// Runs pre-built batches over the session pool and returns (rows, seconds): the model's
    /// own speed, the floor for a whole run.
    pub fn time_batches(&self, batches: &[PaddedBatch]) -> Result<(u64, f64)> {
        self.pool.wait();
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
        let padded = ids.padded(rows, self.fixed_seq);
        let tt = types.map(|t| t.padded(rows, self.fixed_seq).ids);
        self.run_padded(&padded, tt.as_deref())
    }

    /// Runs the model on one padded batch (with token type ids, or zeros); one score per row:
    /// the sequence's, or the last token's.
    pub fn run_padded(&self, padded: &PaddedBatch, token_type_ids: Option<&[i64]>) -> Result<Vec<f64>> {
        let (shape, data) = self.run_checked(padded, token_type_ids)?;
        Ok(output::read_last(
            self.output_kind,
            &shape,
            &data,
            &padded.lengths,
        ))
    }

    /// Scores token sequences: for each sequence, the score at each of its `reads` positions
    /// (a per-sequence model gives its one score for each). Sequences are batched longest
    /// first under `batch_size` rows and `max_tokens` padded positions, and the batches run as
    /// [`RewardModel::predict`]'s do.
    pub fn score_sequences(&self, seqs: &[&[i64]], reads: &[Vec<usize>]) -> Result<Vec<Vec<f64>>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let lengths: Vec<usize> = order.iter().map(|&i| seqs[i].len()).collect();
        let ranges = self.batches(&lengths);
        let scored = self.map_batches(&ranges, |range| {
            let rows = &order[range.clone()];
            let batch: Vec<&[i64]> = rows.iter().map(|&i| seqs[i]).collect();
            let padded = PaddedBatch::from_sequences(&batch, self.fixed_seq);
            let at: Vec<Vec<usize>> = rows.iter().map(|&i| reads[i].clone()).collect();
            self.run_reads(&padded, None, &at)
        })?;
        let mut out = vec![Vec::new(); seqs.len()];
        for (range, scores) in ranges.iter().zip(scored) {
            for (&i, s) in order[range.clone()].iter().zip(scores) {
                out[i] = s;
            }
        }
        Ok(out)
    }
}
