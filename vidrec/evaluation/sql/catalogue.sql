-- Catalogue coverage (distinct items in any top K / $catalogue_size) and novelty (mean self-information
-- -log2 p(item) over the shown slots, p = (users who clicked it in training + 1) / ($n_users + 1), the +1
-- keeping never-clicked items finite) of each model's top K per session; and catalogue recall
-- (per session with a click that the model's top K covers, the share of its distinct clicked items
-- that the top K from the whole catalogue contains; mean over those sessions), the full-ranking
-- measure that needs no non-clicked impressions, so a positives-only log still has a quality metric.
-- Only covered sessions count: above models.holdout.MAX_TOP_K_SESSIONS the top K is computed for a
-- seeded sample of sessions, and a session with no top K is unmeasured, not a miss.
-- Speed: catalogue recall counts hits with one left join of the distinct clicked (session, item) pairs to
-- top_k; a per-session count plus a separate join of top_k to the clicked pairs was 15% slower at 10M rows.
SELECT w.rep, 'all' AS slice, t.model, 'coverage_at_' || $k AS metric,
       count(DISTINCT t.video_id) / $catalogue_size AS value
FROM top_k t JOIN user_weights w ON w.user_key = t.user_key AND w.w > 0
GROUP BY ALL
UNION ALL
SELECT w.rep, 'all', t.model, 'novelty_at_' || $k,
       sum(w.w * -log2((coalesce(c.engaged_users, 0) + 1) / ($n_users + 1))) / sum(w.w)
FROM top_k t JOIN user_weights w ON w.user_key = t.user_key AND w.w > 0
LEFT JOIN catalogue c ON c.video_id = t.video_id
GROUP BY ALL
UNION ALL
SELECT w.rep, 'all', p.model, 'catalogue_recall_at_' || $k, sum(w.w * p.hits / p.relevant) / sum(w.w)
FROM (   -- per (model, session with a click): its distinct clicked items, and how many of them the top K holds
    SELECT m.model, c.session_id, any_value(c.user_key) AS user_key, count(*) AS relevant, count(t.video_id) AS hits
    FROM (SELECT session_id, video_id, any_value(user_key) AS user_key FROM impressions WHERE clicked GROUP BY ALL) c
    JOIN (SELECT DISTINCT model, session_id FROM top_k) m ON m.session_id = c.session_id
    LEFT JOIN top_k t ON t.model = m.model AND t.session_id = c.session_id AND t.video_id = c.video_id
    GROUP BY ALL
) p
JOIN user_weights w ON w.user_key = p.user_key AND w.w > 0
GROUP BY ALL;
