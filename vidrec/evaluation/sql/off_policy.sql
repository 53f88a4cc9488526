-- Off-policy estimates of each model's top K (table top_k: the K items it would show per session)
-- from the logged impressions and their propensities mu(item | user, t) (probability the logging
-- policy draws the item at a slot). The target policy shows each of its K items with probability
-- 1/K per slot, so a logged impression carries the importance weight
--     w = min(1 / (K * mu), max_weight)           -- 0 when the item is not in the model's top K
-- (computed in top_k_match.sql; max_weight is SuiteSettings.max_weight). Clipping at max_weight
-- bounds the variance at the price of a downward bias on the items the logging policy rarely
-- showed. Per slot, IPS = sum(w * reward) / slots and
-- SNIPS = sum(w * reward) / sum(w). Rewards were observed at their logged positions, so both
-- estimate the target's items under the logging policy's position mix. Per-session watch time is
-- K times the per-slot value. `logging_policy` is the on-policy average (every weight 1), added
-- when $logging_policy is true (SuiteSettings.logging_policy).
-- Input: logged_sessions (logged_sessions.sql) and top_k_match (top_k_match.sql), built from top_k and
-- impressions once for this query and catalogue.sql.
WITH per_session AS (   -- every (model, covered session), and the logging policy's own row per session
    SELECT m.model, s.user_key, s.n_slots, x.sw, x.click, x.watch_s, x.conversion
    FROM (SELECT DISTINCT model FROM top_k_match) m
    CROSS JOIN logged_sessions s
    LEFT JOIN top_k_match x ON x.model = m.model AND x.session_id = s.session_id
    UNION ALL
    SELECT 'logging_policy', user_key, n_slots, n_slots, click, watch_s, conversion FROM logged_sessions WHERE $logging_policy
), weighted AS (
    SELECT w.rep, p.model,
           sum(w.w * coalesce(p.click, 0) / p.n_slots) / sum(w.w) AS ctr_ips,
           sum(w.w * coalesce(p.click, 0)) / nullif(sum(w.w * coalesce(p.sw, 0)), 0) AS ctr_snips,
           sum(w.w * coalesce(p.watch_s, 0) / p.n_slots) / sum(w.w) AS watch_ips,
           sum(w.w * coalesce(p.watch_s, 0)) / nullif(sum(w.w * coalesce(p.sw, 0)), 0) AS watch_snips,
           sum(w.w * coalesce(p.conversion, 0) / p.n_slots) / sum(w.w) AS conversion_ips,
           sum(w.w * coalesce(p.conversion, 0)) / nullif(sum(w.w * coalesce(p.sw, 0)), 0) AS conversion_snips
    FROM per_session p JOIN user_weights w ON w.user_key = p.user_key AND w.w > 0
    GROUP BY ALL
)
SELECT rep, 'all' AS slice, model, 'ctr_at_' || $k || '_ips' AS metric, ctr_ips AS value FROM weighted
UNION ALL SELECT rep, 'all', model, 'ctr_at_' || $k || '_snips', ctr_snips FROM weighted
UNION ALL SELECT rep, 'all', model, 'watch_s_per_impression_at_' || $k || '_ips', watch_ips FROM weighted
UNION ALL SELECT rep, 'all', model, 'watch_s_per_impression_at_' || $k || '_snips', watch_snips FROM weighted
UNION ALL SELECT rep, 'all', model, 'watch_s_per_session_at_' || $k || '_ips', $k * watch_ips FROM weighted
UNION ALL SELECT rep, 'all', model, 'watch_s_per_session_at_' || $k || '_snips', $k * watch_snips FROM weighted
UNION ALL SELECT rep, 'all', model, 'conversion_at_' || $k || '_ips', conversion_ips FROM weighted
UNION ALL SELECT rep, 'all', model, 'conversion_at_' || $k || '_snips', conversion_snips FROM weighted;
