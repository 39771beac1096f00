-- Metrics over all segments at once (summary.json): rank agreement between predictions and
-- targets across every segment of the run, and how much of the total loss the worst 1% and
-- 10% of segments carry. These functions hold every value at once (8 bytes per segment and
-- argument), so they read `segments_sample`: every segment up to 1M segments, a hashed sample of about 1M
-- above (segscore_sample(generation_id, segment_index, stride)), so that memory does not grow with the input.
SELECT
  r.segments,
  r.ranks['spearman'] AS spearman,
  r.ranks['kendall_tau'] AS kendall_tau,
  r.ranks['pairwise_order_accuracy'] AS pairwise_order_accuracy,
  r.loss_share_top_1pct,
  r.loss_share_top_10pct
FROM (
  SELECT
    COUNT(*) AS segments,
    rank_metrics(predicted_score, target_score) AS ranks,
    loss_share_top(loss, 0.01) AS loss_share_top_1pct,
    loss_share_top(loss, 0.1) AS loss_share_top_10pct
  FROM segments_sample
) AS r
