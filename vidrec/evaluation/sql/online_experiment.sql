-- Live A/B per arm and bootstrap replicate (model = the arm): CTR@K (clicks / impressions at position < K),
-- watch seconds per impression and conversions per impression. Users are the resampling unit
-- (user_weights, vidrec.evaluation.tables.bootstrap_weights); the arms hold different users, so one
-- replicate resamples both arms independently and intervals.sql / paired.sql read the result as usual.
WITH per_user AS (
    SELECT arm, user_key, count(*) AS impressions,
           count(*) FILTER (WHERE position < $k) AS top_impressions,
           count(*) FILTER (WHERE position < $k AND clicked) AS top_clicks,
           sum(watch_s) AS watch_s,
           count(*) FILTER (WHERE converted) AS conversions
    FROM experiment_impressions GROUP BY arm, user_key
), weighted AS (
    SELECT w.rep, p.arm,
           sum(w.w * p.top_clicks) / nullif(sum(w.w * p.top_impressions), 0) AS ctr,
           sum(w.w * p.watch_s) / nullif(sum(w.w * p.impressions), 0) AS watch_per_impression,
           sum(w.w * p.conversions) / nullif(sum(w.w * p.impressions), 0) AS conversion
    FROM per_user p JOIN user_weights w ON w.user_key = p.user_key AND w.w > 0
    GROUP BY ALL
)
SELECT rep, 'all' AS slice, arm AS model, 'ctr_at_' || $k AS metric, ctr AS value FROM weighted
UNION ALL SELECT rep, 'all', arm, 'watch_s_per_impression', watch_per_impression FROM weighted
UNION ALL SELECT rep, 'all', arm, 'conversion_rate', conversion FROM weighted;
