-- Click AUC by the rank-sum (Mann-Whitney U) identity, with tied scores given their average rank.
WITH s AS (
    SELECT clicked, p_click FROM scores WHERE model = $model
), ranked AS (
    SELECT
        clicked,
        rank() OVER (ORDER BY p_click) + (count(*) OVER (PARTITION BY p_click) - 1) / 2.0 AS avg_rank
    FROM s
), totals AS (
    SELECT
        sum(CASE WHEN clicked THEN avg_rank ELSE 0 END) AS rank_sum,
        count(*) FILTER (WHERE clicked)::DOUBLE AS n_pos,
        count(*) FILTER (WHERE NOT clicked)::DOUBLE AS n_neg
    FROM ranked
)
SELECT CASE WHEN n_pos = 0 OR n_neg = 0 THEN NULL
            ELSE (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg) END AS click_auc
FROM totals;
