//! The evaluation's SQL, kept in `queries/` and embedded at build time.

/// `queries/generations.sql`: one row per generation.
pub const GENERATIONS_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/generations.sql"));
/// `queries/overall_metrics.sql`: rank metrics and loss concentration over all segments (or
/// a sample of about [`SAMPLE_SEGMENTS`]).
pub const OVERALL_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/overall_metrics.sql"
));
/// `queries/generation_means.sql`: per-generation metrics averaged over generations.
pub const GENERATION_MEANS_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/generation_means.sql"
));
/// `queries/residual_histogram.sql`: 40 equal-width bins of residuals (over the sample).
pub const HISTOGRAM_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/queries/residual_histogram.sql"
));
/// `queries/calibration.sql`: mean prediction and target per decile of prediction (over
/// `segments_sample`).
pub const CALIBRATION_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/calibration.sql"));

/// Segments in `segments_sample`, about: the overall rank metrics, loss shares, histogram and
/// calibration are exact up to this many segments and computed on a sample above it (the
/// segments whose key hashes to 0 modulo a stride, `segscore_sample`), so that their memory
/// does not grow with the input. The sample is the same whatever order or partitions the rows
/// come in, so the single pass and the SQL take the same one.
pub const SAMPLE_SEGMENTS: u64 = 1_000_000;
