//! `segscore report DIR` (write report.html for an output directory) and `segscore compare A B`
//! (two runs side by side, with a bootstrap interval for the MSE difference).

use std::path::PathBuf;

use crate::engine::{default_memory_limit, default_threads};
use crate::error::Error;
use crate::report::compare::{self, CompareOptions};

use super::exec::runtime;
use super::stdout::print;

/// `segscore report DIR`.
pub(crate) fn report(dir: PathBuf, quiet: bool) -> Result<(), Error> {
    let threads = default_threads();
    let rt = runtime(threads)?;
    let path = rt.block_on(crate::report::write(&dir, threads, default_memory_limit()))?;
    if !quiet {
        print(&format!("{path}\n"))?;
    }
    Ok(())
}

/// `segscore compare A B`.
pub(crate) fn compare(
    a: PathBuf,
    b: PathBuf,
    bootstrap: u64,
    seed: u64,
    confidence: f64,
    format: &str,
) -> Result<(), Error> {
    let threads = default_threads();
    let opts = CompareOptions {
        a,
        b,
        replicates: bootstrap as usize,
        seed,
        confidence,
        threads,
        memory_limit: default_memory_limit(),
    };
    let rt = runtime(threads)?;
    let c = rt.block_on(compare::compare(&opts))?;
    match format {
        "json" => print(&format!("{}\n", serde_json::to_string_pretty(&c)?)),
        "markdown" | "md" => print(&compare::markdown(&c)),
        _ => print(&compare::table(&c)),
    }
}
