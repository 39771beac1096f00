-- segscore's job: score every segment with the reward model, then compute each segment's
-- target from the cumulative scores.
--
-- Input: the view `generations`, one row per segment, with the canonical columns
-- generation_id, segment_index, cumulative_score (DOUBLE), input_ids, token_type_ids (NULL
-- unless --token-type-ids-col), base_score (DOUBLE: the --base-score-col column, or 0.0) and
-- every carried column. reward_model(...) is the ONNX model (NULL token_type_ids: zeros).
--
-- The model runs before the window, straight on the rows as they are read: its batches are
-- then the same whatever the number of threads (so are its results, bit for bit), and it
-- works in parallel with the scan instead of after the sort.
--
-- A segment's own score is the change its addition causes:
--     target_score = cumulative_score - LAG(cumulative_score, 1, baseline)
-- with the generation's base score as the baseline of its first segment. Scores are never
-- null here (nulls are rejected), so COALESCE(LAG(...), base_score) is that LAG with a
-- per-row default.
--
-- reward_model gives NULL for a row the model cannot take (null or empty token list, a token
-- id outside the model's embedding, ...); reward_model_input_problem says why, and segscore
-- reports it (or quarantines the generation) under that reason. input_problem is not output.
--
-- segscore checks the rows as they come out of the window, in (generation_id,
-- segment_index) order: a repeated pair is a duplicate, and each new generation_id is counted.
-- A replacement (--query-file) must produce generation_id, segment_index, cumulative_score,
-- target_score and predicted_score; input_problem is optional.
WITH scored AS (
  SELECT
    g.*,
    reward_model(g.input_ids, g.token_type_ids) AS predicted_score,
    reward_model_input_problem(g.input_ids, g.token_type_ids) AS input_problem
  FROM generations AS g
)
SELECT
  s.*,
  s.cumulative_score - COALESCE(LAG(s.cumulative_score, 1) OVER w, s.base_score) AS target_score
FROM scored AS s
WINDOW w AS (PARTITION BY s.generation_id ORDER BY s.segment_index)
