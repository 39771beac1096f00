//! `segscore demo` (the bundled data and model, run end to end) and `segscore generate` (a
//! benchmark dataset).

use std::path::{Path, PathBuf};

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
    #[arg(long, short, default_value = "segscore-demo", value_parser = crate::cli::path_arg())]
    output: PathBuf,
    /// How many generations to generate.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    generations: u64,
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

/// What a demo writes in its folder: (folder, the files in it); `output` is a run's output,
/// which the run itself replaces.
const DEMO_FILES: [(&str, &[&str]); 3] = [
    ("input", &["generations.parquet"]),
    (
        "model",
        &["reward_small.onnx", "prm_causal.onnx", "tokenizer.json"],
    ),
    ("output", &[]),
];

/// The file that marks a folder as a demo's.
const DEMO_MARK: &str = ".segscore-demo";

/// Refuses a demo folder that is not empty, unless an earlier demo marked it as its own and it
/// holds nothing a demo does not write (a demo replaces its own files there, so re-running one
/// is fine): `demo -o data/` must not write over a user's `data/input/generations.parquet`, nor
/// mix the demo's files in with theirs. Marks the folder for the next demo.
fn demo_folder(dir: &Path) -> Result<(), Error> {
    let names = crate::sink::output_dir::entry_names;
    let mut foreign = Vec::new();
    let present = names(dir)?;
    let marked = present.iter().any(|n| n == DEMO_MARK);
    for name in present {
        if !marked {
            foreign.push(name);
            continue;
        }
        match DEMO_FILES.iter().find(|(folder, _)| *folder == name) {
            Some(("output", _)) => {}
            Some((folder, files)) => foreign.extend(
                names(&dir.join(folder))?
                    .into_iter()
                    // Dot names: a demo's own files while they are written.
                    .filter(|n| !files.contains(&n.as_str()) && !n.starts_with('.'))
                    .map(|n| format!("{folder}/{n}")),
            ),
            None if name == DEMO_MARK => {}
            None => foreign.push(name),
        }
    }
    if foreign.is_empty() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mark = dir.join(DEMO_MARK);
        return std::fs::write(
            &mark,
            "a segscore demo's folder: `segscore demo` may replace its files\n",
        )
        .map_err(|e| Error::io(&mark, e));
    }
    foreign.sort();
    let shown = crate::sink::output_dir::first_names(&foreign);
    Err(Error::Output {
        path: dir.to_path_buf(),
        reason: if marked {
            format!("holds files a demo did not write ({shown}); choose an empty or new folder")
        } else {
            format!("is not empty (holds {shown}), and no demo wrote it; choose an empty or new folder")
        },
    })
}

/// `segscore demo`; `quiet` (`-q`) leaves out the progress and the summary, as for `run`.
pub(crate) fn demo(args: DemoArgs, quiet: bool) -> Result<(), Error> {
    crate::store::local_only("demo --output", &args.output, "the demo writes a local folder")?;
    demo_folder(&args.output)?;
    if args.text {
        return text_demo(args, quiet);
    }
    let input = args.output.join("input").join("generations.parquet");
    let model_path = args.output.join("model").join("reward_small.onnx");
    let batch = sample::demo_batch(args.generations as usize, args.seed)?;
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
    finish_demo(cfg, args.provider, args.threads, quiet)
}

/// Runs the demo's job and prints its summary (unless `quiet`).
fn finish_demo(
    mut cfg: JobConfig,
    provider: Provider,
    threads: Option<usize>,
    quiet: bool,
) -> Result<(), Error> {
    cfg.overwrite = true;
    if quiet {
        cfg.progress = crate::pipeline::progress::ProgressMode::Off;
    }
    cfg.report = true;
    cfg.provider = provider;
    if let Some(t) = threads {
        cfg.threads = t;
    }
    let out = cfg.output.clone();
    let summary = run_job(cfg)?;
    if quiet {
        return Ok(());
    }
    print(&format!(
        "segscore demo: {}\n{}",
        out.display(),
        crate::evaluate::summary::summary_table(&summary)
    ))
}

/// `segscore demo --text`: text generations, the GPT-2 tokenizer and the per-token model.
fn text_demo(args: DemoArgs, quiet: bool) -> Result<(), Error> {
    let dir = &args.output;
    let input = dir.join("input").join("generations.parquet");
    let model_path = dir.join("model").join("prm_causal.onnx");
    let tokenizer_path = dir.join("model").join("tokenizer.json");
    std::fs::create_dir_all(dir.join("model")).map_err(|e| Error::io(dir, e))?;
    crate::sink::write_atomic(&model_path, text::PRM_MODEL)?;
    crate::sink::write_atomic(&tokenizer_path, text::GPT2_TOKENIZER)?;
    let tokenizer = TextTokenizer::load(&tokenizer_path)?;
    // About as many segments as the token demo's generations give.
    let batch = text::text_batch(args.generations * 8, args.seed, &tokenizer)?;
    sample::write_parquet(&input, &batch)?;
    tracing::info!(segments = batch.num_rows(), path = %input.display(), "text demo data written");
    let mut cfg = JobConfig::new(vec![input.display().to_string()], model_path, dir.join("output"));
    cfg.columns.text = Some("step".into());
    cfg.columns.prompt = Some("prompt".into());
    cfg.tokenizer = Some(tokenizer_path);
    cfg.segment_separator = Some(text::SEPARATOR.into());
    cfg.prediction = Prediction::Cumulative;
    finish_demo(cfg, args.provider, args.threads, quiet)
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
    // Every file is open while the rows are dealt out: more files than rows would leave some
    // empty, and past the open-file limit the writer fails half-way.
    if files as u64 > segments {
        return Err(Error::Usage(format!(
            "--files {files} is more than --segments {segments}: every file gets at least one row"
        )));
    }
    // A prefix in object storage: written locally, then uploaded (it was written to a local
    // folder named `s3:`).
    if let Some(loc) = crate::store::Location::of(&output)? {
        let held: Vec<String> = loc.list()?.into_iter().map(|m| m.location.to_string()).collect();
        if !held.is_empty() {
            return Err(Error::Output {
                path: output,
                reason: format!(
                    "is not empty (holds {}); generate writes a new dataset, and objects left there would join it: choose an empty or new prefix",
                    crate::sink::output_dir::first_names(&held)
                ),
            });
        }
        let staged = crate::store::Staged::new()?;
        let local = staged.0.join("dataset");
        generate(
            local.clone(),
            segments,
            files,
            layout,
            seed,
            row_group_rows,
            text_data,
        )?;
        let names = crate::sink::output_dir::entry_names(&local)?
            .into_iter()
            .map(|name| (local.join(&name), loc.join(&name).key))
            .collect();
        loc.upload(names)?;
        tracing::info!(path = %output.display(), "dataset uploaded");
        return Ok(());
    }
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
