//! `segscore inspect` (a model's inputs and outputs and how segscore binds them) and
//! `segscore bench-model` (the model alone on a run's padded batches, for benchmarks).

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::model::{self, Provider};

use super::run::utf8_inputs;
use super::stdout::print;

#[derive(Args)]
pub(crate) struct BenchModelArgs {
    /// Input Parquet files, directories or globs.
    #[arg(long, short, required = true, num_args = 1.., value_parser = crate::cli::path_arg())]
    input: Vec<PathBuf>,
    /// The ONNX model.
    #[arg(long, short, value_parser = crate::cli::path_arg())]
    model: PathBuf,
    /// Rows to use, at most (read from the start).
    #[arg(long, default_value_t = 200_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    rows: usize,
    /// Rows per model call (as `run --batch-size`).
    #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_size: usize,
    /// Padded positions per model call (as `run --max-tokens-per-batch`).
    #[arg(long, default_value_t = 8192, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_tokens_per_batch: usize,
    /// Execution provider: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    provider: Provider,
    /// Threads (sessions).
    #[arg(long, value_parser = crate::cli::exec::threads_parser())]
    threads: Option<usize>,
    /// The model output holding the score (as `run --model-output`; default: the first).
    #[arg(long)]
    model_output: Option<String>,
    /// For an output of classes ([batch, C] or [batch, seq, C]): the class scored (as `run
    /// --score-label`).
    #[arg(long, value_name = "K")]
    score_label: Option<usize>,
}

pub(crate) fn inspect(model_path: PathBuf) -> Result<(), Error> {
    let (sig, rt, file) = model::inspect(&model_path)?;
    let mut text = format!(
        "model: {}\nsha256: {}\nONNX Runtime {} ({})\n",
        model_path.display(),
        file.sha256(),
        rt.version,
        rt.library.display()
    );
    for (name, data) in &file.external {
        text.push_str(&format!(
            "external data: {name} ({} bytes, beside the model)\n",
            data.len()
        ));
    }
    text.push_str("inputs:\n");
    for i in &sig.inputs {
        let binding = match &i.binding {
            Ok((model::Feed::InputIds, _)) => {
                "<- column input_ids (--input-ids-col), padded with 0 per batch".to_string()
            }
            Ok((model::Feed::AttentionMask, _)) => "<- 1 for real tokens, 0 for padding".to_string(),
            Ok((model::Feed::TokenTypeIds, _)) => "<- column --token-type-ids-col, else zeros".to_string(),
            Ok((model::Feed::PositionIds, _)) => "<- 0..seq per row (right padding)".to_string(),
            Err(reason) => format!("UNBOUND: {reason}"),
        };
        text.push_str(&format!("  {:<16} {:<28} {binding}\n", i.name, i.type_desc));
    }
    if let Some(n) = sig.fixed_batch {
        text.push_str(&format!(
            "  (the batch dimension is fixed: every call takes {n} row{}, batches cut and filled to it)\n",
            if n == 1 { "" } else { "s" }
        ));
    }
    text.push_str("outputs:\n");
    for (k, o) in sig.outputs.iter().enumerate() {
        let note = match (&o.score, k) {
            (Ok(gives), 0) => format!("<- score, {gives} (default; --model-output picks another)"),
            (Ok(gives), _) => format!("a score, {gives}, with --model-output {}", o.name),
            (Err(why), 0) => format!("NOT A SCORE (the default): {why}"),
            (Err(_), _) => "not a score".to_string(),
        };
        text.push_str(&format!("  {:<16} {:<28} {note}\n", o.name, o.type_desc));
    }
    print(&text)?;
    // What `run` would refuse: an input with nothing to feed it, a default output that cannot
    // be a score.
    let unbound = sig.inputs.iter().find_map(|i| i.binding.clone().err());
    let unscored = sig.outputs.first().and_then(|o| o.score.clone().err());
    match unbound.or(unscored) {
        Some(reason) => Err(Error::ModelBinding {
            model: model_path.display().to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn bench_model(args: BenchModelArgs) -> Result<(), Error> {
    let BenchModelArgs {
        input,
        model: model_path,
        rows: max_rows,
        batch_size,
        max_tokens_per_batch: max_tokens,
        provider,
        threads,
        model_output,
        score_label,
    } = args;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ProjectionMask;
    for path in &input {
        crate::store::local_only("--input", path, "bench-model reads local files")?;
    }
    let threads = threads.unwrap_or_else(crate::engine::default_threads);
    crate::cli::exec::thread_pools(threads);
    let model = model::RewardModel::load(
        &model_path,
        &model::ModelOptions {
            provider,
            batch_size,
            max_tokens,
            sessions: threads,
            intra_threads: 1,
            output: model_output,
            score_label,
            max_length: None,
        },
    )?;
    let mut batches = Vec::new();
    let mut taken = 0;
    'files: for path in crate::source::expand_inputs(&utf8_inputs(&input)?, false)? {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let not_parquet = |e: datafusion::parquet::errors::ParquetError| Error::NotParquet {
            path: path.clone(),
            reason: e.to_string(),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
        let idx = builder
            .schema()
            .index_of("input_ids")
            .map_err(|_| Error::missing_column(&path, "input_ids", "token ids", builder.schema()))?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
        for b in builder
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(not_parquet)?
        {
            let b = b.map_err(|e| not_parquet(e.into()))?;
            let b = b.slice(0, b.num_rows().min(max_rows - taken));
            taken += b.num_rows();
            let ids = crate::model::tokens::widened_ids(b.column(0))?;
            batches.extend(model.prepare_batches(ids.as_ref())?);
            if taken >= max_rows {
                break 'files;
            }
        }
    }
    let (rows, seconds) = model.time_batches(&batches)?;
    let positions: usize = batches.iter().map(|b| b.batch * b.seq).sum();
    let tokens: usize = batches.iter().map(|b| b.tokens).sum();
    print(&format!(
        "{}\n",
        serde_json::json!({
            "rows": rows,
            "seconds": seconds,
            "rows_per_second": rows as f64 / seconds,
            "padding_share": 1.0 - tokens as f64 / positions.max(1) as f64,
            "provider": model.provider().as_str(),
            "threads": threads,
        })
    ))
}
