//! segscore evaluates segment-level reward models offline.
//!
//! It reads scored generations from Parquet (one row per segment, with the cumulative score of
//! the text up to that segment), computes each segment's own score as the change in
//! cumulative score with a SQL window function in DataFusion, runs an ONNX reward model on
//! every segment through ONNX Runtime, and writes residuals, losses and metrics to Parquet.
//!
//! Data flows one way: [`source`] → query ([`job::SEGMENT_SCORES_SQL`]) → [`model`] →
//! [`loss`] → [`sink`], orchestrated by [`job::run`].

#![warn(missing_docs)]

pub mod compare;
pub mod demo;
pub mod error;
pub mod evaluate;
pub mod job;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod shard;
pub mod sink;
pub mod source;
pub mod sql;
pub mod udaf;
pub mod validate;

pub use error::{Error, Result};
pub use job::{run, JobConfig, Summary};
pub use loss::Loss;
pub use runtime::Provider;

/// Formats a run's summary as a short, aligned table.
pub fn summary_table(s: &Summary) -> String {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_else(|| "null".into());
    let m = &s.metrics;
    let mut rows: Vec<(&str, String)> = vec![
        ("generations", s.n_generations.to_string()),
        ("segments", s.n_segments.to_string()),
        ("mse", f(m.mse)),
        ("rmse", f(m.rmse)),
        ("mae", f(m.mae)),
        ("bias", f(m.bias)),
        ("residual variance", f(m.residual_variance)),
        ("r2", f(m.r2)),
        ("pearson", f(m.pearson)),
        ("spearman", f(s.evaluation.spearman)),
        ("kendall tau", f(s.evaluation.kendall_tau)),
        ("pairwise order acc.", f(s.evaluation.pairwise_order_accuracy)),
        ("mean loss", format!("{} ({})", f(m.mean_loss), s.loss)),
        (
            "provider",
            format!("{} (ONNX Runtime {})", s.provider, s.onnxruntime_version),
        ),
        (
            "elapsed",
            format!("{:.2} s ({:.0} segments/s)", s.elapsed_seconds, s.rows_per_second),
        ),
    ];
    let r = &s.rejected;
    if r.counts.rows > 0 {
        rows.insert(
            2,
            (
                "rejected",
                format!(
                    "{} rows, {} generations ({}): rejected/",
                    r.counts.rows,
                    r.counts.generations,
                    r.counts.describe_rows()
                ),
            ),
        );
    }
    if s.resumed_shards > 0 {
        rows.push((
            "resumed",
            format!(
                "{} of {} shards were already committed",
                s.resumed_shards, s.shards
            ),
        ));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("  {k:<width$}  {v}\n"))
        .collect()
}
