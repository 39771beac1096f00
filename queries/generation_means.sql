-- Per-generation metrics averaged over generations (summary.json's generation_means): each
-- generation counts once, whatever its length. Generations where a metric is undefined
-- (NULL) are left out of that metric's mean; the *_defined counts say how many remain.
SELECT
  COUNT(*) AS generations,
  AVG(mse) AS mse,
  AVG(mae) AS mae,
  AVG(bias) AS bias,
  AVG(pearson) AS pearson,
  AVG(spearman) AS spearman,
  AVG(kendall_tau) AS kendall_tau,
  AVG(pairwise_order_accuracy) AS pairwise_order_accuracy,
  AVG(CASE WHEN top_segment_match THEN 1.0 WHEN NOT top_segment_match THEN 0.0 END) AS top_segment_match,
  COUNT(spearman) AS spearman_defined,
  COUNT(kendall_tau) AS kendall_tau_defined,
  COUNT(pairwise_order_accuracy) AS pairwise_order_accuracy_defined,
  COUNT(top_segment_match) AS top_segment_match_defined,
  COUNT(*) FILTER (WHERE NOT targets_sum_ok) AS targets_sum_mismatches
FROM generations
