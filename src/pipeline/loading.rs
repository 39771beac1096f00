//! The job's model and tokenizer: the text flags checked against each other, the model loaded
//! (ONNX Runtime's library, the first session) and the tokenizer read, with the text settings
//! checked against the model; where the job has more than one thread, on a thread of its own
//! while the inputs are registered (their key ranges cut) and the query planned
//! ([`ModelLoad`]).

use std::sync::{Arc, OnceLock};

use datafusion::logical_expr::ScalarUDF;

use crate::error::{Error, Result};
use crate::model::{ModelOptions, RewardModel, TextTokenizer};
use crate::pipeline::config::JobConfig;
use crate::pipeline::score::Pass;

/// A loaded model, with the tokenizer and pass of a text run.
#[derive(Clone)]
pub(crate) struct ModelParts {
    pub(crate) model: Arc<RewardModel>,
    pub(crate) tokenizer: Option<Arc<TextTokenizer>>,
    pub(crate) pass: Option<Pass>,
}

/// The job's model: loaded, or loading (or to load) while the query is planned with
/// functions that take it once it is set.
pub(crate) enum ModelLoad {
    /// Loaded (a job planned again).
    Loaded(ModelParts),
    /// Loading, or to load when waited for.
    Pending {
        /// On a blocking thread of the runtime; None: when [`ModelLoad::wait`] is called.
        loading: Option<tokio::task::JoinHandle<Result<ModelParts>>>,
        /// Where the model's functions find it, set when it is loaded.
        model: Arc<OnceLock<Arc<RewardModel>>>,
        /// The same for the tokenizer (text input).
        tokenizer: Arc<OnceLock<Arc<TextTokenizer>>>,
    },
}

impl ModelLoad {
    /// Starts loading the job's model beside the caller where `--threads` allows a second core
    /// and the job runs here: ONNX Runtime's library and the first session take some 20 ms for
    /// a small model and seconds for a large one, the key ranges' reads and the planning some
    /// tens of milliseconds; they overlap. Else it loads when waited for: `--threads 1` keeps
    /// to one core. (Called once the inputs are checked: a job that fails before waits for the
    /// load to end as it exits.)
    pub(crate) fn start(cfg: &JobConfig) -> Self {
        let loading = (cfg.threads > 1 && cfg.cluster.is_none()).then(|| {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || load(&cfg))
        });
        ModelLoad::Pending {
            loading,
            model: Arc::default(),
            tokenizer: Arc::default(),
        }
    }

    /// The model's SQL functions (`reward_model`, `reward_model_input_problem`, and `tokenize`
    /// with a tokenizer): for a pending model, functions that take it once
    /// [`ModelLoad::wait`] has set it (nothing may call them before: the query is planned,
    /// not run, before then).
    pub(crate) fn functions(&self, cfg: &JobConfig) -> Vec<ScalarUDF> {
        match self {
            ModelLoad::Loaded(parts) => {
                crate::functions::model_functions(Some(&parts.model), parts.tokenizer.as_ref())
            }
            ModelLoad::Pending { model, tokenizer, .. } => {
                let mut udfs = crate::model::udf::pending_udfs(model).to_vec();
                if cfg.text_input() {
                    udfs.push(crate::model::text::pending_tokenize_udf(tokenizer));
                }
                udfs
            }
        }
    }

    /// The loaded model, set where the functions find it (a panic while loading goes on as
    /// the caller's).
    pub(crate) async fn wait(self, cfg: &JobConfig) -> Result<ModelParts> {
        let (loading, model, tokenizer) = match self {
            ModelLoad::Loaded(parts) => return Ok(parts),
            ModelLoad::Pending {
                loading,
                model,
                tokenizer,
            } => (loading, model, tokenizer),
        };
        let parts = match loading {
            None => load(cfg)?,
            Some(handle) => match handle.await {
                Ok(parts) => parts?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => return Err(Error::Internal(format!("loading the model: {e}"))),
            },
        };
        let _ = model.set(Arc::clone(&parts.model));
        if let Some(t) = &parts.tokenizer {
            let _ = tokenizer.set(Arc::clone(t));
        }
        Ok(parts)
    }
}

/// Loads the job's model and tokenizer and checks the settings that depend on them.
fn load(cfg: &JobConfig) -> Result<ModelParts> {
    let model = Arc::new(RewardModel::load(&cfg.model, &model_options(cfg))?);
    if let Some(col) = cfg.columns.token_type_ids.as_deref() {
        if !model.signature().wants_token_type_ids() {
            tracing::warn!(
                model = %cfg.model.display(),
                "the model takes no token_type_ids: --token-type-ids-col {col} is not read"
            );
        }
    }
    let (tokenizer, pass) = text_settings(cfg, &model)?;
    Ok(ModelParts {
        model,
        tokenizer,
        pass,
    })
}

/// How the job runs its model (locally; on a cluster, how the client reads it and, with
/// their own provider and sessions, how the executors run it).
pub(crate) fn model_options(cfg: &JobConfig) -> ModelOptions {
    // On a cluster the client only reads the model's signature and sha256: the executors run
    // it, with their own --provider.
    let (provider, sessions) = match cfg.cluster {
        Some(_) => (crate::model::Provider::Cpu, 1),
        None => (cfg.provider, cfg.threads.max(1)),
    };
    ModelOptions {
        provider,
        batch_size: cfg.batch_size,
        max_tokens: cfg.max_tokens_per_batch,
        sessions,
        intra_threads: 1,
        output: cfg.model_output.clone(),
        score_label: cfg.score_label,
        max_length: cfg.max_length,
    }
}

/// The text flags checked against each other, before the inputs are read (a `--prompt-col`
/// of a token-id run was reported as a column missing from the files).
pub(crate) fn text_flags(cfg: &JobConfig) -> Result<()> {
    match (&cfg.columns.text, &cfg.tokenizer) {
        (Some(_), None) => Err(Error::Usage(
            "--text-col needs --tokenizer FILE (a Hugging Face tokenizer.json)".into(),
        )),
        (None, Some(_)) => Err(Error::Usage(
            "--tokenizer is for text input: give the segment text column with --text-col".into(),
        )),
        (None, None) => {
            let text_only = [
                ("--prompt-col", cfg.columns.prompt.is_some()),
                ("--segment-separator", cfg.segment_separator.is_some()),
                ("--pass generation", cfg.pass == Some(Pass::Generation)),
            ];
            match text_only.iter().find(|(_, given)| *given) {
                Some((flag, _)) => Err(Error::Usage(format!(
                    "{flag} is for text input (--text-col and --tokenizer); token-id input gives each row its whole model input"
                ))),
                None => Ok(()),
            }
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// The tokenizer and pass of a text run (none for token-id input), with the settings checked
/// against the model ([`text_flags`] checked them against each other).
fn text_settings(cfg: &JobConfig, model: &RewardModel) -> Result<(Option<Arc<TextTokenizer>>, Option<Pass>)> {
    let per_token = model.output_kind().per_token();
    match (&cfg.columns.text, &cfg.tokenizer) {
        (Some(_), Some(path)) => {
            let tokenizer = Arc::new(TextTokenizer::load(path)?);
            let pass = match cfg.pass {
                Some(Pass::Generation) if !per_token => {
                    return Err(Error::Usage(format!(
                        "--pass generation reads a score at each segment's last token, but model {} gives one score per sequence ({}): use --pass segment",
                        model.path().display(),
                        model.output_kind().describe()
                    )))
                }
                Some(p) => p,
                None if per_token => Pass::Generation,
                None => Pass::Segment,
            };
            tracing::info!(pass = pass.as_str(), output = %model.output_kind().describe(), tokenizer = %path.display(), "text input");
            Ok((Some(tokenizer), Some(pass)))
        }
        _ => Ok((None, None)),
    }
}
