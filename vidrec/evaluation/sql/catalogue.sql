-- Catalogue coverage (distinct items in any top K / $catalogue_size) and novelty (mean self-information
-- -log2 p(item) over the shown slots, p = (users who clicked it in training + 1) / ($n_users + 1), the +1
-- keeping never-clicked items finite) of each model's top K per session; and catalogue recall
-- (per session with a click, the share of its distinct clicked items that the model's top K from the
-- whole catalogue contains; mean over those sessions), the full-ranking measure that needs no
-- non-clicked impressions, so a positives-only log still has a quality metric.
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
SELECT w.rep, 'all', m.model, 'catalogue_recall_at_' || $k,
       sum(w.w * coalesce(h.hits, 0) / r.relevant) / sum(w.w)
FROM (SELECT session_id, any_value(user_key) AS user_key, count(DISTINCT video_id) AS relevant
      FROM impressions WHERE clicked GROUP BY session_id) r
CROSS JOIN (SELECT DISTINCT model FROM top_k) m
JOIN user_weights w ON w.user_key = r.user_key AND w.w > 0
LEFT JOIN (SELECT t.model, t.session_id, count(*) AS hits
           FROM top_k t
           JOIN (SELECT DISTINCT session_id, video_id FROM impressions WHERE clicked) c
             ON c.session_id = t.session_id AND c.video_id = t.video_id
           GROUP BY ALL) h ON h.model = m.model AND h.session_id = r.session_id
GROUP BY ALL;
