//! `segscore run`: the flags of a job, turned into a [`JobConfig`], and the run.

use std::path::PathBuf;

use clap::Args;

use crate::contract::ColumnNames;
use crate::error::Error;
use crate::loss::Loss;
use crate::model::Provider;
use crate::pipeline::progress::ProgressMode;
use crate::pipeline::score::{Pass, Prediction};
use crate::pipeline::{self, JobConfig};
use crate::source::hive::{HiveMode, PartitionCol};

use super::exec::{run_job, runtime};
use super::stdout::print;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Input Parquet files, directories (searched recursively for *.parquet) or globs.
    #[arg(long, short, required = true, num_args = 1.., value_parser = crate::cli::path_arg())]
    input: Vec<PathBuf>,
    /// The ONNX reward model.
    #[arg(long, short, value_parser = crate::cli::path_arg())]
    model: PathBuf,
    /// The output directory (must be empty or absent, unless --overwrite).
    #[arg(long, short, value_parser = crate::cli::path_arg())]
    output: PathBuf,
    #[command(flatten)]
    opts: JobArgs,
}

#[derive(Args)]
pub(crate) struct JobArgs {
    /// A SQL file replacing the built-in targets query (queries/segment_scores.sql).
    #[arg(long, value_parser = crate::cli::path_arg())]
    query_file: Option<PathBuf>,
    /// Column holding the generation id (string, integer, or a 16-byte UUID read as its text).
    #[arg(long, default_value = "generation_id")]
    id_col: String,
    /// Column holding the segment index (integer).
    #[arg(long, default_value = "segment_index")]
    index_col: String,
    /// Column holding the cumulative score (float).
    #[arg(long, default_value = "cumulative_score")]
    score_col: String,
    /// Column holding the token ids (list of int32/int64).
    #[arg(long, default_value = "input_ids")]
    input_ids_col: String,
    /// Column holding a per-generation base score (the baseline of the first segment; default 0.0).
    #[arg(long)]
    base_score_col: Option<String>,
    /// Column holding token type ids, for models that take `token_type_ids` (default: zeros).
    #[arg(long)]
    token_type_ids_col: Option<String>,
    /// The model output holding the score (default: the first output).
    #[arg(long)]
    model_output: Option<String>,
    /// Execution provider: cpu, cuda (fails if CUDA cannot be used) or auto.
    #[arg(long, default_value = "auto")]
    provider: Provider,
    /// Rows per model call.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Regression loss: squared, absolute or huber.
    #[arg(long, default_value = "squared")]
    loss: String,
    /// The Huber loss's delta (with --loss huber) [default: 1.0]
    #[arg(long, value_parser = super::exec::positive_number, allow_negative_numbers = true)]
    huber_delta: Option<f64>,
    /// Keep a model-input column (input_ids, token_type_ids) in the output.
    #[arg(long, value_name = "COL")]
    keep: Vec<String>,
    /// Leave a carried column out of the output.
    #[arg(long, value_name = "COL")]
    drop: Vec<String>,
    /// Replace segscore's outputs in a non-empty output directory.
    #[arg(long)]
    overwrite: bool,
    /// The input is sorted by (generation id, segment index) within each file: the window
    /// streams without a sort. Checked as rows flow. Assumed when every file's footer says so.
    #[arg(long)]
    sorted: bool,
    /// Memory for DataFusion's operators, e.g. 2GiB or 512MiB (default: a quarter of RAM); the
    /// sort of unsorted input spills to disk past it.
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<bytesize::ByteSize>,
    /// Where sorts spill (default: the system's temp dir).
    #[arg(long, value_name = "DIR", value_parser = crate::cli::path_arg())]
    spill_dir: Option<PathBuf>,
    /// Padded positions (rows x longest row) per model call, at most.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1..))]
    max_tokens_per_batch: u64,
    /// Rows per output part file, at most.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_rows_per_file: u64,
    /// Seconds between progress log lines when stderr is not a terminal (a terminal gets a bar).
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = super::exec::seconds_parser, allow_negative_numbers = true)]
    progress_interval: f64,
    /// Also write report.html (summary, plots, worst generations) into the output directory.
    #[arg(long)]
    report: bool,
    /// Invalid rows: fail (stop at the first, naming it) or quarantine (write their
    /// generations to rejected/ with a reason, score the rest).
    #[arg(long, default_value = "fail", value_name = "fail|quarantine")]
    on_invalid: crate::validate::OnInvalid,
    /// With --on-invalid quarantine: fail (exit 3, nothing committed) when more than this
    /// fraction (0 to 1) of the input rows is invalid.
    #[arg(long, value_name = "FRACTION")]
    max_invalid_fraction: Option<f64>,
    /// Continue an interrupted run in --output: keep its committed shards, run the rest, then
    /// commit (a complete output of the same job is left as it is).
    #[arg(long)]
    resume: bool,
    /// Units of commitment: the generations are cut by a hash of their id into this many
    /// shards, each run and committed in turn (default: one per 4M input rows).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    shards: Option<u64>,
    /// Print the physical plan and exit without running.
    #[arg(long)]
    explain: bool,
    /// Worker threads: DataFusion partitions and model sessions, 1 to 1024 (default: all
    /// cores).
    #[arg(long, value_parser = crate::cli::exec::threads_parser())]
    threads: Option<usize>,
    /// Text input: a Hugging Face tokenizer.json (its padding and truncation are ignored).
    #[arg(long, value_name = "FILE", value_parser = crate::cli::path_arg())]
    tokenizer: Option<PathBuf>,
    /// Text input: the column holding each segment's text (instead of --input-ids-col).
    #[arg(long, value_name = "COL")]
    text_col: Option<String>,
    /// Text input: the column holding the generation's prompt (read from its first segment's
    /// row; default: no prompt).
    #[arg(long, value_name = "COL")]
    prompt_col: Option<String>,
    /// Text input: text appended after every segment, e.g. "\n" or a step tag (the escapes
    /// \n, \t, \r and \\ are a newline, tab, carriage return and backslash).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true, value_parser = unescape)]
    segment_separator: Option<String>,
    /// Text input: one model call per generation, each segment read at its last token
    /// (default for per-token models; checked causal), or one per segment prefix.
    #[arg(long, value_name = "generation|segment")]
    pass: Option<Pass>,
    /// What the model's score is: the segment's own, or the cumulative score after it (the
    /// prediction is then its change, from the generation's base score).
    #[arg(long, default_value = "segment", value_name = "segment|cumulative")]
    prediction: Prediction,
    /// For an output of classes per token ([batch, seq, C]) or per sequence ([batch, C]): the
    /// class whose softmax probability is the score.
    #[arg(long, value_name = "K")]
    score_label: Option<usize>,
    /// The longest model input in tokens; longer ones are invalid (too_long), never cut.
    /// Default: the model's fixed sequence length or position embedding size, else none.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_length: Option<u64>,
    /// Input folders' `key=value` levels as columns (hive partitioning): auto (when every file
    /// has the same levels), on or off.
    #[arg(long, default_value = "auto", value_name = "auto|on|off")]
    hive_partitioning: HiveMode,
    /// A partition column's type, e.g. day:int or split:string (default: int when every value
    /// is an integer).
    #[arg(long, value_name = "KEY:TYPE")]
    partition_col: Vec<PartitionCol>,
    /// Run on the Ballista cluster whose scheduler is at df://HOST:PORT (see `segscore
    /// cluster`): the scan, the model and the window run on its executors, this process
    /// writes the output. --threads is then the partitions of each stage.
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

impl JobArgs {
    fn into_config(
        self,
        inputs: Vec<String>,
        model: PathBuf,
        output: PathBuf,
    ) -> Result<(JobConfig, bool), Error> {
        let mut cfg = JobConfig::new(inputs, model, output);
        cfg.columns = ColumnNames {
            generation_id: self.id_col,
            segment_index: self.index_col,
            cumulative_score: self.score_col,
            input_ids: self.input_ids_col,
            base_score: self.base_score_col,
            token_type_ids: self.token_type_ids_col,
            text: self.text_col,
            prompt: self.prompt_col,
        };
        cfg.tokenizer = self.tokenizer;
        cfg.segment_separator = self.segment_separator;
        cfg.pass = self.pass;
        cfg.prediction = self.prediction;
        cfg.score_label = self.score_label;
        cfg.max_length = self.max_length.map(|m| m as usize);
        cfg.hive_partitioning = self.hive_partitioning;
        cfg.partition_cols = self.partition_col;
        if let Some(url) = &self.cluster {
            if cfg!(not(feature = "cluster")) {
                return Err(crate::cluster::not_built("--cluster"));
            }
            crate::cluster::scheduler_address(url)?;
        }
        cfg.cluster = self.cluster;
        cfg.query_file = self.query_file;
        cfg.model_output = self.model_output;
        cfg.provider = self.provider;
        cfg.batch_size = self.batch_size as usize;
        cfg.loss = Loss::parse(&self.loss, self.huber_delta.unwrap_or(1.0)).map_err(Error::Usage)?;
        if self.huber_delta.is_some() && !matches!(cfg.loss, Loss::Huber { .. }) {
            tracing::warn!(loss = %self.loss, "--huber-delta is for --loss huber: ignored");
        }
        cfg.keep = self.keep;
        cfg.drop = self.drop;
        cfg.overwrite = self.overwrite;
        cfg.sorted = self.sorted;
        if let Some(m) = self.memory_limit {
            cfg.memory_limit = m.as_u64();
        }
        cfg.spill_dir = self.spill_dir;
        cfg.max_tokens_per_batch = self.max_tokens_per_batch as usize;
        cfg.max_rows_per_file = self.max_rows_per_file;
        cfg.progress_interval = self.progress_interval;
        cfg.report = self.report;
        cfg.on_invalid = self.on_invalid;
        if let Some(f) = self.max_invalid_fraction {
            if !(0.0..=1.0).contains(&f) {
                return Err(Error::Usage(format!(
                    "--max-invalid-fraction {f}: give a fraction from 0 to 1"
                )));
            }
            if self.on_invalid != crate::validate::OnInvalid::Quarantine {
                return Err(Error::Usage(
                    "--max-invalid-fraction needs --on-invalid quarantine (with fail, the first invalid row stops the run)".into(),
                ));
            }
        }
        cfg.max_invalid_fraction = self.max_invalid_fraction;
        cfg.resume = self.resume;
        cfg.shards = self.shards.map(|n| n as usize);
        if let Some(t) = self.threads {
            cfg.threads = t;
        }
        Ok((cfg, self.explain))
    }
}

/// The `--input` paths and globs as text: a path that is not UTF-8 is an error naming it.
pub(crate) fn utf8_inputs(input: &[PathBuf]) -> Result<Vec<String>, Error> {
    input
        .iter()
        .map(|p| crate::engine::tables::require_utf8(p).map(str::to_string))
        .collect()
}

/// `segscore run`: the job, or with `--explain` its physical plan.
pub(crate) fn run(a: RunArgs, quiet: bool) -> Result<(), Error> {
    let (mut cfg, explain) = a.opts.into_config(utf8_inputs(&a.input)?, a.model, a.output)?;
    if quiet {
        cfg.progress = ProgressMode::Off;
    }
    if explain {
        let rt = runtime(cfg.threads)?;
        let plan = rt.block_on(async { pipeline::prepare(&cfg).await?.physical_plan(&cfg).await })?;
        return print(&plan.to_string());
    }
    let s = run_job(cfg)?;
    if !quiet {
        // The output is committed: a summary that cannot be printed is no failure of the job.
        if let Err(e) = print(&crate::evaluate::summary::summary_table(&s)) {
            tracing::warn!("the summary was not printed ({e}); the output is complete");
        }
    }
    Ok(())
}

/// `--segment-separator`'s text with the escapes `\n`, `\t`, `\r` and `\\` read as the
/// characters they name (the help's `"\n"`, typed in a shell, is a backslash and an `n`);
/// any other backslash stays as it is.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = match (c, chars.peek()) {
            ('\\', Some('n')) => '\n',
            ('\\', Some('t')) => '\t',
            ('\\', Some('r')) => '\r',
            ('\\', Some('\\')) => '\\',
            _ => {
                out.push(c);
                continue;
            }
        };
        chars.next();
        out.push(escaped);
    }
    Ok(out)
}
