-- The calibration table (summary.json, report.html): segments split into ten equal-count
-- groups by prediction (deciles; ties broken by key, so the split is reproducible), with the
-- mean prediction and the mean target of each. A calibrated model has the two close.
--
-- ROW_NUMBER over the sorted predictions streams (the sort spills under --memory-limit);
-- the decile of row r of n is floor((r - 1) * 10 / n) + 1.
WITH total AS (SELECT COUNT(*) AS n FROM segments),
ranked AS (
  SELECT
    predicted_score,
    target_score,
    CAST(ROW_NUMBER() OVER (ORDER BY predicted_score, generation_id, segment_index) AS BIGINT) AS r
  FROM segments
)
SELECT
  (ranked.r - 1) * 10 / total.n + 1 AS decile,
  COUNT(*) AS n,
  MIN(predicted_score) AS min_predicted,
  MAX(predicted_score) AS max_predicted,
  AVG(predicted_score) AS mean_predicted,
  AVG(target_score) AS mean_target
FROM ranked CROSS JOIN total
GROUP BY 1
ORDER BY 1
