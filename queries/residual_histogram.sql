-- The residual histogram (summary.json, report.html): 40 equal-width bins from the smallest
-- to the largest residual; the largest falls in the last bin. Empty bins have no row. Over
-- `segments_sample` (every segment up to 1M, a hashed sample of about 1M above).
WITH r AS (SELECT MIN(residual) AS lo, MAX(residual) AS hi FROM segments_sample)
SELECT
  b.bin,
  r.lo + (r.hi - r.lo) * b.bin / 40.0 AS lower_edge,
  r.lo + (r.hi - r.lo) * (b.bin + 1) / 40.0 AS upper_edge,
  b.n
FROM (
  SELECT
    CASE WHEN r.hi > r.lo
      THEN least(CAST(floor((s.residual - r.lo) / (r.hi - r.lo) * 40.0) AS BIGINT), 39)
      ELSE 0 END AS bin,
    COUNT(*) AS n
  FROM segments_sample AS s CROSS JOIN r
  GROUP BY 1
) AS b CROSS JOIN r
ORDER BY b.bin
