-- Prediction metrics per head (click: clicked ~ p_click; conversion: converted ~ p_conversion, the
-- ESMM P(click and convert)) for every bootstrap replicate in user_weights (rep 0 = every user once).
--   AUC      weighted Mann-Whitney U: P(score of a positive > score of a negative), ties count 1/2.
--   GAUC     per-user AUC over users with both classes, averaged weighted by the user's impressions.
--   logloss  predictions clipped to [$eps, 1 - $eps] before the log.
--   ECE      $bins equal-width bins of the prediction: sum over bins |sum(label) - sum(pred)| / n.
-- Input: eval_rows(slice, model, user_key, clicked, converted, p_click, p_conversion, ...).
-- (slice, model) pairs are numbered first so windows partition on small integers, not strings.
-- Speed: eval_rows is read once per head into user_score (one row per user and distinct prediction,
-- counting positives and negatives; labels are 0/1) and every metric is an aggregate of that table,
-- so the 10M-row scan, join and hash aggregation happen once instead of once per metric. Counts are
-- cast to DOUBLE before multiplying (BIGINT * 0.5 would go through DECIMAL arithmetic, 5x slower).
WITH keys AS (
    SELECT slice, model, row_number() OVER (ORDER BY slice, model) AS g
    FROM (SELECT DISTINCT slice, model FROM eval_rows)
), user_score AS MATERIALIZED (
    -- pos + neg rows share (user, prediction); logloss and ECE are linear in them, AUC and GAUC rank them.
    SELECT k.g, 0 AS h, e.user_key, e.p_click::DOUBLE AS pred,
           count(*) FILTER (WHERE e.clicked)::DOUBLE AS pos, count(*) FILTER (WHERE NOT e.clicked)::DOUBLE AS neg
    FROM eval_rows e JOIN keys k USING (slice, model) GROUP BY ALL
    UNION ALL
    SELECT k.g, 1 AS h, e.user_key, e.p_conversion::DOUBLE AS pred,
           count(*) FILTER (WHERE e.converted)::DOUBLE AS pos, count(*) FILTER (WHERE NOT e.converted)::DOUBLE AS neg
    FROM eval_rows e JOIN keys k USING (slice, model) GROUP BY ALL
), by_score AS (
    -- AUC needs the replicate weight on every row, so aggregate rows that share a score first.
    SELECT w.rep, x.g, x.h, x.pred, sum(w.w * x.pos) AS pos, sum(w.w * x.neg) AS neg
    FROM user_score x JOIN user_weights w ON w.user_key = x.user_key AND w.w > 0
    GROUP BY ALL
), by_score_cum AS (
    -- a running sum (default frame, streamed) minus the row itself: the negatives strictly below this score
    SELECT *, sum(neg) OVER (PARTITION BY rep, g, h ORDER BY pred ROWS UNBOUNDED PRECEDING) - neg AS neg_below
    FROM by_score
), auc AS (
    SELECT rep, g, h,
           CASE WHEN sum(pos) > 0 AND sum(neg) > 0
                THEN sum(pos * (neg_below + 0.5 * neg)) / (sum(pos) * sum(neg)) END AS value
    FROM by_score_cum GROUP BY ALL
), per_user_bin AS (
    -- logloss and ECE are sums, so they are summed per user once and the replicates weight users.
    SELECT g, h, user_key, least(floor(pred * $bins), $bins - 1)::INTEGER AS bin,
           sum(pos + neg) AS n, sum(pos) AS y, sum(pred * (pos + neg)) AS p,
           -sum(pos * ln(least(greatest(pred, $eps), 1 - $eps))
                + neg * ln(1 - least(greatest(pred, $eps), 1 - $eps))) AS ll
    FROM user_score GROUP BY ALL
), rep_bins AS (
    SELECT w.rep, u.g, u.h, u.bin,
           sum(w.w * u.n) AS n, sum(w.w * u.y) AS y, sum(w.w * u.p) AS p, sum(w.w * u.ll) AS ll
    FROM per_user_bin u JOIN user_weights w ON w.user_key = u.user_key AND w.w > 0
    GROUP BY ALL
), calibration AS (
    SELECT rep, g, h, sum(ll) / sum(n) AS logloss, sum(abs(y - p)) / sum(n) AS ece
    FROM rep_bins GROUP BY ALL
), user_cum AS (
    -- the one window per user left (measured faster than one running sum over (user, score) per head)
    SELECT *, sum(neg) OVER (PARTITION BY g, h, user_key ORDER BY pred ROWS UNBOUNDED PRECEDING) - neg AS neg_below
    FROM user_score
), user_auc AS (
    SELECT g, h, user_key, sum(pos * (neg_below + 0.5 * neg)) / (sum(pos) * sum(neg)) AS auc,
           sum(pos) + sum(neg) AS n
    FROM user_cum GROUP BY ALL
    HAVING sum(pos) > 0 AND sum(neg) > 0
), gauc AS (
    SELECT w.rep, u.g, u.h, sum(w.w * u.n * u.auc) / nullif(sum(w.w * u.n), 0) AS value
    FROM user_auc u JOIN user_weights w ON w.user_key = u.user_key AND w.w > 0
    GROUP BY ALL
), results AS (
    SELECT rep, g, h, '_auc' AS suffix, value FROM auc
    UNION ALL SELECT rep, g, h, '_gauc', value FROM gauc
    UNION ALL SELECT rep, g, h, '_logloss', logloss FROM calibration
    UNION ALL SELECT rep, g, h, '_ece', ece FROM calibration
)
SELECT r.rep, k.slice, k.model, CASE r.h WHEN 0 THEN 'click' ELSE 'conversion' END || r.suffix AS metric, r.value
FROM results r JOIN keys k USING (g);
