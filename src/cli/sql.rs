//! `segscore sql`: ad-hoc SQL over Parquet (and CSV, JSON, Arrow) files and segscore output
//! directories, with every segscore function available (the metrics of
//! [`crate::metrics::udaf`], and `reward_model(...)` when a model is given).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::{FutureExt, StreamExt};

use super::exec::runtime;
use super::sql_calls::duckdb_sql;
use super::sql_copy::{copy_to, folder_given, names_a_folder, output_format, COPY_TO};
pub use super::sql_sink::ParquetSettings;
use super::sql_sink::Sink;
use super::sql_tables::{context, missing_function_hint, stream_sorted, PlainTable};
use crate::error::{Error, Result};
use crate::model::Provider;
use crate::store::Staged;
use clap::Args;

#[derive(Args)]
pub(crate) struct SqlArgs {
    /// The query, e.g. "SELECT generation_id, kendall_tau(predicted_score, target_score) FROM
    /// segments GROUP BY 1". Files may be named in place of a table ("SELECT count(*) FROM
    /// 'data/*.parquet'", "FROM 'labels.csv'"); "COPY (query) TO 'out.csv'" writes the result as
    /// --to does.
    #[arg(
        allow_hyphen_values = true,
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    query: Option<String>,
    /// Read the query from FILE (e.g. queries/generations.sql; `-`: standard input): one
    /// statement, or a script whose statements before the last CREATE VIEW, CREATE TABLE ... AS
    /// or SET.
    #[arg(long, short, value_name = "FILE", value_parser = crate::cli::path_arg())]
    file: Option<PathBuf>,
    /// NAME=PATH registers Parquet files (a file, directory or glob) as table NAME, or CSV,
    /// JSON or Arrow files by their names' end (.csv, .tsv; .json, .jsonl, .ndjson: an object
    /// per line; .arrow, .feather, .ipc, .arrows); a segscore output directory registers
    /// NAME.segments, NAME.generations (and NAME.rejected), or segments, generations (and
    /// rejected) when given as a bare PATH.
    #[arg(long, short, value_name = "[NAME=]PATH")]
    table: Vec<TableArg>,
    /// An ONNX model: makes reward_model(input_ids[, token_type_ids]) available.
    #[arg(long, short, value_parser = crate::cli::path_arg())]
    model: Option<PathBuf>,
    /// The model's execution provider: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    provider: Provider,
    /// The model output reward_model() reads (as `run --model-output`; default: the first).
    #[arg(long, requires = "model")]
    model_output: Option<String>,
    /// For a model output of classes ([batch, C] or [batch, seq, C]): the class whose softmax
    /// probability reward_model() gives (as `run --score-label`).
    #[arg(long, value_name = "K", requires = "model")]
    score_label: Option<usize>,
    /// A Hugging Face tokenizer.json: makes tokenize(text [, add_special_tokens]) available.
    #[arg(long, value_name = "FILE", value_parser = crate::cli::path_arg())]
    tokenizer: Option<PathBuf>,
    /// Output format: table, csv, json (one object per line), parquet or markdown [default:
    /// table, or with --to, the file name's extension: .csv, .json (.jsonl, .ndjson), .parquet
    /// or .md]
    #[arg(long)]
    format: Option<Format>,
    /// Write the result to FILE (written whole, then renamed into place) instead of stdout.
    #[arg(long, value_name = "FILE", value_parser = crate::cli::path_arg())]
    to: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = crate::cli::exec::threads_parser())]
    threads: Option<usize>,
    /// Memory for DataFusion's operators, e.g. 2GiB (default: a quarter of RAM).
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<bytesize::ByteSize>,
    /// With --format table: the rows shown, the first N (the rest are counted, not kept); 0
    /// shows every row.
    #[arg(long, value_name = "N", default_value_t = 40)]
    max_rows: usize,
    /// With --format table: a cell longer than N characters (a token list, a long text) is cut
    /// to N, ending in `…`; 0 shows every cell whole.
    #[arg(long, value_name = "N", default_value_t = 60)]
    max_width: usize,
}

/// `segscore sql`: the query from the command line or `--file`, run and printed or written.
pub(crate) fn sql(a: SqlArgs) -> Result<()> {
    let threads = a.threads.unwrap_or_else(crate::engine::default_threads);
    let query = match (a.query, &a.file) {
        (Some(q), _) => q,
        // `-f -`: the script on standard input (`segscore sql -f - < script.sql`).
        (None, Some(f)) if f.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Error::Usage(format!("--file -: standard input is not UTF-8 text: {e}")))?;
            text
        }
        (None, Some(f)) => crate::store::read_text(f)?,
        (None, None) => return Err(Error::Usage("give a query, or --file".into())),
    };
    // DuckDB's `FROM t WHERE ...` is `SELECT * FROM t WHERE ...`; its `USING SAMPLE` the table's
    // TABLESAMPLE.
    let query = super::sql_text::using_sample(&super::sql_text::select_star_first(&query))?;
    // Statements before the last define what it reads (`CREATE VIEW ...;`).
    let (setup, query) = super::sql_text::statements(&query)?;
    let setup = setup.iter().map(|s| duckdb_sql(s)).collect::<Result<Vec<_>>>()?;
    // DuckDB's `SUMMARIZE t` (`DESCRIBE t`): the query of t's rows, summarized (described)
    // once its columns are known.
    let (query, summarize) = match super::sql_summarize::summarized(&query) {
        Some((what, rows)) => (rows, Some(what)),
        None => (query, None),
    };
    // `COPY (query) TO 'file'` is the query with `--to file`.
    let copy = copy_to(&query)?;
    let copied = copy.is_some();
    let parquet = copy.as_ref().map(|c| c.parquet).unwrap_or_default();
    let (query, to, stored_as) = match copy {
        Some(_) if a.to.is_some() => {
            return Err(Error::Usage(
                "--to: the query's COPY ... TO says where its result goes; give one of them".into(),
            ))
        }
        Some(c) => (c.query, Some(c.to), c.format),
        None => (query, a.to, None),
    };
    // DuckDB's `read_parquet('path')` (`read_csv`, ...) is the path named in the query.
    let query = duckdb_sql(&query)?;
    let format = output_format(a.format, stored_as, to.as_deref(), copied)?;
    let to_label = if copied { COPY_TO } else { "--to" };
    let parquet = match &to {
        Some(to) => parquet.for_format(format, to_label, to)?,
        None => parquet,
    };
    let opts = SqlOptions {
        query,
        summarize,
        setup,
        tables: a.table,
        model: a.model,
        provider: a.provider,
        model_output: a.model_output,
        score_label: a.score_label,
        format,
        to,
        to_label,
        threads,
        memory_limit: a
            .memory_limit
            .map(|m| m.as_u64())
            .unwrap_or_else(crate::engine::default_memory_limit),
        tokenizer: a.tokenizer,
        max_rows: (a.max_rows > 0).then_some(a.max_rows),
        max_width: (a.max_width > 0).then_some(a.max_width),
        parquet,
    };
    // SIGINT or SIGTERM stops the query: its task is dropped at its next step, and with it the
    // `--to` file under its temporary name (killed outright, the process would leave that file
    // behind). The query runs as a task of its own so the signal is seen while it streams.
    let rt = runtime(threads)?;
    let result = rt.block_on(async {
        // Quiet: a reader's panic (arrow's Parquet decoder's, on a corrupt page) is an error.
        let mut query = tokio::spawn(crate::panics::Quiet(Box::pin(async move { run(&opts).await })));
        tokio::select! {
            done = &mut query => done.map_err(|e| Error::from_join("the query", e))?,
            signal = super::exec::stop_signal() => {
                query.abort();
                Err(Error::Interrupted { signal, committed: 0 })
            }
        }
    });
    // Dropping the runtime drops the query's task (its writer, its temporary file) first.
    drop(rt);
    result
}

/// How `segscore sql` prints or writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table (stdout only).
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
    /// Parquet (needs a file: `--to`).
    Parquet,
    /// A Markdown table, every row (for a report, an issue or a pull request).
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "parquet" => Ok(Format::Parquet),
            "markdown" | "md" => Ok(Format::Markdown),
            o => Err(format!(
                "unknown format `{o}` (expected table, csv, json, parquet or markdown)"
            )),
        }
    }
}

impl Format {
    /// The ending of a file's name in this format (`csv`; `md` for Markdown).
    pub fn ending(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            f => f.name(),
        }
    }

    /// The format's name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Parquet => "parquet",
            Format::Markdown => "markdown",
        }
    }

    /// The format a file's name says (`.csv`, `.json`, `.jsonl`, `.ndjson`, `.parquet`, `.md`,
    /// any case, before a compression's ending: `out.csv.gz`), if it says one.
    pub fn of_file(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        let plain = crate::source::expand::compressed(name).map_or(name, |(plain, _)| plain);
        let ext = Path::new(plain).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            "md" => Some(Format::Markdown),
            _ => None,
        }
    }
}

/// A `--table` argument: `NAME=PATH`, or a bare `PATH` for a segscore output directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TableArg {
    /// The table (or, for an output directory, schema) name.
    pub name: Option<String>,
    /// Parquet (or CSV, JSON, Arrow) files, a directory, a glob, or a segscore output directory.
    pub path: String,
    /// What a DuckDB reader's call in the query says besides (`read_csv('x', delim = ';')`).
    pub read: super::sql_calls::ReadCall,
}

impl std::str::FromStr for TableArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = Self::parse(s)?;
        match crate::store::foreign_url(&t.path) {
            Some(why) => Err(why),
            None => Ok(t),
        }
    }
}

impl TableArg {
    fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.split_once('=') {
            // A path with `=` in a folder's name (`data/day=1`), given bare.
            Some((n, _)) if n.contains(['/', '\\']) => Ok(TableArg {
                name: None,
                path: s.to_string(),
                read: Default::default(),
            }),
            // DataFusion would read `a.b` as table b of a schema a.
            Some((n, _)) if n.contains('.') => Err(format!(
                "--table {s}: a table name cannot hold `.` (DataFusion reads `a.b` as table b of a schema a); choose a plain name"
            )),
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(TableArg {
                name: Some(n.to_string()),
                path: p.to_string(),
                read: Default::default(),
            }),
            Some(_) => Err(format!("--table {s}: expected NAME=PATH")),
            None => Ok(TableArg {
                name: None,
                path: s.to_string(),
                read: Default::default(),
            }),
        }
    }
}

/// What `segscore sql` runs.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// The query.
    pub query: String,
    /// Whether the result is the query's columns summarized or described (DuckDB's
    /// `SUMMARIZE`, `DESCRIBE`).
    pub summarize: Option<super::sql_summarize::Columns>,
    /// Statements run before it, in order, that define what it reads (CREATE VIEW, CREATE
    /// TABLE ... AS, SET).
    pub setup: Vec<String>,
    /// Tables to register.
    pub tables: Vec<TableArg>,
    /// A model for `reward_model(...)`.
    pub model: Option<PathBuf>,
    /// The model's execution provider.
    pub provider: Provider,
    /// The model output `reward_model(...)` reads (default: the first).
    pub model_output: Option<String>,
    /// For an output of classes: the class scored.
    pub score_label: Option<usize>,
    /// Output format.
    pub format: Format,
    /// Write the result to this file instead of stdout.
    pub to: Option<PathBuf>,
    /// How `to` was given, for messages: `--to`, or the query's `COPY ... TO`.
    pub to_label: &'static str,
    /// DataFusion partitions.
    pub threads: usize,
    /// Memory for DataFusion's operators.
    pub memory_limit: u64,
    /// A tokenizer.json for `tokenize(text)`.
    pub tokenizer: Option<PathBuf>,
    /// With [`Format::Table`]: the rows shown (the rest counted); None shows all.
    pub max_rows: Option<usize>,
    /// With [`Format::Table`]: the characters a cell shows (longer ones cut); None, all.
    pub max_width: Option<usize>,
    /// How a Parquet result is written (a COPY's codec and row group size).
    pub parquet: ParquetSettings,
}

/// Runs the query and prints or writes its result.
pub async fn run(opts: &SqlOptions) -> Result<()> {
    run_query(opts)
        .await
        .map_err(|e| crate::engine::memory_error(e, opts.memory_limit))
}

async fn run_query(opts: &SqlOptions) -> Result<()> {
    if opts.format == Format::Parquet && opts.to.is_none() {
        return Err(Error::Usage("--format parquet needs --to FILE".into()));
    }
    if opts.format == Format::Table && opts.to.is_some() {
        return Err(Error::Usage(format!(
            "{} needs --format csv, json, parquet or markdown (table is for the terminal)",
            opts.to_label
        )));
    }
    if let Some(to) = opts.to.as_deref() {
        local_folder_exists(to, opts.to_label)?;
    }
    let (ctx, tables) = context(opts).await?;
    let summary;
    let opts = match &opts.summarize {
        Some(what) => {
            summary = SqlOptions {
                query: super::sql_summarize::columns_query(&ctx, &opts.query, what).await?,
                summarize: None,
                ..opts.clone()
            };
            &summary
        }
        None => opts,
    };
    // A reader's panic (arrow's Parquet decoder's, on a corrupt page) is an error here, so that
    // the file can be named like any reader error's.
    let ran = std::panic::AssertUnwindSafe(query_tables(&ctx, opts, &tables.plain))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(Error::from_panic("the query", panic.as_ref())));
    match ran {
        // Arrow's cast names neither the table nor the column.
        Err(e) if e.to_string().contains("non UTF-8 data") && !tables.binary_as_text.is_empty() => {
            Err(Error::InvalidData(format!(
                "{e}: a binary column read as text (binary_as_string = true: {}) holds bytes that are not UTF-8",
                tables.binary_as_text.join(", ")
            )))
        }
        // The readers' errors do not say which file: find it among the Parquet tables'.
        Err(e) if e.may_come_from_a_reader() => {
            match crate::pipeline::diagnose::first_unreadable(&ctx, &tables.parquet).await {
                Some((path, reason)) => Err(Error::NotParquet { path, reason }),
                None => Err(super::sql_formats::text_error(e, &tables.text)),
            }
        }
        other => other.map_err(|e| super::sql_formats::text_error(e, &tables.text)),
    }
}

async fn query_tables(ctx: &SessionContext, opts: &SqlOptions, plain: &[PlainTable]) -> Result<()> {
    // CSV, JSON and Markdown on stdout go out as they come: a first attempt could not be taken
    // back.
    let streamed = opts.to.is_none() && matches!(opts.format, Format::Csv | Format::Json | Format::Markdown);
    if !streamed {
        let threshold = ctx
            .state()
            .config()
            .options()
            .optimizer
            .subset_repartition_threshold;
        // Reading a table as sorted is a try: if it cannot be set up, the query runs as it is.
        let sorted = stream_sorted(ctx, &opts.query, plain).await.unwrap_or_else(|e| {
            tracing::debug!("a table the plan sorts is not read as sorted: {e}");
            None
        });
        if let Some(t) = sorted {
            match execute(ctx, opts).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::info!(table = %t.name, "{}: the query runs again, sorting the table", e.in_table_terms());
                    let table = t.provider(ctx, &[]).await?;
                    ctx.deregister_table(t.name.clone())?;
                    ctx.register_table(t.name.clone(), table)?;
                    // The ranges may have kept DataFusion from adding partitions: it may again.
                    crate::engine::ranges::set_repartition_threshold(ctx, threshold);
                }
            }
        }
    }
    execute(ctx, opts).await
}

/// `--to FILE` on local disk names a file in a folder that is there: anything else is refused
/// before the query runs (the file is written beside its final name, so the error would
/// otherwise name that temporary file, after the query).
fn local_folder_exists(to: &Path, label: &str) -> Result<()> {
    if crate::store::remote(to).is_some() {
        return Ok(());
    }
    if to.is_dir() || names_a_folder(to) {
        return Err(folder_given(label, to));
    }
    match to.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::Usage(format!(
            "{label} {}: the folder {} {}",
            to.display(),
            dir.display(),
            if dir.exists() {
                "is not a folder"
            } else {
                "does not exist"
            }
        ))),
        _ => Ok(()),
    }
}

/// Runs the query in `ctx` and prints or writes its result.
async fn execute(ctx: &SessionContext, opts: &SqlOptions) -> Result<()> {
    let df = segscore_plan::read_only(ctx, &opts.query).await.map_err(|e| {
        let text = e.to_string();
        Error::Usage(format!(
            "query: {}{}",
            unsupported_named(&text),
            missing_function_hint(&text, opts)
        ))
    })?;
    let mut stream = segscore_plan::execute_stream(df).await.map_err(|e| {
        let text = e.to_string();
        let subquery = ["Exists(", "InSubquery(", "ScalarSubquery("]
            .iter()
            .any(|e| text.contains(&format!("Physical plan does not support logical expression {e}")));
        match subquery {
            true => Error::Usage(format!("query: {text}{SUBQUERY_HINT}")),
            false => Error::from_datafusion(e),
        }
    })?;
    // The physical plan's schema, as its batches have it: the logical one can differ (a
    // CASE of an INT and a literal is Int32 there, its arrays Int64). A name given twice (a
    // join's `SELECT *`) is written `g`, `g_1`, as DuckDB's COPY writes it.
    let renamed = segscore_plan::names::unique_schema(&stream.schema());
    let schema = renamed.clone().unwrap_or_else(|| stream.schema());
    // An `s3://` file is written to a local folder of its own first (removed however the query
    // ends), then uploaded whole: the object appears only when it is complete.
    let upload = match opts
        .to
        .as_deref()
        .map(crate::store::Location::of)
        .transpose()?
        .flatten()
    {
        Some(loc) => {
            let url = opts
                .to
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default();
            if loc.key.as_ref().is_empty() || url.ends_with('/') {
                return Err(Error::Usage(format!(
                    "{} {url}: names a bucket or a prefix, not an object (give s3://bucket/key)",
                    opts.to_label
                )));
            }
            // Before the query runs: a missing bucket or a store that refuses us (a listing
            // under the key, one request; a HEAD cannot tell a missing bucket from a missing
            // object).
            loc.list()?;
            Some((loc, Staged::new()?))
        }
        None => None,
    };
    let local_to = match (&upload, &opts.to) {
        (Some((loc, dir)), _) => Some(dir.0.join(loc.key.filename().unwrap_or("result"))),
        (None, to) => to.clone(),
    };
    let mut sink = Sink::open(
        opts.format,
        local_to.as_deref(),
        &schema,
        opts.max_rows,
        opts.max_width,
        opts.parquet,
    )?;
    // The CSV and JSON writers' errors (a full disk) name no file: `--to`'s is named here.
    let named = |e: Error| match (&opts.to, e) {
        (Some(to), Error::Arrow(e)) => Error::Output {
            path: to.clone(),
            reason: e.to_string(),
        },
        (_, e) => e,
    };
    while let Some(batch) = stream.next().await {
        let mut batch = batch.map_err(Error::from_datafusion)?;
        if let Some(schema) = &renamed {
            batch = RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?;
        }
        tokio::task::block_in_place(|| sink.write(&batch)).map_err(named)?;
        crate::faults::point_async("sql-batch-written").await;
    }
    tokio::task::block_in_place(|| sink.finish()).map_err(named)?;
    if let (Some((loc, _dir)), Some(local)) = (&upload, &local_to) {
        loc.upload(vec![(local.clone(), loc.key.clone())])?;
    }
    Ok(())
}

/// `error` with DataFusion's dump of a piece of SQL its planner takes no such thing as
/// ("Unsupported ast node in sqltorel: Collate { expr: Identifier(Ident { value: ...") cut to
/// the piece's kind: "`Collate` is not taken here (DataFusion's planner has no such SQL)".
fn unsupported_named(error: &str) -> String {
    let Some(at) = error.find("Unsupported ast node ") else {
        return error.to_string();
    };
    let rest = error[at..]
        .trim_start_matches("Unsupported ast node ")
        .trim_start_matches("in sqltorel: ");
    let kind: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    if kind.is_empty() {
        return error.to_string();
    }
    if kind == "Lambda" {
        // `j -> 'a'` (DuckDB's JSON arrow) parses as a lambda, which only a list function takes.
        return format!(
            "{}a lambda (`x -> ...`, `lambda x: ...`) is taken as a list function's argument only \
             (`list_transform(l, lambda x: x * 2)`); DuckDB's JSON arrows `->` and `->>` are not taken here",
            &error[..at]
        );
    }
    format!(
        "{}`{kind}` is not taken here (DataFusion's planner has no such SQL)",
        &error[..at]
    )
}

/// What a subquery among a select's columns (or in a join's ON) that DataFusion cannot plan
/// there can be written as ("Physical plan does not support logical expression Exists").
const SUBQUERY_HINT: &str = " (among a select's columns DataFusion plans a subquery as a value, \
    `(SELECT count(*) FROM b WHERE b.k = a.k)`, or an EXISTS or IN of one plain select, where \
    its rows match the outer query's by `=` alone and the outer columns an IN tests are named \
    by their table (`a.x IN (...)`, or one table in the outer FROM); write another test as a \
    join, or move it to the WHERE)";
