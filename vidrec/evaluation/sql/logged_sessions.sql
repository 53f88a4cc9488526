-- The logged sessions that top_k covers (a seeded sample of them on very large hold-outs), once each:
-- their slots and the logging policy's summed rewards (off_policy.sql), and their distinct clicked items,
-- the relevant set of catalogue recall (catalogue.sql). Materialised once as table logged_sessions.
-- Speed: len(list_distinct(list(...))) adds a tenth of what count(DISTINCT ...) added to this query
-- at 10M rows (top_k_match.sql counts its hits the same way).
SELECT session_id, any_value(user_key) AS user_key, count(*) AS n_slots, sum(clicked::DOUBLE) AS click,
       sum(watch_s) AS watch_s, sum(converted::DOUBLE) AS conversion,
       coalesce(len(list_distinct(list(video_id) FILTER (WHERE clicked))), 0) AS relevant
FROM impressions
WHERE session_id IN (SELECT session_id FROM top_k)
GROUP BY session_id
