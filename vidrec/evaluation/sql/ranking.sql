-- Ranking metrics of each model's re-ranking of the logged sessions (clicks are the relevant items),
-- averaged over sessions with at least one click, sessions weighted by their user's replicate weight.
--   NDCG@K = DCG@K / ideal DCG@K (gain 1 per click, discount log2(rank + 1))
--   Precision@K = clicks in the top K / K;  Recall@K = clicks in the top K / clicks in the session
--   HitRate@K = 1 if any click is in the top K;  MRR@K = 1 / rank of the first click in the top K (else 0)
-- Ties in score break on video_id, so results are deterministic.
-- Input: eval_rows(gu, session_id, video_id, clicked, score) with gu = g * 2^32 + u (metrics.PACKED_KEY),
-- eval_keys(slice, model, g), user_weights(rep, u, w).
-- Speed (10M rows; benchmarks/evaluate.py): a session's top K comes from the top-N aggregate
-- arg_min(gain, -score, K), which keeps a K-element heap per session instead of sorting every row, and
-- returns the gains in rank order, so DCG is a dot product with the discounts and the first hit is
-- list_position. The heap is keyed on the score alone: keyed on the exact order {-score, video_id}
-- (a struct) it cost 2-3x as much. The tie-break can only change the top K of a session whose K + 1
-- best scores hold a tie, so those sessions are ranked again with the struct key (`exact`), and so are
-- sessions with a NULL score or click (arg_min skips NULL keys and values, so the two heaps could
-- disagree) or a NULL session_id (matched with IS NOT DISTINCT FROM). Sessions group on (g, session_id): g is the (slice, model) number in gu.
WITH top AS (
    SELECT gu // 4294967296 AS g, session_id, any_value(gu % 4294967296) AS u, sum(clicked::INTEGER) AS clicks,
           arg_min(clicked::INTEGER, -score, $k) AS gains, arg_min(score, -score, $k + 1) AS best,
           count(score) < count(*) OR count(clicked) < count(*) AS has_null
    FROM eval_rows
    GROUP BY ALL HAVING sum(clicked::INTEGER) > 0
), tied AS (   -- neighbours in the K + 1 best scores that are equal
    SELECT g, session_id FROM top
    WHERE has_null OR list_bool_or(list_transform(list_zip(best[1:len(best) - 1], best[2:len(best)]),
                                                  lambda pair: pair[1] = pair[2]))
), exact AS (
    SELECT e.gu // 4294967296 AS g, e.session_id, arg_min(e.clicked::INTEGER, {'s': -e.score, 'v': e.video_id}, $k) AS gains
    FROM eval_rows e SEMI JOIN tied t ON t.g = e.gu // 4294967296 AND t.session_id IS NOT DISTINCT FROM e.session_id
    GROUP BY ALL
), ideal AS (
    -- the ideal DCG depends only on how many clicks a session has: sum over i <= min(clicks, K) of 1/log2(i + 1)
    SELECT c AS clicks, sum(1 / log2(c + 1)) OVER (ORDER BY c) AS idcg FROM range(1, $k + 1) AS t(c)
), discount AS (   -- 1 / log2(rank + 1) for ranks 1..K, sliced to each session's list length
    SELECT list(1 / log2(c + 1) ORDER BY c) AS d FROM range(1, $k + 1) AS t(c)
), ranked AS (
    SELECT t.g, t.u, t.clicks, coalesce(x.gains, t.gains) AS gains
    FROM top t LEFT JOIN exact x ON x.g = t.g AND x.session_id IS NOT DISTINCT FROM t.session_id
), scored AS (
    SELECT t.g, t.u, list_dot_product(t.gains::DOUBLE[], d[1:len(t.gains)]) / i.idcg AS ndcg,
           list_sum(t.gains) / $k AS precision, list_sum(t.gains) / t.clicks AS recall,
           (list_sum(t.gains) > 0)::DOUBLE AS hitrate, coalesce(1.0 / list_position(t.gains, 1), 0) AS mrr
    FROM ranked t CROSS JOIN discount JOIN ideal i ON i.clicks = least(t.clicks, $k)
), weighted AS (
    SELECT w.rep, s.g,
           sum(w.w * s.ndcg) / sum(w.w) AS ndcg, sum(w.w * s.precision) / sum(w.w) AS precision,
           sum(w.w * s.recall) / sum(w.w) AS recall, sum(w.w * s.hitrate) / sum(w.w) AS hitrate,
           sum(w.w * s.mrr) / sum(w.w) AS mrr
    FROM scored s JOIN user_weights w ON w.u = s.u AND w.w > 0
    GROUP BY ALL
), results AS (
    SELECT rep, g, 'ndcg_at_' || $k AS metric, ndcg AS value FROM weighted
    UNION ALL SELECT rep, g, 'precision_at_' || $k, precision FROM weighted
    UNION ALL SELECT rep, g, 'recall_at_' || $k, recall FROM weighted
    UNION ALL SELECT rep, g, 'hitrate_at_' || $k, hitrate FROM weighted
    UNION ALL SELECT rep, g, 'mrr_at_' || $k, mrr FROM weighted
)
SELECT r.rep, k.slice, k.model, r.metric, r.value FROM results r JOIN eval_keys k USING (g);
