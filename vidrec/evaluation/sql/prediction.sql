-- Prediction metrics per head (click: clicked ~ p_click; conversion: converted ~ p_conversion, the
-- ESMM P(click and convert)) for every bootstrap replicate in user_weights (rep 0 = every user once).
--   AUC      weighted Mann-Whitney U: P(score of a positive > score of a negative), ties count 1/2.
--   GAUC     per-user AUC over users with both classes, averaged weighted by the user's impressions.
--   logloss  predictions clipped to [$eps, 1 - $eps] before the log.
--   ECE      $bins equal-width bins of the prediction: sum over bins |sum(label) - sum(pred)| / n.
-- Input: eval_rows(slice, model, user_key, clicked, converted, p_click, p_conversion, ...).
-- Speed (10M rows; benchmarks/evaluate.py): per-user AUC uses the rank-sum form of Mann-Whitney,
--   U = sum over the positives of their mid-rank - P (P + 1) / 2,   mid-rank = (rank() + count(*)) / 2
-- (within a user and head: rank() is the first and count(*) over the default RANGE frame the last row
-- of the ties), so it takes one window over the raw rows per head. It replaced a hash aggregate per
-- (user, prediction) plus a running-sum window over it, which cost 4x as much; partitioning on
-- (g, h) and ordering by (user, prediction) instead is 4x slower again (one huge partition per head).
-- Everything else is hash aggregation: logloss, ECE and the rank sums per (user, bin); the global
-- AUC per distinct prediction. Heads are stacked so both share one window and one aggregate.
WITH keys AS (   -- (slice, model) numbered so windows partition on small integers, not strings
    SELECT slice, model, row_number() OVER (ORDER BY slice, model) AS g
    FROM (SELECT DISTINCT slice, model FROM eval_rows)
), heads AS (
    SELECT k.g, 0 AS h, e.user_key, e.clicked AS y, e.p_click::DOUBLE AS pred
    FROM eval_rows e JOIN keys k USING (slice, model)
    UNION ALL
    SELECT k.g, 1 AS h, e.user_key, e.converted AS y, e.p_conversion::DOUBLE AS pred
    FROM eval_rows e JOIN keys k USING (slice, model)
), ranked AS (
    SELECT g, h, user_key, y, pred, rank() OVER w AS first_rank, count(*) OVER w AS last_rank
    FROM heads WINDOW w AS (PARTITION BY g, h, user_key ORDER BY pred)
), per_user_bin AS (
    -- logloss, ECE and the rank sums are sums, so they are summed per user once and replicates weight users.
    SELECT g, h, user_key, least(floor(pred * $bins), $bins - 1)::INTEGER AS bin,
           count(*)::DOUBLE AS n, count(*) FILTER (WHERE y)::DOUBLE AS y, sum(pred) AS p,
           -sum(CASE WHEN y THEN ln(least(greatest(pred, $eps), 1 - $eps))
                     ELSE ln(1 - least(greatest(pred, $eps), 1 - $eps)) END) AS ll,
           coalesce(sum(first_rank + last_rank) FILTER (WHERE y), 0)::DOUBLE AS rank_sum2  -- twice the mid-ranks
    FROM ranked GROUP BY ALL
), rep_bins AS (
    SELECT w.rep, u.g, u.h, u.bin,
           sum(w.w * u.n) AS n, sum(w.w * u.y) AS y, sum(w.w * u.p) AS p, sum(w.w * u.ll) AS ll
    FROM per_user_bin u JOIN user_weights w ON w.user_key = u.user_key AND w.w > 0
    GROUP BY ALL
), calibration AS (
    SELECT rep, g, h, sum(ll) / sum(n) AS logloss, sum(abs(y - p)) / sum(n) AS ece
    FROM rep_bins GROUP BY ALL
), user_auc AS (
    SELECT g, h, user_key, sum(n) AS n,
           (sum(rank_sum2) / 2 - sum(y) * (sum(y) + 1) / 2) / (sum(y) * (sum(n) - sum(y))) AS auc
    FROM per_user_bin GROUP BY ALL
    HAVING sum(y) > 0 AND sum(n) > sum(y)
), gauc AS (
    SELECT w.rep, u.g, u.h, sum(w.w * u.n * u.auc) / nullif(sum(w.w * u.n), 0) AS value
    FROM user_auc u JOIN user_weights w ON w.user_key = u.user_key AND w.w > 0
    GROUP BY ALL
), by_score AS (
    -- the global AUC needs the replicate weight of every row, so rows sharing a prediction are summed first
    SELECT w.rep, x.g, x.h, x.pred, sum(w.w) FILTER (WHERE x.y) AS pos, sum(w.w) FILTER (WHERE NOT x.y) AS neg
    FROM heads x JOIN user_weights w ON w.user_key = x.user_key AND w.w > 0
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
FROM results r JOIN keys k USING (g);
