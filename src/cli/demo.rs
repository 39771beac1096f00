//! `segscore demo` (the bundled data and model, run end to end) and `segscore generate` (a
//! benchmark dataset).

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::model::Provider;
use crate::model::TextTokenizer;
use crate::pipeline::score::Prediction;
use crate::pipeline::JobConfig;
use crate::sample::{self, text};

use super::exec::run_job;
use super::stdout::print;

#[derive(Args)]
pub(crate) struct DemoArgs {
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
    #[arg(long, value_parser = crate::cli::exec::threads_parser())]
    threads: Option<usize>,
    /// The text demo: prompts and steps as text, the bundled GPT-2 tokenizer and per-token
    /// model, one model pass per generation.
    #[arg(long)]
    text: bool,
}

pub(crate) fn demo(args: DemoArgs) -> Result<(), Error> {
    if args.text {
        return text_demo(args);
    }
    let input = args.output.join("input").join("generations.parquet");
    let model_path = args.output.join("model").join("reward_small.onnx");
    let batch = sample::demo_batch(args.generations, args.seed)?;
    sample::write_parquet(&input, &batch)?;
    std::fs::create_dir_all(args.output.join("model")).map_err(|e| Error::io(&args.output, e))?;
    crate::sink::write_atomic(&model_path, sample::DEMO_MODEL)?;
    tracing::info!(
        segments = batch.num_rows(),
        generations = args.generations,
        path = %input.display(),
        "demo data written"
    );
    let cfg = JobConfig::new(
        vec![input.display().to_string()],
        model_path,
        args.output.join("output"),
    );
    finish_demo(cfg, args.provider, args.threads)
}

/// Runs the demo's job and prints its summary.
fn finish_demo(mut cfg: JobConfig, provider: Provider, threads: Option<usize>) -> Result<(), Error> {
    cfg.overwrite = true;
    cfg.report = true;
    cfg.provider = provider;
    if let Some(t) = threads {
        cfg.threads = t;
    }
    let out = cfg.output.clone();
    let summary = run_job(cfg)?;
    print(&format!(
        "segscore demo: {}\n{}",
        out.display(),
        crate::evaluate::summary::summary_table(&summary)
    ))
}

/// `segscore demo --text`: text generations, the GPT-2 tokenizer and the per-token model.
fn text_demo(args: DemoArgs) -> Result<(), Error> {
    let dir = &args.output;
    let input = dir.join("input").join("generations.parquet");
    let model_path = dir.join("model").join("prm_causal.onnx");
    let tokenizer_path = dir.join("model").join("tokenizer.json");
    std::fs::create_dir_all(dir.join("model")).map_err(|e| Error::io(dir, e))?;
    crate::sink::write_atomic(&model_path, text::PRM_MODEL)?;
    crate::sink::write_atomic(&tokenizer_path, text::GPT2_TOKENIZER)?;
    let tokenizer = TextTokenizer::load(&tokenizer_path)?;
    // About as many segments as the token demo's generations give.
    let batch = text::text_batch(args.generations as u64 * 8, args.seed, &tokenizer)?;
    sample::write_parquet(&input, &batch)?;
    tracing::info!(segments = batch.num_rows(), path = %input.display(), "text demo data written");
    let mut cfg = JobConfig::new(vec![input.display().to_string()], model_path, dir.join("output"));
    cfg.columns.text = Some("step".into());
    cfg.columns.prompt = Some("prompt".into());
    cfg.tokenizer = Some(tokenizer_path);
    cfg.segment_separator = Some(text::SEPARATOR.into());
    cfg.prediction = Prediction::Cumulative;
    finish_demo(cfg, args.provider, args.threads)
}

/// `segscore generate`: writes a benchmark dataset (token ids in row groups of
/// `row_group_rows`, or text with the bundled tokenizer).
pub(crate) fn generate(
    output: PathBuf,
    segments: u64,
    files: usize,
    layout: sample::Layout,
    seed: u64,
    row_group_rows: usize,
    text_data: bool,
) -> Result<(), Error> {
    crate::sink::output_dir::require_empty(
        &output,
        "generate writes a new dataset, and files left there would join it",
    )?;
    if text_data {
        let tmp = output.join(".tokenizer.json");
        std::fs::create_dir_all(&output).map_err(|e| Error::io(&output, e))?;
        crate::sink::write_atomic(&tmp, text::GPT2_TOKENIZER)?;
        let tokenizer = TextTokenizer::load(&tmp);
        let _ = std::fs::remove_file(&tmp);
        let (rows, gens) = text::write_text_dataset(&output, segments, files, seed, &tokenizer?)?;
        tracing::info!(rows, generations = gens, path = %output.display(), "text dataset written");
        return Ok(());
    }
    let (rows, gens) = sample::write_dataset(&output, segments, files, layout, seed, row_group_rows)?;
    tracing::info!(rows, generations = gens, path = %output.display(), "dataset written");
    Ok(())
}
