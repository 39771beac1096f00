-- segscore: per-segment target scores from cumulative scores.
--
-- Input: the view `generations`, one row per segment, with the canonical columns
-- generation_id, segment_index, cumulative_score (DOUBLE), input_ids, base_score (DOUBLE:
-- the --base-score-col column, or 0.0) and every carried column.
--
-- A segment's own score is the change its addition causes:
--     target_score = cumulative_score - LAG(cumulative_score, 1, baseline)
-- with the generation's base score as the baseline of its first segment. Scores are never
-- null here (nulls are rejected before), so COALESCE(LAG(...), base_score) is that LAG with
-- a per-row default.
--
-- previous_segment_index lets segscore find duplicate (generation_id, segment_index) pairs
-- (they are adjacent in this order) and count generations (it is null exactly once per
-- generation). A replacement query (--query-file) must keep generation_id, segment_index,
-- cumulative_score, input_ids and produce target_score; previous_segment_index is optional.
SELECT
  g.*,
  g.cumulative_score - COALESCE(LAG(g.cumulative_score, 1) OVER w, g.base_score) AS target_score,
  LAG(g.segment_index, 1) OVER w AS previous_segment_index
FROM generations AS g
WINDOW w AS (PARTITION BY g.generation_id ORDER BY g.segment_index)
