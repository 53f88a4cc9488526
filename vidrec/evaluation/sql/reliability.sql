-- Reliability diagram data: per equal-width bin of the prediction, mean prediction and observed rate.
WITH heads AS (
    SELECT gu // 4294967296 AS g, 'click' AS head, clicked::DOUBLE AS label, p_click::DOUBLE AS pred FROM eval_rows
    UNION ALL
    SELECT gu // 4294967296, 'conversion', converted::DOUBLE, p_conversion::DOUBLE FROM eval_rows
)
SELECT k.model, h.head, least(floor(h.pred * $bins), $bins - 1)::INTEGER AS bin,
       count(*) AS n, avg(h.pred) AS mean_pred, avg(h.label) AS observed
FROM heads h JOIN eval_keys k USING (g) GROUP BY ALL ORDER BY k.model, h.head, bin;
