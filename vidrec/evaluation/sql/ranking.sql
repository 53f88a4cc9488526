-- Ranking metrics of each model's re-ranking of the logged sessions (clicks are the relevant items),
-- averaged over sessions with at least one click, sessions weighted by their user's replicate weight.
--   NDCG@K = DCG@K / ideal DCG@K (gain 1 per click, discount log2(rank + 1))
--   Precision@K = clicks in the top K / K;  Recall@K = clicks in the top K / clicks in the session
--   HitRate@K = 1 if any click is in the top K;  MRR@K = 1 / rank of the first click in the top K (else 0)
-- Ties in score break on video_id, so results are deterministic.
WITH keys AS (   -- (slice, model) numbered so the window partitions on small integers, not strings
    SELECT slice, model, row_number() OVER (ORDER BY slice, model) AS g
    FROM (SELECT DISTINCT slice, model FROM eval_rows)
), ranked AS (
    SELECT k.g, e.session_id, e.user_key, e.clicked::INTEGER AS gain,
           row_number() OVER (PARTITION BY k.g, e.session_id ORDER BY e.score DESC, e.video_id) AS r
    FROM eval_rows e JOIN keys k USING (slice, model)
), ideal AS (
    -- the ideal DCG depends only on how many clicks a session has: sum over i <= min(clicks, K) of 1/log2(i + 1)
    SELECT c AS clicks, sum(1 / log2(c + 1)) OVER (ORDER BY c) AS idcg FROM range(1, $k + 1) AS t(c)
), per_session AS (
    SELECT g, session_id, any_value(user_key) AS user_key,
           sum(CASE WHEN r <= $k THEN gain / log2(r + 1) ELSE 0 END) AS dcg,
           sum(CASE WHEN r <= $k THEN gain ELSE 0 END) AS hits,
           sum(gain) AS clicks,
           min(CASE WHEN gain = 1 AND r <= $k THEN r END) AS first_hit
    FROM ranked GROUP BY g, session_id
    HAVING sum(gain) > 0
), scored AS (
    SELECT p.*, p.dcg / i.idcg AS ndcg, p.hits / $k AS precision, p.hits / p.clicks AS recall,
           (p.hits > 0)::DOUBLE AS hitrate, coalesce(1.0 / p.first_hit, 0) AS mrr
    FROM per_session p JOIN ideal i ON i.clicks = least(p.clicks, $k)
), weighted AS (
    SELECT w.rep, k.slice, k.model,
           sum(w.w * s.ndcg) / sum(w.w) AS ndcg, sum(w.w * s.precision) / sum(w.w) AS precision,
           sum(w.w * s.recall) / sum(w.w) AS recall, sum(w.w * s.hitrate) / sum(w.w) AS hitrate,
           sum(w.w * s.mrr) / sum(w.w) AS mrr
    FROM scored s JOIN user_weights w ON w.user_key = s.user_key AND w.w > 0 JOIN keys k USING (g)
    GROUP BY ALL
)
SELECT rep, slice, model, 'ndcg_at_' || $k AS metric, ndcg AS value FROM weighted
UNION ALL SELECT rep, slice, model, 'precision_at_' || $k, precision FROM weighted
UNION ALL SELECT rep, slice, model, 'recall_at_' || $k, recall FROM weighted
UNION ALL SELECT rep, slice, model, 'hitrate_at_' || $k, hitrate FROM weighted
UNION ALL SELECT rep, slice, model, 'mrr_at_' || $k, mrr FROM weighted;
