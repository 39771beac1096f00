//! The DataFusion session segscore runs its SQL in: partitions, memory pool, spill folder,
//! and the settings that keep a sorted input's order and the model's batches stable; and the
//! default number of threads.

use std::path::Path;
use std::sync::Arc;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// The machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Builds a DataFusion context with segscore's settings: `threads` partitions, a fair
/// spilling memory pool of `memory_limit` bytes, spills to `spill_dir` (or the temp dir).
///
/// With `sorted` input the optimizer keeps the files' order (order-preserving repartitioning,
/// file groups split by min/max statistics) instead of sorting, so the window streams;
/// without, it sorts whatever the files' footers claim.
pub fn session_context(
    threads: usize,
    memory_limit: u64,
    spill_dir: Option<&Path>,
    sorted: bool,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true);
    if sorted {
        config.options_mut().optimizer.prefer_existing_sort = true;
        config.options_mut().execution.split_file_groups_by_statistics = true;
    } else {
        // DataFusion 55 takes a scan's order from the files' `sorting_columns` when it collects
        // their statistics, unchecked: input that is to be sorted takes no file's word for it.
        config.options_mut().execution.collect_statistics = false;
    }
    // Whole files per scan partition: byte-range splits would lose a sorted file's order, and
    // would make the model's batches (cut from the scan's batches) depend on the thread count.
    config.options_mut().optimizer.repartition_file_scans = false;
    // Likewise no round-robin between the scan and the model: batches must reach the model as
    // the scan cut them. (The model spreads each batch over every core itself.)
    config.options_mut().optimizer.enable_round_robin_repartition = false;
    // Each sort keeps this much back for merging its spills; DataFusion's 10 MB default would
    // not fit small limits.
    let reservation = (memory_limit / (8 * threads.max(1) as u64)).clamp(256 << 10, 10 << 20);
    config.options_mut().execution.sort_spill_reservation_bytes = reservation as usize;
    // Keep string columns' types as they are in the files, so carried columns come out unchanged.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    let mut disk = DiskManagerBuilder::default();
    if let Some(dir) = spill_dir {
        crate::store::local_only("--spill-dir", dir, "sorts spill to local disk")?;
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--spill-dir {}: not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.to_path_buf()]));
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit as usize)))
        .with_disk_manager_builder(disk)
        .with_object_store_registry(Arc::new(crate::store::Registry::default()))
        .build_arc()?;
    // In every query segscore plans, so that the job's SQL, the queries in `queries/` and
    // `segscore sql` read alike: division as DuckDB divides (`7 / 2` is 3.5) and narrow
    // integers' `+`, `-`, `*` in BIGINT, before DataFusion's type coercion; after it, integer
    // `+`, `-`, `*` and `sum` that give the right number or an error, where DataFusion's
    // wrapped; `EXCEPT ALL` and `INTERSECT ALL` that count a row's copies; a date plus an
    // interval a timestamp (DataFusion's dropped the time); and a timestamp of seconds or
    // milliseconds beside a finer time exact (DataFusion's dropped the finer digits).
    let mut analyzer: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![
        Arc::new(segscore_plan::setops::SetOperationsAll),
        Arc::new(segscore_plan::division::DuckDbDivision),
        Arc::new(segscore_plan::arithmetic::WideIntegers),
        Arc::new(segscore_plan::dates::DateIntervals),
        Arc::new(segscore_plan::timestamps::CoarseTimestamps),
    ];
    analyzer.extend(Analyzer::new().rules);
    analyzer.push(Arc::new(segscore_plan::arithmetic::CheckedArithmetic));
    analyzer.push(Arc::new(segscore_plan::arithmetic::CheckedSums {
        sum: Arc::new(super::sums::udaf()),
    }));
    // LAG over sorted partitions a batch at a time ([`super::window`]) after DataFusion's rules.
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(Arc::clone(&runtime))
        .with_default_features()
        .with_analyzer_rules(analyzer)
        // An UNNEST's rows keep no key of its input ([`segscore_plan::unnest`]).
        .with_optimizer_rules(segscore_plan::unnest::optimizer_rules())
        .with_physical_optimizer_rule(Arc::new(super::window::SortedLagRule))
        // Scans of many small objects in object storage fetch them ahead ([`super::ahead`]).
        .with_physical_optimizer_rule(Arc::new(super::ahead::ReadAheadRule::new(runtime)))
        .build();
    // Comparisons of times of different units ([`segscore_plan::timestamps`]).
    state.register_expr_planner(Arc::new(segscore_plan::timestamps::TimeComparisons))?;
    Ok(SessionContext::new_with_state(state))
}
