-- segscore's job for text input (--text-col): each segment's target from the cumulative
-- scores. The model is not called here: rows leave the window grouped by generation, in key
-- order, and segscore's generation stage tokenizes each generation (prompt, then every
-- segment's text and the separator) and scores it, in one pass per generation
-- (--pass generation) or one call per segment prefix (--pass segment). It appends
-- predicted_score and input_problem.
--
-- Input: the view `generations` with generation_id, segment_index, cumulative_score
-- (DOUBLE), base_score (DOUBLE), text, prompt ('' unless --prompt-col) and every carried
-- column. The target is the change in cumulative score, the generation's base score before
-- its first segment.
SELECT
  g.*,
  g.cumulative_score - COALESCE(LAG(g.cumulative_score, 1) OVER w, g.base_score) AS target_score
FROM generations AS g
WINDOW w AS (PARTITION BY g.generation_id ORDER BY g.segment_index)
