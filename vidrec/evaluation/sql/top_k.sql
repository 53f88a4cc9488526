-- Re-rank each logged session by the model's blended score and measure its top K:
-- NDCG@K with clicks as gains (sessions with at least one click), and the clicks, watch time
-- and conversions that landed in the top K. Ties break on video_id so results are deterministic.
WITH s AS (
    SELECT
        session_id, clicked::INTEGER AS gain, watch_s, converted::INTEGER AS converted,
        row_number() OVER (PARTITION BY session_id ORDER BY score DESC, video_id) AS r,
        row_number() OVER (PARTITION BY session_id ORDER BY clicked DESC, video_id) AS ideal_r
    FROM scores WHERE model = $model
), per_session AS (
    SELECT
        session_id,
        sum(CASE WHEN r <= $k THEN gain / log2(r + 1) ELSE 0 END) AS dcg,
        sum(CASE WHEN ideal_r <= $k THEN gain / log2(ideal_r + 1) ELSE 0 END) AS idcg,
        sum(gain) AS clicks
    FROM s GROUP BY session_id
), top AS (
    SELECT avg(gain::DOUBLE) AS ctr, avg(watch_s) AS watch_s, avg(converted::DOUBLE) AS conversion
    FROM s WHERE r <= $k
)
SELECT
    (SELECT avg(dcg / idcg) FROM per_session WHERE clicks > 0) AS ndcg,
    (SELECT count(*) FROM per_session) AS sessions,
    top.ctr, top.watch_s, top.conversion
FROM top;
