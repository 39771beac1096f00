//! The `segscore` command line: a thin layer over the library that parses flags, sets up
//! logging and the thread pools, and turns errors into messages and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use segscore::demo;
use segscore::job::{self, JobConfig};
use segscore::model;
use segscore::progress::ProgressMode;
use segscore::source::ColumnNames;
use segscore::{Error, Loss, Provider};

#[derive(Parser)]
#[command(name = "segscore", version, about = "Offline evaluation of segment-level reward models", long_about = None)]
#[command(args_override_self = true)]
struct Cli {
    /// Only print errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format on stderr: text for people, json (one object per line) for machines.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the evaluation job: Parquet in, segment scores, model, losses, Parquet out.
    Run(Box<RunArgs>),
    /// Generate the bundled sample data and run the job on it with the bundled model.
    Demo(DemoArgs),
    /// Print a model's inputs and outputs and how segscore binds them.
    Inspect {
        /// The ONNX model file.
        model: PathBuf,
    },
    /// Benchmarks only: time the model alone on the padded batches a run would build from
    /// these files (prints JSON).
    BenchModel(BenchModelArgs),
    /// Write <DIR>/report.html from a segscore output directory: summary, residual histogram,
    /// predicted-vs-target scatter, calibration plot, worst generations. Self-contained.
    Report {
        /// The output directory of a run.
        dir: PathBuf,
    },
    /// Compare two runs (two models) on the same data: metrics side by side, and a paired
    /// bootstrap confidence interval for the MSE difference.
    Compare {
        /// Output directory of run A.
        a: PathBuf,
        /// Output directory of run B.
        b: PathBuf,
        /// Bootstrap replicates.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
        bootstrap: u64,
        /// Seed of the bootstrap (same seed, same data: same interval).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Confidence level of the interval.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        /// Output: table, or json.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Run SQL over Parquet files and segscore outputs, with segscore's functions.
    Sql(SqlArgs),
    /// Write a benchmark dataset (the demo's scoring rule, long-tailed segment lengths).
    Generate {
        /// Where to write the Parquet files.
        #[arg(long, short)]
        output: PathBuf,
        /// Segments (rows) to write.
        #[arg(long, default_value_t = 1_000_000)]
        segments: u64,
        /// Number of files.
        #[arg(long, default_value_t = 4)]
        files: usize,
        /// Spread generations over the files and shuffle rows, instead of sorted files.
        #[arg(long)]
        shuffled: bool,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args)]
struct RunArgs {
    /// A TOML file of settings: keys are these flags' long names; flags given here win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Input Parquet files, directories (searched recursively for *.parquet) or globs.
    #[arg(long, short, required = true, num_args = 1..)]
    input: Vec<String>,
    /// The ONNX reward model.
    #[arg(long, short)]
    model: PathBuf,
    /// The output directory (must be empty or absent, unless --overwrite).
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    opts: JobArgs,
}

#[derive(Args)]
struct SqlArgs {
    /// The query, e.g. "SELECT generation_id, kendall_tau(predicted_score, target_score) FROM
    /// segments GROUP BY 1".
    #[arg(
        allow_hyphen_values = true,
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    query: Option<String>,
    /// Read the query from FILE (e.g. queries/generations.sql).
    #[arg(long, short, value_name = "FILE")]
    file: Option<PathBuf>,
    /// NAME=PATH registers Parquet files (a file, directory or glob) as table NAME; a segscore
    /// output directory registers NAME.segments, NAME.generations (and NAME.rejected), or
    /// segments, generations (and rejected) when given as a bare PATH.
    #[arg(long, short, value_name = "[NAME=]PATH")]
    table: Vec<segscore::sql::TableArg>,
    /// An ONNX model: makes reward_model(input_ids[, token_type_ids]) available.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// The model's execution provider: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    provider: Provider,
    /// Output format: table, csv, json (one object per line) or parquet.
    #[arg(long, default_value = "table")]
    format: segscore::sql::Format,
    /// Write the result to FILE (written whole, then renamed into place) instead of stdout.
    #[arg(long, value_name = "FILE")]
    to: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Memory for DataFusion's operators, e.g. 2GiB (default: a quarter of RAM).
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<bytesize::ByteSize>,
}

#[derive(Args)]
struct BenchModelArgs {
    /// Input Parquet files, directories or globs.
    #[arg(long, short, required = true, num_args = 1..)]
    input: Vec<String>,
    /// The ONNX model.
    #[arg(long, short)]
    model: PathBuf,
    /// Rows to use, at most (read from the start).
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Rows per model call.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Padded positions per model call.
    #[arg(long, default_value_t = 8192)]
    max_tokens_per_batch: usize,
    /// Execution provider: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    provider: Provider,
    /// Threads (sessions).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct DemoArgs {
    /// Where to write the demo's data, model and results.
    #[arg(long, short, default_value = "segscore-demo")]
    output: PathBuf,
    /// How many generations to generate.
    #[arg(long, default_value_t = 300)]
    generations: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Execution provider: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    provider: Provider,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct JobArgs {
    /// A SQL file replacing the built-in targets query (queries/segment_scores.sql).
    #[arg(long)]
    query_file: Option<PathBuf>,
    /// Column holding the generation id (string or integer).
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
    /// The Huber loss's delta.
    #[arg(long, default_value_t = 1.0)]
    huber_delta: f64,
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
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
    /// Padded positions (rows x longest row) per model call, at most.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1..))]
    max_tokens_per_batch: u64,
    /// Rows per output part file, at most.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_rows_per_file: u64,
    /// Seconds between progress log lines when stderr is not a terminal (a terminal gets a bar).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    progress_interval: f64,
    /// Also write report.html (summary, plots, worst generations) into the output directory.
    #[arg(long)]
    report: bool,
    /// Invalid rows: fail (stop at the first, naming it) or quarantine (write their
    /// generations to rejected/ with a reason, score the rest).
    #[arg(long, default_value = "fail", value_name = "fail|quarantine")]
    on_invalid: segscore::validate::OnInvalid,
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
    /// Worker threads: DataFusion partitions and model sessions (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
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
        };
        cfg.query_file = self.query_file;
        cfg.model_output = self.model_output;
        cfg.provider = self.provider;
        cfg.batch_size = self.batch_size as usize;
        cfg.loss = Loss::parse(&self.loss, self.huber_delta).map_err(Error::Usage)?;
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
            if self.on_invalid != segscore::validate::OnInvalid::Quarantine {
                return Err(Error::Usage(
                    "--max-invalid-fraction needs --on-invalid quarantine (with fail, the first invalid row stops the run)".into(),
                ));
            }
        }
        cfg.max_invalid_fraction = self.max_invalid_fraction;
        cfg.resume = self.resume;
        cfg.shards = self.shards.map(|n| n as usize);
        if let Some(t) = self.threads {
            cfg.threads = t as usize;
        }
        Ok((cfg, self.explain))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(quiet: bool, verbose: u8, format: LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "segscore=info,ort=warn,warn",
        (false, 1) => "segscore=debug,ort=info,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEGSCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    // rayon runs the model's batches; tokio drives DataFusion's streams and the writers.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

/// Runs the job; SIGINT or SIGTERM abandons it: the job's tasks are dropped, the runtime waits
/// for its writer threads, and what is not committed is removed from the work folder, so
/// nothing half-written is left and no `_SUCCESS` appears; committed shards stay for
/// `--resume`.
fn run_job(cfg: JobConfig) -> Result<job::Summary, Error> {
    let rt = runtime(cfg.threads)?;
    let existed = cfg.output.exists();
    let outcome = rt.block_on(async {
        tokio::select! {
            r = job::run(&cfg) => Ok(r),
            s = stop_signal() => Err(s),
        }
    });
    match outcome {
        Ok(result) => result,
        Err(signal) => {
            rt.shutdown_timeout(std::time::Duration::from_secs(10));
            // The writer threads have stopped: remove what they left that is not committed.
            let committed = segscore::sink::abandon(&cfg.output, !existed);
            Err(Error::Interrupted { signal, committed })
        }
    }
}

/// Waits for SIGINT or SIGTERM and returns its name.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

fn demo(args: DemoArgs) -> Result<(), Error> {
    let input = args.output.join("input").join("generations.parquet");
    let model_path = args.output.join("model").join("reward_small.onnx");
    let batch = demo::demo_batch(args.generations, args.seed)?;
    demo::write_parquet(&input, &batch)?;
    std::fs::create_dir_all(args.output.join("model")).map_err(|e| Error::io(&args.output, e))?;
    segscore::sink::write_atomic(&model_path, demo::DEMO_MODEL)?;
    tracing::info!(
        segments = batch.num_rows(),
        generations = args.generations,
        path = %input.display(),
        "demo data written"
    );
    let mut cfg = JobConfig::new(
        vec![input.display().to_string()],
        model_path,
        args.output.join("output"),
    );
    cfg.overwrite = true;
    cfg.report = true;
    cfg.provider = args.provider;
    if let Some(t) = args.threads {
        cfg.threads = t.max(1);
    }
    let out = cfg.output.clone();
    let summary = run_job(cfg)?;
    println!("segscore demo: {}", out.display());
    print!("{}", segscore::summary_table(&summary));
    Ok(())
}

fn bench_model(args: BenchModelArgs) -> Result<(), Error> {
    let BenchModelArgs {
        input,
        model: model_path,
        rows: max_rows,
        batch_size,
        max_tokens_per_batch: max_tokens,
        provider,
        threads,
    } = args;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ProjectionMask;
    let threads = threads.unwrap_or_else(job::default_threads).max(1);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    let model = model::RewardModel::load(
        &model_path,
        &model::ModelOptions {
            provider,
            batch_size,
            max_tokens,
            sessions: threads,
            intra_threads: 1,
            output: None,
        },
    )?;
    let mut batches = Vec::new();
    let mut taken = 0;
    'files: for path in segscore::source::expand_inputs(&input)? {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let idx = builder.schema().index_of("input_ids")?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
        for b in builder.with_projection(mask).with_batch_size(8192).build()? {
            let b = b?;
            let b = b.slice(0, b.num_rows().min(max_rows - taken));
            taken += b.num_rows();
            batches.extend(model.prepare_batches(b.column(0).as_ref())?);
            if taken >= max_rows {
                break 'files;
            }
        }
    }
    let (rows, seconds) = model.time_batches(&batches)?;
    let positions: usize = batches.iter().map(|b| b.batch * b.seq).sum();
    let tokens: usize = batches.iter().map(|b| b.tokens).sum();
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "seconds": seconds,
            "rows_per_second": rows as f64 / seconds,
            "padding_share": 1.0 - tokens as f64 / positions.max(1) as f64,
            "provider": model.provider().as_str(),
            "threads": threads,
        })
    );
    Ok(())
}

fn inspect(model_path: PathBuf) -> Result<(), Error> {
    let (sig, rt) = model::inspect(&model_path)?;
    println!("model: {}", model_path.display());
    println!("ONNX Runtime {} ({})", rt.version, rt.library.display());
    println!("inputs:");
    for i in &sig.inputs {
        let binding = match &i.binding {
            Ok((model::Feed::InputIds, _)) => {
                "<- column input_ids (--input-ids-col), padded with 0 per batch".to_string()
            }
            Ok((model::Feed::AttentionMask, _)) => "<- 1 for real tokens, 0 for padding".to_string(),
            Ok((model::Feed::TokenTypeIds, _)) => "<- column --token-type-ids-col, else zeros".to_string(),
            Err(reason) => format!("UNBOUND: {reason}"),
        };
        println!("  {:<16} {:<28} {binding}", i.name, i.type_desc);
    }
    println!("outputs:");
    for (k, o) in sig.outputs.iter().enumerate() {
        let note = if k == 0 {
            "<- score (default; --model-output picks another)"
        } else {
            ""
        };
        println!("  {:<16} {:<28} {note}", o.name, o.type_desc);
    }
    if let Some(bad) = sig.inputs.iter().find(|i| i.binding.is_err()) {
        return Err(Error::ModelBinding {
            model: model_path.display().to_string(),
            reason: bad.binding.clone().err().unwrap_or_default(),
        });
    }
    Ok(())
}

/// glibc gives each thread that allocates its own heap arena; batches allocated on one
/// thread and freed on another then fragment them, and a long run's memory creeps up (+30%
/// from 1M to 10M rows here). Two arenas keep it flat at no measured cost in speed.
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// `segscore run --config job.toml ...`: every `run` flag can be a key of the file (its long
/// name, `-` or `_`); flags given on the command line win; an unknown key is an error that
/// names it. The file's settings become flags placed before the command line's.
fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(at) = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(args);
    };
    if args.get(1).map(String::as_str) != Some("run") {
        return Err("--config is an option of `segscore run`".into());
    }
    let (path, consumed) = match args[at].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (args.get(at + 1).cloned().ok_or("--config needs a file")?, 2),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("config {path}: {e}"))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("config {path}: {e}"))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let run = cmd.find_subcommand("run").ok_or("no run command")?;
    let mut rest: Vec<String> = args[..at].to_vec();
    rest.extend_from_slice(&args[at + consumed..]);
    let given = |arg: &clap::Arg, long: &str| {
        let short = arg.get_short().map(|c| format!("-{c}"));
        rest.iter().any(|a| {
            a == &format!("--{long}") || a.starts_with(&format!("--{long}=")) || Some(a) == short.as_ref()
        })
    };
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = run
            .get_arguments()
            .chain(cmd.get_arguments())
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| {
                format!("config {path}: unknown key `{key}` (keys are the long flags of `segscore run`)")
            })?;
        if given(arg, &long) {
            continue; // the command line wins
        }
        let flag = format!("--{long}");
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(format!(
                "config {path}: key `{key}` has an unsupported value {other:?}"
            )),
        };
        match value {
            toml::Value::Boolean(true) if !arg.get_action().takes_values() => from_file.push(flag),
            toml::Value::Boolean(false) if !arg.get_action().takes_values() => {}
            toml::Value::Array(items) => {
                for item in items {
                    from_file.push(flag.clone());
                    from_file.push(scalar(item)?);
                }
            }
            v => {
                from_file.push(flag);
                from_file.push(scalar(v)?);
            }
        }
    }
    let mut out = rest[..2].to_vec();
    out.extend(from_file);
    out.extend_from_slice(&rest[2..]);
    Ok(out)
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let args = match expand_config(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    init_logging(cli.quiet, cli.verbose, cli.log_format);
    let quiet = cli.quiet;
    let json_logs = cli.log_format == LogFormat::Json;
    let result = match cli.command {
        Command::Run(a) => a
            .opts
            .into_config(a.input, a.model, a.output)
            .and_then(|(mut cfg, explain)| {
                if quiet {
                    cfg.progress = ProgressMode::Off;
                }
                if explain {
                    let rt = runtime(cfg.threads)?;
                    let plan = rt.block_on(async { job::prepare(&cfg).await?.physical_plan(&cfg).await })?;
                    print!("{plan}");
                    return Ok(());
                }
                let s = run_job(cfg)?;
                if !quiet {
                    print!("{}", segscore::summary_table(&s));
                }
                Ok(())
            }),
        Command::Demo(a) => demo(a),
        Command::Inspect { model } => inspect(model),
        Command::BenchModel(a) => bench_model(a),
        Command::Compare {
            a,
            b,
            bootstrap,
            seed,
            confidence,
            format,
        } => {
            let threads = job::default_threads();
            let opts = segscore::compare::CompareOptions {
                a,
                b,
                replicates: bootstrap as usize,
                seed,
                confidence,
                threads,
                memory_limit: job::default_memory_limit(),
            };
            runtime(threads).and_then(|rt| {
                let c = rt.block_on(segscore::compare::compare(&opts))?;
                if format == "json" {
                    println!("{}", serde_json::to_string_pretty(&c)?);
                } else {
                    print!("{}", segscore::compare::table(&c));
                }
                Ok(())
            })
        }
        Command::Report { dir } => {
            let threads = job::default_threads();
            runtime(threads).and_then(|rt| {
                let path = rt.block_on(segscore::report::write(
                    &dir,
                    threads,
                    job::default_memory_limit(),
                ))?;
                if !quiet {
                    println!("{}", path.display());
                }
                Ok(())
            })
        }
        Command::Sql(a) => {
            let threads = a.threads.unwrap_or_else(job::default_threads).max(1);
            let query = match (a.query, &a.file) {
                (Some(q), _) => Ok(q),
                (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| Error::io(f, e)),
                (None, None) => Err(Error::Usage("give a query, or --file".into())),
            };
            let opts = |query| segscore::sql::SqlOptions {
                query,
                tables: a.table,
                model: a.model,
                provider: a.provider,
                format: a.format,
                to: a.to,
                threads,
                memory_limit: a
                    .memory_limit
                    .map(|m| m.as_u64())
                    .unwrap_or_else(job::default_memory_limit),
            };
            query
                .map(opts)
                .and_then(|opts| runtime(threads).and_then(|rt| rt.block_on(segscore::sql::run(&opts))))
        }
        Command::Generate {
            output,
            segments,
            files,
            shuffled,
            seed,
        } => {
            let layout = if shuffled {
                demo::Layout::Shuffled
            } else {
                demo::Layout::Sorted
            };
            demo::write_dataset(&output, segments, files, layout, seed).map(|(rows, gens)| {
                tracing::info!(rows, generations = gens, path = %output.display(), "dataset written");
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code: u8 = match e {
                Error::Usage(_) => 2,
                Error::TooManyInvalid { .. } => 3,
                Error::Interrupted { signal: "SIGINT", .. } => 130,
                Error::Interrupted { .. } => 143,
                _ => 1,
            };
            if json_logs {
                tracing::error!(exit_code = code, error = %e, "segscore failed");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(code)
        }
    }
}
