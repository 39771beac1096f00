-- One row per generation, from segscore's segment rows (the table `segments`: the run's
-- segments output, with base_score 0.0 unless the run had --base-score-col).
--
-- The metrics are segscore's aggregate functions (pearson, rank_metrics: spearman,
-- kendall_tau and pairwise_order_accuracy, top_segment_match); undefined values are NULL: correlations and
-- rank metrics over one segment or constant scores, top_segment_match over one segment.
--
-- targets_sum_ok checks the identity the targets obey: a generation's segment targets add up
-- to its final cumulative score minus its baseline (up to rounding, 1e-9 relative).
SELECT
  generation_id,
  n_segments,
  mse,
  mae,
  bias,
  pearson,
  ranks['spearman'] AS spearman,
  ranks['kendall_tau'] AS kendall_tau,
  ranks['pairwise_order_accuracy'] AS pairwise_order_accuracy,
  top_segment_match,
  worst_segment_index,
  worst_segment_loss,
  total_loss,
  target_sum,
  final_cumulative_score,
  base_score,
  abs(target_sum - (final_cumulative_score - base_score))
    <= 1e-9 * greatest(1.0, abs(final_cumulative_score), abs(base_score)) AS targets_sum_ok
FROM (
  SELECT
    generation_id,
    COUNT(*) AS n_segments,
    AVG(squared_error) AS mse,
    AVG(abs_error) AS mae,
    AVG(residual) AS bias,
    pearson(predicted_score, target_score) AS pearson,
    -- spearman, kendall_tau and pairwise_order_accuracy from one copy of the scores
    rank_metrics(predicted_score, target_score) AS ranks,
    top_segment_match(predicted_score, target_score) AS top_segment_match,
    first_value(segment_index ORDER BY loss DESC, segment_index ASC) AS worst_segment_index,
    MAX(loss) AS worst_segment_loss,
    SUM(loss) AS total_loss,
    SUM(target_score) AS target_sum,
    last_value(cumulative_score ORDER BY segment_index ASC) AS final_cumulative_score,
    first_value(base_score ORDER BY segment_index ASC) AS base_score
  FROM segments
  GROUP BY generation_id
) AS g
ORDER BY generation_id
