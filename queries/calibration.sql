-- The calibration table (summary.json, report.html): segments split into ten equal-count
-- groups by prediction (deciles; ties broken by key, so the split is reproducible), with the
-- mean prediction and the mean target of each. A calibrated model has the two close.
--
-- Over `segments_sample` (every segment up to 1M, a hashed sample of about 1M above), so the sort
-- stays small. The decile of row r of n is floor((r - 1) * 10 / n) + 1.
WITH total AS (SELECT COUNT(*) AS n FROM segments_sample),
ranked AS (
  SELECT
    predicted_score,
    target_score,
    CAST(ROW_NUMBER() OVER (ORDER BY predicted_score, generation_id, segment_index) AS BIGINT) AS r
  FROM segments_sample
)
SELECT
  (ranked.r - 1) * 10 // total.n + 1 AS decile,
  COUNT(*) AS n,
  MIN(predicted_score) AS min_predicted,
  MAX(predicted_score) AS max_predicted,
  AVG(predicted_score) AS mean_predicted,
  AVG(target_score) AS mean_target
FROM ranked CROSS JOIN total
GROUP BY 1
ORDER BY 1
