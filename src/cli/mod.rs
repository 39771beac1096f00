//! The `segscore` command line: a thin layer over the library. It parses flags (and a
//! `--config` file), sets up logging, the thread pools and signal handling, runs one command,
//! and turns its error into a message and an exit code. One file per command.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Error;

mod cluster;
mod config;
mod demo;
mod exec;
mod inspect;
mod logging;
mod report;
mod run;
pub mod sql;
mod sql_calls;
mod sql_copy;
mod sql_csv;
mod sql_formats;
mod sql_pivot;
mod sql_sink;
mod sql_summarize;
mod sql_tables;
mod sql_text;
mod stdout;

#[derive(Parser)]
#[command(name = "segscore", version, about = "Offline evaluation of segment-level reward models", long_about = None)]
#[command(args_override_self = true)]
struct Cli {
    /// Only print errors.
    #[arg(short, long, global = true, help_heading = "Global options")]
    quiet: bool,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    verbose: u8,
    /// A TOML file of flags for the command: keys are the flags' long names (`verbose = 1`,
    /// `input = ["a", "b"]`, `report = true`); flags on the command line win.
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE", value_parser = path_arg())]
    config: Option<PathBuf>,
    /// Log format on stderr: text for people, json (one object per line) for machines.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        default_value = "text"
    )]
    log_format: logging::LogFormat,
    /// An S3-compatible object store for `s3://` URLs (MinIO, Ceph, moto...), e.g.
    /// `http://127.0.0.1:9000`; default: `AWS_ENDPOINT_URL`, else AWS. An `http://` endpoint
    /// allows plain HTTP.
    #[arg(long, global = true, help_heading = "Global options", value_name = "URL")]
    s3_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the evaluation job: Parquet in, segment scores, model, losses, Parquet out.
    Run(Box<run::RunArgs>),
    /// Generate the bundled sample data and run the job on it with the bundled model.
    Demo(demo::DemoArgs),
    /// Print a model's inputs and outputs and how segscore binds them.
    Inspect {
        /// The ONNX model file.
        #[arg(value_parser = path_arg())]
        model: PathBuf,
    },
    /// Benchmarks only: time the model alone on the padded batches a run would build from
    /// these files (prints JSON).
    BenchModel(inspect::BenchModelArgs),
    /// Write <DIR>/report.html from a segscore output directory: summary, residual histogram,
    /// predicted-vs-target scatter, calibration plot, worst generations. Self-contained.
    Report {
        /// The output directory of a run.
        #[arg(value_parser = path_arg())]
        dir: PathBuf,
    },
    /// Compare two runs (two models) on the same data: metrics side by side, and a paired
    /// bootstrap confidence interval for the MSE difference.
    Compare {
        /// Output directory of run A.
        #[arg(value_parser = path_arg())]
        a: PathBuf,
        /// Output directory of run B.
        #[arg(value_parser = path_arg())]
        b: PathBuf,
        /// Bootstrap replicates, 1 to 1,000,000 (each resamples every generation).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        bootstrap: u64,
        /// Seed of the bootstrap (same seed, same data: same interval).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Confidence level of the interval.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        /// Output: table, json, or markdown (for a pull request or a report).
        #[arg(long, default_value = "table", value_parser = ["table", "json", "markdown", "md"])]
        format: String,
    },
    /// Run SQL over Parquet (and CSV, JSON, Arrow) files and segscore outputs, with segscore's
    /// functions.
    Sql(sql::SqlArgs),
    /// A Ballista cluster's scheduler or executor, for `segscore run --cluster`.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Write a benchmark dataset (the demo's scoring rule, long-tailed segment lengths).
    Generate {
        /// Where to write the Parquet files.
        #[arg(long, short, value_parser = path_arg())]
        output: PathBuf,
        /// Segments (rows) to write.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        segments: u64,
        /// Number of files, 1 to 10,000 (and at most --segments).
        #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
        files: usize,
        /// Spread generations over the files and shuffle rows, instead of sorted files.
        #[arg(long)]
        shuffled: bool,
        /// Sorted files that do not declare it in their footers (no `sorting_columns`), as
        /// pandas, polars, DuckDB and pyarrow write them.
        #[arg(long, conflicts_with = "shuffled")]
        undeclared: bool,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Rows per row group (pyarrow writes up to 1048576 in one).
        #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
        row_group_rows: u64,
        /// Text data (prompt, step) for the bundled GPT-2 tokenizer and per-token model.
        #[arg(long, conflicts_with_all = ["shuffled", "undeclared", "row_group_rows"])]
        text: bool,
    },
}

/// The exit code of an error: 2 for a usage error, 3 when `--max-invalid-fraction` stops a
/// run, 130 and 143 for SIGINT and SIGTERM, 1 for everything else.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Usage(_) => 2,
        Error::TooManyInvalid { .. } => 3,
        Error::Interrupted { signal: "SIGINT", .. } => 130,
        Error::Interrupted { .. } => 143,
        _ => 1,
    }
}

/// Runs the command line, the whole `segscore` binary, and ends the process with its exit
/// status: stdout flushed, then `_exit`, skipping the C and C++ exit handlers (ONNX Runtime's
/// static destructors, 8 ms of every run's end).
pub fn main() -> ! {
    exec::end_process(command_line())
}

/// Runs the command line; its exit status.
fn command_line() -> u8 {
    exec::disable_onnxruntime_telemetry();
    crate::panics::install_quiet_panic_hook();
    let (args, from_file) = match config::expand_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => match from_file.explain(&e) {
            Some(told) => {
                eprintln!("error: {told}");
                return 2;
            }
            None => e.exit(),
        },
    };
    logging::init_logging(cli.quiet, cli.verbose, cli.log_format);
    let quiet = cli.quiet;
    if let Some(endpoint) = &cli.s3_endpoint {
        crate::store::set_endpoint(endpoint);
    }
    let json_logs = cli.log_format == logging::LogFormat::Json;
    let result = match cli.command {
        Command::Run(a) => run::run(*a, quiet),
        Command::Demo(a) => demo::demo(a, quiet),
        Command::Inspect { model } => inspect::inspect(model),
        Command::BenchModel(a) => inspect::bench_model(a),
        Command::Compare {
            a,
            b,
            bootstrap,
            seed,
            confidence,
            format,
        } => report::compare(a, b, bootstrap, seed, confidence, &format),
        Command::Report { dir } => report::report(dir, quiet),
        Command::Sql(a) => sql::sql(a),
        Command::Cluster(c) => cluster::cluster(c),
        Command::Generate {
            output,
            segments,
            files,
            shuffled,
            undeclared,
            seed,
            row_group_rows,
            text,
        } => {
            let layout = match (shuffled, undeclared) {
                (true, _) => crate::sample::Layout::Shuffled,
                (_, true) => crate::sample::Layout::Undeclared,
                _ => crate::sample::Layout::Sorted,
            };
            let rows = usize::try_from(row_group_rows).unwrap_or(usize::MAX);
            demo::generate(output, segments, files, layout, seed, rows, text)
        }
    };
    match result {
        Ok(()) => 0,
        // The reader of the output stopped reading (`| head`): nothing is wrong.
        Err(_) if stdout::closed() => 0,
        Err(e) => {
            let code = exit_code(&e);
            if json_logs {
                tracing::error!(exit_code = code, error = %e, "segscore failed");
            } else {
                eprintln!("error: {e}");
            }
            code
        }
    }
}

/// A path argument: a local path (UTF-8 or not) or an `s3://` URL; a URL of another scheme
/// (`gs://`, `s3a://`, `file://`) is refused ([`crate::store::foreign_url`]) rather than taken
/// as a local path.
pub(crate) fn path_arg() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|s| {
        match s.to_str().and_then(crate::store::foreign_url) {
            Some(why) => Err(why),
            None => Ok(PathBuf::from(s)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_usage_from_system_failures() {
        // A runtime that cannot start is the system's failure, not a wrong flag.
        assert_eq!(
            exit_code(&Error::System(
                "cannot start the async runtime: no threads".into()
            )),
            1
        );
        assert_eq!(exit_code(&Error::Usage("bad flag".into())), 2);
        assert_eq!(
            exit_code(&Error::Interrupted {
                signal: "SIGINT",
                committed: 0
            }),
            130
        );
        assert_eq!(
            exit_code(&Error::Interrupted {
                signal: "SIGTERM",
                committed: 2
            }),
            143
        );
    }
}
