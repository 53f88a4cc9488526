-- Simulated online A/B test on a demo world: each model's top K per hold-out session, with the world's
-- oracle giving the expected click (with the position bias of rank), watch time and conversion of
-- every shown slot. All arms see the same sessions (a paired design), so differences carry no
-- assignment noise; the bootstrap over users gives the intervals.
WITH per_session AS (
    SELECT model, session_id, any_value(user_key) AS user_key, count(*) AS slots,
           sum(oracle_click) AS clicks, sum(oracle_watch_s) AS watch_s, sum(oracle_conversion) AS conversions
    FROM top_k WHERE oracle_click IS NOT NULL GROUP BY model, session_id
), weighted AS (
    SELECT w.rep, p.model, sum(w.w * p.clicks) / sum(w.w * p.slots) AS ctr,
           sum(w.w * p.watch_s) / sum(w.w * p.slots) AS watch_per_impression,
           sum(w.w * p.watch_s) / sum(w.w) AS watch_per_session,
           sum(w.w * p.conversions) / sum(w.w * p.slots) AS conversion
    FROM per_session p JOIN user_weights w ON w.user_key = p.user_key AND w.w > 0
    GROUP BY ALL
)
SELECT rep, 'all' AS slice, model, 'ab_ctr_at_' || $k AS metric, ctr AS value FROM weighted
UNION ALL SELECT rep, 'all', model, 'ab_watch_s_per_impression_at_' || $k, watch_per_impression FROM weighted
UNION ALL SELECT rep, 'all', model, 'ab_watch_s_per_session_at_' || $k, watch_per_session FROM weighted
UNION ALL SELECT rep, 'all', model, 'ab_conversion_at_' || $k, conversion FROM weighted;
