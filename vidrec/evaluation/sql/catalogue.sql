-- Catalogue coverage (distinct items in any top K / $catalogue_size) and novelty (mean self-information
-- -log2 p(item) over the shown slots, p = (users who clicked it in training + 1) / ($n_users + 1), the +1
-- keeping never-clicked items finite) of each model's top K per session; and catalogue recall
-- (per session with a click that the model's top K covers, the share of its distinct clicked items
-- that the top K from the whole catalogue contains; mean over those sessions), the full-ranking
-- measure that needs no non-clicked impressions, so a positives-only log still has a quality metric;
-- and catalogue NDCG over the same sessions (binary gains on the session's clicked items, ideal DCG
-- over min(relevant, K) hits): the served NDCG@K the gate compares with the champion.
-- Only covered sessions count: above models.offline.holdout.MAX_TOP_K_SESSIONS the top K is computed for a
-- seeded sample of sessions, and a session with no top K is unmeasured, not a miss.
-- Input: top_k, catalogue, and for catalogue recall logged_sessions (logged_sessions.sql: each covered
-- session's distinct clicked items, `relevant`) and top_k_match (top_k_match.sql: how many of them the
-- model's top K holds, `hits`).
SELECT w.rep, 'all' AS slice, t.model, 'coverage_at_' || $k AS metric,
       count(DISTINCT t.video_id) / $catalogue_size AS value
FROM top_k t JOIN user_weights w ON w.user_key = t.user_key AND w.w > 0
GROUP BY ALL
UNION ALL
SELECT w.rep, 'all', p.model, 'novelty_at_' || $k, sum(w.w * p.info) / sum(w.w * p.slots)
FROM (   -- summed per (model, user) first, so each replicate joins users instead of every shown slot
    SELECT t.model, t.user_key, sum(-log2((coalesce(c.engaged_users, 0) + 1) / ($n_users + 1))) AS info,
           count(*) AS slots
    FROM top_k t LEFT JOIN catalogue c ON c.video_id = t.video_id
    GROUP BY ALL
) p
JOIN user_weights w ON w.user_key = p.user_key AND w.w > 0
GROUP BY ALL
UNION ALL
SELECT w.rep, 'all', x.model, 'catalogue_recall_at_' || $k, sum(w.w * x.hits / s.relevant) / sum(w.w)
FROM top_k_match x JOIN logged_sessions s ON s.session_id = x.session_id AND s.relevant > 0
JOIN user_weights w ON w.user_key = x.user_key AND w.w > 0
GROUP BY ALL
UNION ALL
SELECT w.rep, 'all', x.model, 'catalogue_ndcg_at_' || $k,
       sum(w.w * x.dcg / list_sum(list_transform(range(1, least(s.relevant, $k)::BIGINT + 1), lambda i: 1.0 / log2(i + 1))))
       / sum(w.w)
FROM top_k_match x JOIN logged_sessions s ON s.session_id = x.session_id AND s.relevant > 0
JOIN user_weights w ON w.user_key = x.user_key AND w.w > 0
GROUP BY ALL;
