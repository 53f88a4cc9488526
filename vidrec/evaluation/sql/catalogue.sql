-- Catalogue coverage (distinct items in any top K / $catalogue_size) and novelty (mean self-information
-- -log2 p(item) over the shown slots, p = (users who clicked it in training + 1) / ($n_users + 1), the +1
-- keeping never-clicked items finite) of each model's top K per session.
SELECT w.rep, 'all' AS slice, t.model, 'coverage_at_' || $k AS metric,
       count(DISTINCT t.video_id) / $catalogue_size AS value
FROM top_k t JOIN user_weights w ON w.user_key = t.user_key AND w.w > 0
GROUP BY ALL
UNION ALL
SELECT w.rep, 'all', t.model, 'novelty_at_' || $k,
       sum(w.w * -log2((coalesce(c.engaged_users, 0) + 1) / ($n_users + 1))) / sum(w.w)
FROM top_k t JOIN user_weights w ON w.user_key = t.user_key AND w.w > 0
LEFT JOIN catalogue c ON c.video_id = t.video_id
GROUP BY ALL;
