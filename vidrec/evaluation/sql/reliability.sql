-- Reliability diagram data: per equal-width bin of the prediction, mean prediction and observed rate.
WITH heads AS (
    SELECT model, 'click' AS head, clicked::DOUBLE AS label, p_click::DOUBLE AS pred FROM eval_rows
    UNION ALL
    SELECT model, 'conversion', converted::DOUBLE, p_conversion::DOUBLE FROM eval_rows
)
SELECT model, head, least(floor(pred * $bins), $bins - 1)::INTEGER AS bin,
       count(*) AS n, avg(pred) AS mean_pred, avg(label) AS observed
FROM heads GROUP BY ALL ORDER BY model, head, bin;
