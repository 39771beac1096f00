//! `summary.json`: the run's summary and its parts, and the short table the commands print.

use serde::{Deserialize, Serialize};

use crate::loss::RegressionMetrics;
use crate::validate::{OnInvalid, Rejections};

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// segscore's version.
    pub segscore_version: String,
    /// Generations scored.
    pub n_generations: u64,
    /// Segments (rows) scored.
    pub n_segments: u64,
    /// Regression metrics over all segments.
    #[serde(flatten)]
    pub metrics: RegressionMetrics,
    /// mse = bias_squared + residual_variance: the part of the error a constant shift of the
    /// predictions would remove, and the rest.
    pub mse_decomposition: MseDecomposition,
    /// What the row checks rejected (`rejected/`).
    #[serde(default)]
    pub rejected: RejectedSummary,
    /// Rank metrics, loss concentration, per-generation means, histogram and calibration.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The loss's name.
    pub loss: String,
    /// The Huber delta, when the loss is huber.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub huber_delta: Option<f64>,
    /// The model file.
    pub model: String,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The model output read as the score.
    pub model_output: String,
    /// What the output gives: one score per sequence or per token (and the class read).
    #[serde(default)]
    pub score_output: String,
    /// segment (the model's score is the segment's) or cumulative (its change is).
    #[serde(default)]
    pub prediction: String,
    /// The longest model input (--max-length, or the model's own limit).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Text input, when the run read text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSummary>,
    /// ONNX Runtime's version.
    pub onnxruntime_version: String,
    /// The provider used: cpu or cuda.
    pub provider: String,
    /// sha256 of the job query's text.
    pub query_sha256: String,
    /// sha256 of the job's description (inputs, model, settings): `--resume` of a complete
    /// output checks it.
    #[serde(default)]
    pub job_sha256: String,
    /// The overall sample's stride: segments whose key hashes to 0 modulo it
    /// (`segscore_sample`) are in it; 1 (all) up to a million input rows.
    #[serde(default)]
    pub overall_sample_stride: u64,
    /// Input files read.
    pub input_files: usize,
    /// Input files with no rows, skipped.
    #[serde(default)]
    pub input_files_empty: usize,
    /// Hive partition columns read from the input folders' `key=value` names.
    #[serde(default)]
    pub partition_cols: Vec<String>,
    /// Whether the input was taken as sorted (streaming window, no sort).
    pub input_sorted: bool,
    /// How rows came in key order: `declared` (`--sorted`), `footers` (the files'
    /// `sorting_columns`), `detected` (streamed as if sorted, checked as rows came) or
    /// `sorted` (the plan sorted them, also after a row out of order in the other two).
    #[serde(default)]
    pub input_order: String,
    /// Shards (units of commitment) the run was cut into.
    #[serde(default)]
    pub shards: usize,
    /// Shards an interrupted run had committed, kept by `--resume`.
    #[serde(default)]
    pub resumed_shards: usize,
    /// Segment part files written (`segments/`).
    pub output_files: usize,
    /// Generation part files written (`generations/`).
    pub generation_files: usize,
    /// Bytes DataFusion spilled to disk (sorting unsorted input under --memory-limit).
    pub spilled_bytes: u64,
    /// Share of the model's input positions that were padding.
    pub padding_share: Option<f64>,
    /// Seconds inside ONNX Runtime, summed over sessions.
    pub model_seconds: f64,
    /// Wall-clock seconds of the evaluation stage (generations/ and the summary's metrics),
    /// included in `elapsed_seconds`.
    #[serde(default)]
    pub evaluation_seconds: f64,
    /// The cluster the run's plan ran on (`--cluster`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSummary>,
    /// Wall-clock seconds of the run.
    pub elapsed_seconds: f64,
    /// Segments per second of wall-clock time.
    pub rows_per_second: f64,
}

/// Where a `--cluster` run's plan ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// The scheduler, `df://HOST:PORT`.
    pub scheduler: String,
    /// The executors that read and scored rows, with how many each (a task retried after a
    /// failure counts once, where it succeeded).
    pub executors: std::collections::BTreeMap<String, u64>,
    /// Seconds the client spent receiving, checking and writing rows (from each shard's first
    /// row, which comes once the cluster has finished the shard, to its files' close).
    pub client_seconds: f64,
    /// Rows per second in that time: the client's write rate, the ceiling of a cluster run.
    pub client_rows_per_second: f64,
}

/// The check that one pass over a generation gives each segment the score of a call on its
/// prefix alone (a causal model), on the first generations scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnePassCheck {
    /// Generations scored both ways.
    pub generations: u64,
    /// Their segments.
    pub segments: u64,
    /// The largest difference between the two.
    pub max_abs_difference: f64,
    /// The largest allowed: this times (1 + |per-prefix score|).
    pub tolerance: f64,
}

/// Text input and the model's reading of it (`--text-col`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextSummary {
    /// The tokenizer file.
    pub tokenizer: String,
    /// sha256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// The segment text column.
    pub text_col: String,
    /// The prompt column, if any.
    pub prompt_col: Option<String>,
    /// The separator appended to every segment.
    pub segment_separator: String,
    /// generation or segment.
    pub pass: String,
    /// The one-pass check (generation pass only).
    pub one_pass_check: Option<OnePassCheck>,
    /// Seconds spent tokenizing, summed over threads (it runs beside the model).
    #[serde(default)]
    pub tokenize_seconds: f64,
}

/// The checks' outcome in `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectedSummary {
    /// fail or quarantine.
    pub on_invalid: OnInvalid,
    /// The threshold, when given.
    pub max_invalid_fraction: Option<f64>,
    /// Rows in the input files.
    pub input_rows: u64,
    /// Rejected rows and generations, by reason.
    #[serde(flatten)]
    pub counts: Rejections,
    /// Rejected rows / input rows.
    pub fraction: f64,
    /// Part files in `rejected/`.
    pub files: usize,
}

/// The MSE split into bias² and the residuals' variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MseDecomposition {
    /// Mean squared error.
    pub mse: Option<f64>,
    /// The squared mean residual.
    pub bias_squared: Option<f64>,
    /// The residuals' population variance.
    pub residual_variance: Option<f64>,
}

impl From<&RegressionMetrics> for MseDecomposition {
    fn from(m: &RegressionMetrics) -> Self {
        MseDecomposition {
            mse: m.mse,
            bias_squared: m.bias.map(|b| b * b),
            residual_variance: m.residual_variance,
        }
    }
}

/// The evaluation part of summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Segments the overall rank metrics, loss shares and calibration were computed over:
    /// all of them up to [`crate::evaluate::SAMPLE_SEGMENTS`], an even sample above.
    pub overall_sample_segments: u64,
    /// Spearman's rank correlation over all segments.
    pub spearman: Option<f64>,
    /// Kendall's tau-b over all segments.
    pub kendall_tau: Option<f64>,
    /// Share of all segment pairs that prediction and target order alike (ties excluded).
    pub pairwise_order_accuracy: Option<f64>,
    /// Share of the total loss carried by the 1% of segments with the largest loss.
    pub loss_share_top_1pct: Option<f64>,
    /// Share of the total loss carried by the 10% of segments with the largest loss.
    pub loss_share_top_10pct: Option<f64>,
    /// Per-generation metrics averaged over generations.
    pub generation_means: GenerationMeans,
    /// Generations whose targets do not add up to final cumulative score minus baseline.
    pub targets_sum_mismatches: u64,
    /// Residual histogram: non-empty bins of 40 equal-width bins over [min, max].
    pub residual_histogram: Vec<HistogramBin>,
    /// Mean prediction and mean target per decile of prediction.
    pub calibration: Vec<CalibrationRow>,
}

/// Per-generation metrics averaged over the generations where each is defined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationMeans {
    /// Mean of per-generation MSE.
    pub mse: Option<f64>,
    /// Mean of per-generation MAE.
    pub mae: Option<f64>,
    /// Mean of per-generation bias.
    pub bias: Option<f64>,
    /// Mean of per-generation Pearson correlation.
    pub pearson: Option<f64>,
    /// Mean of per-generation Spearman correlation.
    pub spearman: Option<f64>,
    /// Mean of per-generation Kendall tau-b.
    pub kendall_tau: Option<f64>,
    /// Mean of per-generation pairwise order accuracy.
    pub pairwise_order_accuracy: Option<f64>,
    /// Share of generations whose top-target segment has the top prediction.
    pub top_segment_match: Option<f64>,
    /// Generations with a defined Spearman correlation.
    pub spearman_defined: u64,
    /// Generations with a defined Kendall tau.
    pub kendall_tau_defined: u64,
    /// Generations with a defined pairwise order accuracy.
    pub pairwise_order_accuracy_defined: u64,
    /// Generations with a defined top_segment_match (two or more segments).
    pub top_segment_match_defined: u64,
}

/// One histogram bin: `count` residuals in `[lower, upper)` (the last bin is closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Residuals in the bin.
    pub count: u64,
}

/// One decile of prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRow {
    /// 1 to 10, by increasing prediction.
    pub decile: u64,
    /// Segments in the decile.
    pub n: u64,
    /// Smallest prediction in the decile.
    pub min_predicted: f64,
    /// Largest prediction in the decile.
    pub max_predicted: f64,
    /// Mean prediction.
    pub mean_predicted: f64,
    /// Mean target.
    pub mean_target: f64,
}

/// A metric as the tables print it: six decimals, `none` where there is no value, and a value
/// that rounds to zero as `0.000000` whatever its sign (a difference of -1e-18 is no
/// difference).
pub fn decimals6(v: Option<f64>, none: &str) -> String {
    match v {
        Some(x) => {
            let s = format!("{x:.6}");
            match s.strip_prefix('-') {
                Some(abs) if abs.bytes().all(|b| b == b'0' || b == b'.') => abs.to_string(),
                _ => s,
            }
        }
        None => none.to_string(),
    }
}

/// Formats a run's summary as a short, aligned table.
pub fn summary_table(s: &Summary) -> String {
    let f = |v: Option<f64>| decimals6(v, "null");
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
    if let Some(c) = &s.cluster {
        rows.push((
            "cluster",
            format!(
                "{} ({} executor{} scored rows; the client wrote {:.0} rows/s)",
                c.scheduler,
                c.executors.len(),
                if c.executors.len() == 1 { "" } else { "s" },
                c.client_rows_per_second
            ),
        ));
    }
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

/// Reads the `summary.json` of the output at `dir` (a local directory or an `s3://` output).
pub fn read_summary(dir: &std::path::Path) -> crate::error::Result<Summary> {
    let path = dir.join("summary.json");
    let bytes = crate::sink::committed::output_file(dir, "summary.json")?.ok_or_else(|| {
        crate::error::Error::Output {
            path: dir.to_path_buf(),
            reason: if crate::store::remote(dir).is_none() && !dir.exists() {
                "does not exist".into()
            } else {
                "holds no complete segscore output: no summary.json (a run writes it when it commits, with _SUCCESS)".into()
            },
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| crate::error::Error::Output {
        path,
        reason: format!("not a segscore summary: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::decimals6;

    #[test]
    fn metrics_print_with_six_decimals_and_no_negative_zero() {
        let cases = [
            (Some(0.1234567), "0.123457"),
            (Some(-0.1234567), "-0.123457"),
            (Some(-1e-18), "0.000000"),
            (Some(-0.0), "0.000000"),
            (Some(-0.0000004), "0.000000"),
            (Some(-0.0000005001), "-0.000001"),
            (Some(f64::NAN), "NaN"),
            (Some(f64::NEG_INFINITY), "-inf"),
            (None, "null"),
        ];
        for (v, want) in cases {
            assert_eq!(decimals6(v, "null"), want, "{v:?}");
        }
        assert_eq!(decimals6(None, ""), "");
    }
}
