//! `segscore demo` (the bundled data and model, run end to end) and `segscore generate` (a
//! benchmark dataset).

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::model::Provider;
use crate::pipeline::JobConfig;
use crate::sample;

use super::exec::run_job;

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
    #[arg(long)]
    threads: Option<usize>,
}

pub(crate) fn demo(args: DemoArgs) -> Result<(), Error> {
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
    print!("{}", crate::evaluate::summary::summary_table(&summary));
    Ok(())
}

/// `segscore generate`: writes a benchmark dataset.
pub(crate) fn generate(
    output: PathBuf,
    segments: u64,
    files: usize,
    shuffled: bool,
    seed: u64,
) -> Result<(), Error> {
    let layout = if shuffled {
        sample::Layout::Shuffled
    } else {
        sample::Layout::Sorted
    };
    let (rows, gens) = sample::write_dataset(&output, segments, files, layout, seed)?;
    tracing::info!(rows, generations = gens, path = %output.display(), "dataset written");
    Ok(())
}
