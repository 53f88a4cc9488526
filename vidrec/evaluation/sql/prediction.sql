-- Prediction metrics per head (click: clicked ~ p_click; conversion: converted ~ p_conversion, the
-- ESMM P(click and convert)) for every bootstrap replicate in user_weights (rep 0 = every user once).
--   AUC      weighted Mann-Whitney U: P(score of a positive > score of a negative), ties count 1/2.
--   GAUC     per-user AUC over users with both classes, averaged weighted by the user's impressions.
--   logloss  predictions clipped to [$eps, 1 - $eps] before the log.
--   ECE      $bins equal-width bins of the prediction: sum over bins |sum(label) - sum(pred)| / n.
-- Input: eval_rows(gu, clicked, converted, p_click, p_conversion, ...) with gu = g * 2^32 + u
-- (metrics.PACKED_KEY), eval_keys(slice, model, g), user_weights(rep, user_key, u, w).
-- Speed (10M rows; benchmarks/evaluate.py): per-user AUC uses the rank-sum form of Mann-Whitney,
--   U = sum over the positives of their mid-rank - P (P + 1) / 2,   mid-rank = (first + last) / 2
-- with first = rank() and last = cume_dist() * n (n the user's rows; cume_dist is the share of rows up
-- to the last tie, and costs a fifth of what count(*) over the same RANGE frame did), so it takes one
-- window over the raw rows per head. The window partitions on one BIGINT, key = gu * 2 + head: half
-- the sort cost of partitioning on (g, head, user_key). key // 2^33 is g, key % 2 the head and
-- (key // 2) % 2^32 the user number.
-- Everything else is hash aggregation: logloss, ECE and the rank sums per (user, bin); the global
-- AUC per distinct prediction. Replicate 0 weighs every row 1, so its global-AUC counts come straight
-- from the rows, and only replicates 1..R join the 20M (row, head) pairs to user_weights: with no
-- bootstrap that join does no work at all.
WITH heads AS (
    SELECT gu * 2 AS key, clicked AS y, p_click::DOUBLE AS pred FROM eval_rows
    UNION ALL
    SELECT gu * 2 + 1, converted, p_conversion::DOUBLE FROM eval_rows
), ranked AS (
    SELECT key, y, pred, rank() OVER w AS first_rank, cume_dist() OVER w AS last_share
    FROM heads WINDOW w AS (PARTITION BY key ORDER BY pred)
), per_user_bin AS (
    -- logloss, ECE and the rank sums are sums, so they are summed per user once and replicates weight users.
    SELECT key // 8589934592 AS g, key % 2 AS h, (key // 2) % 4294967296 AS u, bin, n, y, p, ll, first_sum, last_share_sum
    FROM (SELECT key, least(floor(pred * $bins), $bins - 1)::INTEGER AS bin,
                 count(*)::DOUBLE AS n, count(*) FILTER (WHERE y)::DOUBLE AS y, sum(pred) AS p,
                 -sum(CASE WHEN y THEN ln(least(greatest(pred, $eps), 1 - $eps))
                           ELSE ln(1 - least(greatest(pred, $eps), 1 - $eps)) END) AS ll,
                 coalesce(sum(first_rank) FILTER (WHERE y), 0)::DOUBLE AS first_sum,
                 coalesce(sum(last_share) FILTER (WHERE y), 0) AS last_share_sum
          FROM ranked GROUP BY ALL)
), rep_bins AS (
    SELECT w.rep, b.g, b.h, b.bin,
           sum(w.w * b.n) AS n, sum(w.w * b.y) AS y, sum(w.w * b.p) AS p, sum(w.w * b.ll) AS ll
    FROM per_user_bin b JOIN user_weights w ON w.u = b.u AND w.w > 0
    GROUP BY ALL
), calibration AS (
    SELECT rep, g, h, sum(ll) / sum(n) AS logloss, sum(abs(y - p)) / sum(n) AS ece
    FROM rep_bins GROUP BY ALL
), user_auc AS (
    -- twice the positives' mid-rank sum is sum(first) + n * sum(last_share)
    SELECT g, h, u, sum(n) AS n,
           ((sum(first_sum) + sum(n) * sum(last_share_sum)) / 2 - sum(y) * (sum(y) + 1) / 2)
           / (sum(y) * (sum(n) - sum(y))) AS auc
    FROM per_user_bin GROUP BY ALL
    HAVING sum(y) > 0 AND sum(n) > sum(y)
), gauc AS (
    SELECT w.rep, a.g, a.h, sum(w.w * a.n * a.auc) / nullif(sum(w.w * a.n), 0) AS value
    FROM user_auc a JOIN user_weights w ON w.u = a.u AND w.w > 0
    GROUP BY ALL
), by_score AS (
    -- the global AUC needs the replicate weight of every row, so rows sharing a prediction are summed first
    SELECT 0 AS rep, key // 8589934592 AS g, key % 2 AS h, pred,
           count(*) FILTER (WHERE y)::DOUBLE AS pos, count(*) FILTER (WHERE NOT y)::DOUBLE AS neg
    FROM heads GROUP BY ALL
    UNION ALL
    SELECT w.rep, x.key // 8589934592, x.key % 2, x.pred, sum(w.w) FILTER (WHERE x.y), sum(w.w) FILTER (WHERE NOT x.y)
    FROM heads x JOIN user_weights w ON w.u = (x.key // 2) % 4294967296 AND w.rep > 0 AND w.w > 0
    GROUP BY ALL
), by_score_cum AS (
    -- a running sum minus the row itself: the (weighted) negatives strictly below this prediction
    SELECT rep, g, h, coalesce(pos, 0) AS pos, coalesce(neg, 0) AS neg,
           sum(coalesce(neg, 0)) OVER (PARTITION BY rep, g, h ORDER BY pred ROWS UNBOUNDED PRECEDING)
           - coalesce(neg, 0) AS neg_below
    FROM by_score
), auc AS (
    SELECT rep, g, h,
           CASE WHEN sum(pos) > 0 AND sum(neg) > 0
                THEN sum(pos * (neg_below + 0.5 * neg)) / (sum(pos) * sum(neg)) END AS value
    FROM by_score_cum GROUP BY ALL
), results AS (
    SELECT rep, g, h, '_auc' AS suffix, value FROM auc
    UNION ALL SELECT rep, g, h, '_gauc', value FROM gauc
    UNION ALL SELECT rep, g, h, '_logloss', logloss FROM calibration
    UNION ALL SELECT rep, g, h, '_ece', ece FROM calibration
)
SELECT r.rep, k.slice, k.model, CASE r.h WHEN 0 THEN 'click' ELSE 'conversion' END || r.suffix AS metric, r.value
FROM results r JOIN eval_keys k USING (g);
