//! The job's configuration: everything a run needs, with defaults, and the job query.

use std::path::PathBuf;

use crate::contract::ColumnNames;
use crate::engine::{default_memory_limit, default_threads};
use crate::error::Result;
use crate::loss::Loss;
use crate::model::Provider;
use crate::pipeline::progress::ProgressMode;
use crate::pipeline::score::{Pass, Prediction};
use crate::source::hive::{HiveMode, PartitionCol};
use crate::validate::OnInvalid;

/// The job query shipped with segscore for text input (`queries/segment_scores_text.sql`).
pub const SEGMENT_SCORES_TEXT_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/segment_scores_text.sql"
));

/// The job query shipped with segscore for token-id input (`queries/segment_scores.sql`).
pub const SEGMENT_SCORES_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/segment_scores.sql"));

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Input files, directories or globs.
    pub inputs: Vec<String>,
    /// The ONNX model.
    pub model: PathBuf,
    /// The output directory.
    pub output: PathBuf,
    /// Input column names.
    pub columns: ColumnNames,
    /// A replacement for the job query.
    pub query_file: Option<PathBuf>,
    /// The model output holding the score (default: the first).
    pub model_output: Option<String>,
    /// Execution provider.
    pub provider: Provider,
    /// Rows per model call.
    pub batch_size: usize,
    /// The regression loss.
    pub loss: Loss,
    /// Model-input columns to keep in the output.
    pub keep: Vec<String>,
    /// Carried columns to leave out of the output.
    pub drop: Vec<String>,
    /// Replace segscore's outputs in a non-empty output directory.
    pub overwrite: bool,
    /// Worker threads (DataFusion partitions, model sessions).
    pub threads: usize,
    /// Treat every input file as sorted by (generation id, segment index); checked as rows
    /// flow. Also assumed when every file's footer declares that order (`sorting_columns`).
    pub sorted: bool,
    /// Memory for DataFusion's operators (the sort of unsorted input spills past it).
    pub memory_limit: u64,
    /// Where sorts spill (default: the system's temp dir).
    pub spill_dir: Option<PathBuf>,
    /// Padded positions per model call, at most.
    pub max_tokens_per_batch: usize,
    /// Rows per output part file, at most.
    pub max_rows_per_file: u64,
    /// Progress reporting.
    pub progress: ProgressMode,
    /// Seconds between progress log lines when stderr is not a terminal.
    pub progress_interval: f64,
    /// Write `report.html` with the outputs.
    pub report: bool,
    /// What to do with invalid rows.
    pub on_invalid: OnInvalid,
    /// With quarantine: fail (exit 3) when more than this fraction of the input rows is
    /// rejected.
    pub max_invalid_fraction: Option<f64>,
    /// Shards (units of commitment); None: one per 4M input rows.
    pub shards: Option<usize>,
    /// Continue an interrupted run in the output directory.
    pub resume: bool,
    /// A Hugging Face `tokenizer.json`, for text input (`columns.text`).
    pub tokenizer: Option<PathBuf>,
    /// Appended after every segment's text (text input).
    pub segment_separator: Option<String>,
    /// One call per generation or per segment (text input; default: generation for a
    /// per-token model, segment otherwise).
    pub pass: Option<Pass>,
    /// Whether the model's score is the segment's or the cumulative one.
    pub prediction: Prediction,
    /// For an output of classes per token: the class scored.
    pub score_label: Option<usize>,
    /// The longest model input (default: the model's own limit, if any).
    pub max_length: Option<usize>,
    /// Whether input folders' `key=value` levels become columns.
    pub hive_partitioning: HiveMode,
    /// Partition columns' types, where given.
    pub partition_cols: Vec<PartitionCol>,
    /// Run the plan on the Ballista cluster whose scheduler is at this `df://HOST:PORT`.
    pub cluster: Option<String>,
}

impl JobConfig {
    /// Whether the job reads text (`--text-col` with `--tokenizer`; one without the other is
    /// refused before anything is read).
    pub fn text_input(&self) -> bool {
        self.columns.text.is_some() && self.tokenizer.is_some()
    }

    /// A configuration with defaults for everything but inputs, model and output.
    pub fn new(inputs: Vec<String>, model: PathBuf, output: PathBuf) -> Self {
        JobConfig {
            inputs,
            model,
            output,
            columns: ColumnNames::default(),
            query_file: None,
            model_output: None,
            provider: Provider::Auto,
            batch_size: 256,
            loss: Loss::Squared,
            keep: Vec::new(),
            drop: Vec::new(),
            overwrite: false,
            threads: default_threads(),
            sorted: false,
            memory_limit: default_memory_limit(),
            spill_dir: None,
            max_tokens_per_batch: 8192,
            max_rows_per_file: 1_000_000,
            progress: ProgressMode::Auto,
            progress_interval: 10.0,
            report: false,
            on_invalid: OnInvalid::Fail,
            max_invalid_fraction: None,
            shards: None,
            resume: false,
            tokenizer: None,
            segment_separator: None,
            pass: None,
            prediction: Prediction::Segment,
            score_label: None,
            max_length: None,
            hive_partitioning: HiveMode::Auto,
            partition_cols: Vec::new(),
            cluster: None,
        }
    }
}

pub(crate) fn read_query(cfg: &JobConfig) -> Result<String> {
    match &cfg.query_file {
        Some(p) => crate::store::read_text(p),
        None if cfg.columns.text.is_some() => Ok(SEGMENT_SCORES_TEXT_SQL.to_string()),
        None => Ok(SEGMENT_SCORES_SQL.to_string()),
    }
}
