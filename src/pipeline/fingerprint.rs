//! The job's fingerprint: what decides a run's rows and values. `--resume` continues only the
//! same job, and names the first setting that differs.

use serde::{Deserialize, Serialize};

use crate::contract::ColumnNames;
use crate::error::Result;
use crate::source;
use crate::validate::OnInvalid;

/// What decides a run's rows and values: `--resume` continues only the same job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFingerprint {
    /// segscore's version.
    pub segscore_version: String,
    /// Each input file: path, bytes, modification time (ns since the epoch).
    pub inputs: Vec<(String, u64, u128)>,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The model output read.
    pub model_output: String,
    /// The provider used.
    pub provider: String,
    /// sha256 of the job query.
    pub query_sha256: String,
    /// The loss.
    pub loss: String,
    /// Input column names.
    pub columns: ColumnNames,
    /// --keep.
    pub keep: Vec<String>,
    /// --drop.
    pub drop: Vec<String>,
    /// --on-invalid.
    pub on_invalid: OnInvalid,
    /// --max-invalid-fraction.
    pub max_invalid_fraction: Option<f64>,
    /// Shards.
    pub shards: usize,
    /// Whether the input was taken as sorted.
    pub sorted: bool,
    /// --max-rows-per-file.
    pub max_rows_per_file: u64,
    /// --batch-size: rows per model call. ONNX Runtime rounds differently for differently
    /// shaped batches, so it decides predictions to the last bit.
    pub batch_size: usize,
    /// --max-tokens-per-batch: padded positions per model call (as --batch-size).
    pub max_tokens_per_batch: usize,
    /// sha256 of the tokenizer (text input).
    pub tokenizer_sha256: Option<String>,
    /// --segment-separator.
    pub segment_separator: Option<String>,
    /// --pass (text input).
    pub pass: Option<String>,
    /// --prediction.
    pub prediction: String,
    /// --score-label.
    pub score_label: Option<usize>,
    /// The longest model input.
    pub max_length: Option<usize>,
    /// Hive partition columns and their types.
    pub partition_cols: Vec<String>,
}

impl JobFingerprint {
    /// The first setting in which `self` (the interrupted run) differs from `now`.
    pub(crate) fn difference(&self, now: &JobFingerprint) -> Option<String> {
        let (a, b) = (serde_json::to_value(self).ok()?, serde_json::to_value(now).ok()?);
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find(|(k, v)| b.get(*k) != Some(*v)).map(|(k, v)| {
            let short = |v: Option<&serde_json::Value>| {
                let t = v.map(|v| v.to_string()).unwrap_or_else(|| "nothing".into());
                if t.len() > 200 {
                    format!("{}...", &t[..t.floor_char_boundary(200)])
                } else {
                    t
                }
            };
            format!("{k} {} (now {})", short(Some(v)), short(b.get(k)))
        })
    }
}

pub(crate) fn input_stamps(inputs: &source::Inputs) -> Result<Vec<(String, u64, u128)>> {
    inputs
        .files
        .iter()
        .map(|f| {
            let name = match crate::store::Location::of(&f.path)? {
                Some(loc) => loc.url(),
                None => f.path.display().to_string(),
            };
            Ok((name, f.stamp.0, f.stamp.1))
        })
        .collect()
}
