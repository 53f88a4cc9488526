-- Ranking metrics of each model's re-ranking of the logged sessions (clicks are the relevant items),
-- averaged over sessions with at least one click, sessions weighted by their user's replicate weight.
--   NDCG@K = DCG@K / ideal DCG@K (gain 1 per click, discount log2(rank + 1))
--   Precision@K = clicks in the top K / K;  Recall@K = clicks in the top K / clicks in the session
--   HitRate@K = 1 if any click is in the top K;  MRR@K = 1 / rank of the first click in the top K (else 0)
-- Ties in score break on video_id, so results are deterministic.
-- Speed: a session's top K comes from the top-N aggregate arg_min(gain, (-score, video_id), K), which
-- keeps a K-element heap per session instead of sorting every row (a row_number() window did, 1.5x
-- slower at 10M rows); the list it returns is the gains in rank order, so DCG is a dot product with
-- the discounts and the first hit is list_position. Sessions group on (slice, model, session_id) as
-- they are: numbering (slice, model) first cost a 10M-row join and made the query 20% slower.
WITH top AS (
    SELECT e.slice, e.model, e.session_id, any_value(e.user_key) AS user_key, sum(e.clicked::INTEGER) AS clicks,
           arg_min(e.clicked::INTEGER, {'s': -e.score, 'v': e.video_id}, $k) AS gains
    FROM eval_rows e
    GROUP BY ALL HAVING sum(e.clicked::INTEGER) > 0
), ideal AS (
    -- the ideal DCG depends only on how many clicks a session has: sum over i <= min(clicks, K) of 1/log2(i + 1)
    SELECT c AS clicks, sum(1 / log2(c + 1)) OVER (ORDER BY c) AS idcg FROM range(1, $k + 1) AS t(c)
), discount AS (   -- 1 / log2(rank + 1) for ranks 1..K, sliced to each session's list length
    SELECT list(1 / log2(c + 1) ORDER BY c) AS d FROM range(1, $k + 1) AS t(c)
), scored AS (
    SELECT t.slice, t.model, t.user_key, list_dot_product(t.gains::DOUBLE[], d[1:len(t.gains)]) / i.idcg AS ndcg,
           list_sum(t.gains) / $k AS precision, list_sum(t.gains) / t.clicks AS recall,
           (list_sum(t.gains) > 0)::DOUBLE AS hitrate, coalesce(1.0 / list_position(t.gains, 1), 0) AS mrr
    FROM top t CROSS JOIN discount JOIN ideal i ON i.clicks = least(t.clicks, $k)
), weighted AS (
    SELECT w.rep, s.slice, s.model,
           sum(w.w * s.ndcg) / sum(w.w) AS ndcg, sum(w.w * s.precision) / sum(w.w) AS precision,
           sum(w.w * s.recall) / sum(w.w) AS recall, sum(w.w * s.hitrate) / sum(w.w) AS hitrate,
           sum(w.w * s.mrr) / sum(w.w) AS mrr
    FROM scored s JOIN user_weights w ON w.user_key = s.user_key AND w.w > 0
    GROUP BY ALL
)
SELECT rep, slice, model, 'ndcg_at_' || $k AS metric, ndcg AS value FROM weighted
UNION ALL SELECT rep, slice, model, 'precision_at_' || $k, precision FROM weighted
UNION ALL SELECT rep, slice, model, 'recall_at_' || $k, recall FROM weighted
UNION ALL SELECT rep, slice, model, 'hitrate_at_' || $k, hitrate FROM weighted
UNION ALL SELECT rep, slice, model, 'mrr_at_' || $k, mrr FROM weighted;
