//! `segscore compare A B`: two runs (two models) on the same data, metric by metric, with a
//! paired bootstrap confidence interval for the difference in MSE.
//!
//! The bootstrap resamples generations, not segments: a generation's segments share a text and
//! their errors are correlated, so resampling segments would understate the uncertainty. Both
//! models are scored on the same resampled generations in every replicate (paired). Replicate
//! `r` draws from its own generator seeded from (`seed`, `r`), so the interval depends only on
//! the seed and the data, not on the number of threads.

use std::path::PathBuf;

use datafusion::arrow::util::display::array_value_to_string;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::query::{f64_col, query};
use crate::error::{Error, Result};
use crate::evaluate;
use crate::evaluate::summary::decimals6;
use crate::evaluate::Summary;

/// What `compare` runs.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Output directory of run A.
    pub a: PathBuf,
    /// Output directory of run B.
    pub b: PathBuf,
    /// Bootstrap replicates.
    pub replicates: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Confidence level of the interval, e.g. 0.95.
    pub confidence: f64,
    /// DataFusion partitions.
    pub threads: usize,
    /// Memory for DataFusion's operators.
    pub memory_limit: u64,
}

/// One metric of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// The metric (summary.json's name; `generation_means.x` for means over generations).
    pub metric: String,
    /// Run A's value.
    pub a: Option<f64>,
    /// Run B's value.
    pub b: Option<f64>,
    /// b - a.
    pub difference: Option<f64>,
}

/// The paired bootstrap of MSE(B) - MSE(A).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MseBootstrap {
    /// MSE(B) - MSE(A) on the data as it is.
    pub difference: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end of the interval.
    pub upper: f64,
    /// The interval's confidence level.
    pub confidence: f64,
    /// Replicates drawn.
    pub replicates: usize,
    /// The seed.
    pub seed: u64,
    /// Share of replicates in which B's MSE is lower than A's.
    pub share_b_better: f64,
    /// Generations resampled (the unit of the bootstrap).
    pub generations: usize,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Run A's directory.
    pub a: String,
    /// Run B's directory.
    pub b: String,
    /// Metrics side by side.
    pub metrics: Vec<MetricRow>,
    /// The MSE difference's bootstrap interval.
    pub mse_difference: MseBootstrap,
}

use crate::evaluate::summary::read_summary;

fn metric_rows(a: &Summary, b: &Summary) -> Vec<MetricRow> {
    let pick = |s: &Summary| {
        let (m, e, g) = (&s.metrics, &s.evaluation, &s.evaluation.generation_means);
        vec![
            ("mse", m.mse),
            ("rmse", m.rmse),
            ("mae", m.mae),
            ("bias", m.bias),
            ("residual_variance", m.residual_variance),
            ("r2", m.r2),
            ("pearson", m.pearson),
            ("spearman", e.spearman),
            ("kendall_tau", e.kendall_tau),
            ("pairwise_order_accuracy", e.pairwise_order_accuracy),
            ("loss_share_top_1pct", e.loss_share_top_1pct),
            ("loss_share_top_10pct", e.loss_share_top_10pct),
            ("generation_means.mse", g.mse),
            ("generation_means.pearson", g.pearson),
            ("generation_means.spearman", g.spearman),
            ("generation_means.kendall_tau", g.kendall_tau),
            (
                "generation_means.pairwise_order_accuracy",
                g.pairwise_order_accuracy,
            ),
            ("generation_means.top_segment_match", g.top_segment_match),
        ]
    };
    pick(a)
        .into_iter()
        .zip(pick(b))
        .map(|((name, x), (_, y))| MetricRow {
            metric: name.to_string(),
            a: x,
            b: y,
            difference: x.zip(y).map(|(x, y)| y - x),
        })
        .collect()
}

/// Per generation: segments, and the squared-error sums of A and B.
struct Paired {
    n: Vec<f64>,
    sse_a: Vec<f64>,
    sse_b: Vec<f64>,
}

/// Pairs the runs' generations, checking that both saw the same data: the same generations,
/// with the same segment counts, segment indexes and targets.
async fn paired(o: &CompareOptions) -> Result<Paired> {
    let ctx = crate::engine::session_context(o.threads, o.memory_limit, None, true)?;
    crate::functions::register(&ctx, None, None);
    evaluate::register_output(&ctx, &o.a, Some("a")).await?;
    evaluate::register_output(&ctx, &o.b, Some("b")).await?;
    let per_generation = |t: &str| {
        format!(
            "SELECT generation_id, COUNT(*) AS n, SUM(squared_error) AS sse, \
             SUM(CAST(segment_index AS DOUBLE)) AS si, SUM(target_score) AS ts FROM {t}.segments GROUP BY generation_id"
        )
    };
    let sql = format!(
        "WITH ga AS ({}), gb AS ({}) \
         SELECT COALESCE(ga.generation_id, gb.generation_id) AS generation_id, ga.n AS n_a, gb.n AS n_b, \
         ga.si AS si_a, gb.si AS si_b, ga.ts AS ts_a, gb.ts AS ts_b, ga.sse AS sse_a, gb.sse AS sse_b \
         FROM ga FULL OUTER JOIN gb ON ga.generation_id = gb.generation_id ORDER BY 1",
        per_generation("a"),
        per_generation("b")
    );
    let batch = query(&ctx, &sql).await?;
    let f = |name: &str| f64_col(&batch, name);
    let (n_a, n_b) = (f("n_a")?, f("n_b")?);
    let (si_a, si_b, ts_a, ts_b) = (f("si_a")?, f("si_b")?, f("ts_a")?, f("ts_b")?);
    let (sse_a, sse_b) = (f("sse_a")?, f("sse_b")?);
    let gid = batch.column(0);
    let differ = |row: usize, what: String| {
        Error::InvalidData(format!(
            "{} and {} are not runs on the same data: generation {} {what}",
            o.a.display(),
            o.b.display(),
            array_value_to_string(gid, row).unwrap_or_default()
        ))
    };
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    let mut p = Paired {
        n: Vec::with_capacity(batch.num_rows()),
        sse_a: Vec::with_capacity(batch.num_rows()),
        sse_b: Vec::with_capacity(batch.num_rows()),
    };
    for row in 0..batch.num_rows() {
        match (n_a[row], n_b[row]) {
            (Some(x), Some(y)) if x != y => {
                return Err(differ(row, format!("has {x} segments in A and {y} in B")))
            }
            (Some(_), Some(_)) => {}
            (Some(_), None) => return Err(differ(row, "is only in A".into())),
            _ => return Err(differ(row, "is only in B".into())),
        }
        let same = |x: Option<f64>, y: Option<f64>| x.zip(y).is_some_and(|(x, y)| close(x, y));
        if !same(si_a[row], si_b[row]) {
            return Err(differ(row, "has different segment indexes in A and B".into()));
        }
        if !same(ts_a[row], ts_b[row]) {
            return Err(differ(row, "has different targets in A and B".into()));
        }
        p.n.push(n_a[row].unwrap_or(0.0));
        p.sse_a.push(sse_a[row].unwrap_or(0.0));
        p.sse_b.push(sse_b[row].unwrap_or(0.0));
    }
    if p.n.is_empty() {
        return Err(Error::InvalidData(format!(
            "{} has no segments to compare",
            o.a.display()
        )));
    }
    Ok(p)
}

/// The paired bootstrap over generations of MSE(B) - MSE(A).
fn bootstrap(p: &Paired, replicates: usize, seed: u64, confidence: f64) -> MseBootstrap {
    let g = p.n.len();
    let total_n: f64 = p.n.iter().sum();
    let diff_sse: Vec<f64> = p.sse_b.iter().zip(&p.sse_a).map(|(b, a)| b - a).collect();
    let difference = diff_sse.iter().sum::<f64>() / total_n;
    let mut diffs: Vec<f64> = (0..replicates)
        .into_par_iter()
        .map(|r| {
            let mut rng = SmallRng::seed_from_u64(seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut num, mut den) = (0.0, 0.0);
            for _ in 0..g {
                let k = rng.random_range(0..g);
                num += diff_sse[k];
                den += p.n[k];
            }
            num / den
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    let at = |q: f64| {
        let idx = ((q * replicates as f64).floor() as usize).min(replicates.saturating_sub(1));
        diffs.get(idx).copied().unwrap_or(difference)
    };
    MseBootstrap {
        difference,
        lower: at(alpha),
        upper: at(1.0 - alpha),
        confidence,
        replicates,
        seed,
        share_b_better: diffs.iter().filter(|d| **d < 0.0).count() as f64 / replicates.max(1) as f64,
        generations: g,
    }
}

/// Compares two output directories.
pub async fn compare(o: &CompareOptions) -> Result<Comparison> {
    if !(o.confidence > 0.0 && o.confidence < 1.0) {
        return Err(Error::Usage(format!(
            "--confidence must be between 0 and 1, got {}",
            o.confidence
        )));
    }
    if o.replicates == 0 {
        return Err(Error::Usage("--bootstrap must be at least 1".into()));
    }
    let (sa, sb) = (read_summary(&o.a)?, read_summary(&o.b)?);
    let p = paired(o).await?;
    Ok(Comparison {
        a: o.a.display().to_string(),
        b: o.b.display().to_string(),
        metrics: metric_rows(&sa, &sb),
        mse_difference: bootstrap(&p, o.replicates, o.seed, o.confidence),
    })
}

/// The comparison as a Markdown table (the metrics of A and B and their difference) and the
/// bootstrap interval below it, to paste into a pull request or a report.
pub fn markdown(c: &Comparison) -> String {
    let f = |v: Option<f64>| decimals6(v, "");
    let mut s = format!(
        "| metric | A (`{}`) | B (`{}`) | B - A |\n| --- | ---: | ---: | ---: |\n",
        c.a.replace('|', "\\|"),
        c.b.replace('|', "\\|")
    );
    for m in &c.metrics {
        s += &format!(
            "| {} | {} | {} | {} |\n",
            m.metric,
            f(m.a),
            f(m.b),
            f(m.difference)
        );
    }
    s + "\n" + &interval(&c.mse_difference)
}

/// The bootstrap interval of MSE(B) - MSE(A), as one line.
fn interval(b: &MseBootstrap) -> String {
    format!(
        "MSE(B) - MSE(A) = {}, {:.0}% CI [{}, {}] (paired bootstrap over {} generations, {} replicates, seed {}); B better in {:.1}% of replicates\n",
        decimals6(Some(b.difference), ""),
        b.confidence * 100.0,
        decimals6(Some(b.lower), ""),
        decimals6(Some(b.upper), ""),
        b.generations,
        b.replicates,
        b.seed,
        b.share_b_better * 100.0
    )
}

/// The comparison as an aligned text table.
pub fn table(c: &Comparison) -> String {
    let f = |v: Option<f64>| decimals6(v, "null");
    let w = c.metrics.iter().map(|m| m.metric.len()).max().unwrap_or(6);
    let mut s = format!("A: {}\nB: {}\n", c.a, c.b);
    s += &format!("  {:<w$}  {:>12}  {:>12}  {:>12}\n", "metric", "A", "B", "B - A");
    for m in &c.metrics {
        s += &format!(
            "  {:<w$}  {:>12}  {:>12}  {:>12}\n",
            m.metric,
            f(m.a),
            f(m.b),
            f(m.difference)
        );
    }
    s + &interval(&c.mse_difference)
}
