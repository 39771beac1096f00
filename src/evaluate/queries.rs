//! The evaluation's SQL, kept in `queries/` and embedded at build time.

/// `queries/generations.sql`: one row per generation.
pub const GENERATIONS_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/generations.sql"));
/// `queries/overall_metrics.sql`: rank metrics and loss concentration over all segments (or
/// an even sample of [`SAMPLE_SEGMENTS`]).
pub const OVERALL_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/overall_metrics.sql"
));
/// `queries/generation_means.sql`: per-generation metrics averaged over generations.
pub const GENERATION_MEANS_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/generation_means.sql"
));
/// `queries/residual_histogram.sql`: 40 equal-width bins of residuals.
pub const HISTOGRAM_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/residual_histogram.sql"
));
/// `queries/calibration.sql`: mean prediction and target per decile of prediction (over
/// `segments_sample`).
pub const CALIBRATION_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/calibration.sql"));

/// Segments in `segments_sample`, at most: the overall rank metrics, loss shares and
/// calibration are exact up to this many segments and computed on an even sample (every k-th
/// segment in key order) above it, so that their memory does not grow with the input.
pub const SAMPLE_SEGMENTS: u64 = 1_000_000;
