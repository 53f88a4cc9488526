-- Relative difference (candidate - baseline) / |baseline| per metric, paired within each bootstrap
-- replicate (both models evaluated on the same resampled users), with its 95% percentile interval.
WITH pairs AS (
    SELECT c.rep, c.slice, c.metric, (c.value - b.value) / nullif(abs(b.value), 0) AS rel
    FROM metric_reps c
    JOIN metric_reps b ON b.rep = c.rep AND b.slice = c.slice AND b.metric = c.metric AND b.model = $baseline
    WHERE c.model = $candidate
)
SELECT slice, $candidate || '_vs_' || $baseline AS model, metric,
       any_value(rel) FILTER (WHERE rep = 0) AS value,
       quantile_cont(rel, 0.025) FILTER (WHERE rep > 0) AS ci_low,
       quantile_cont(rel, 0.975) FILTER (WHERE rep > 0) AS ci_high,
       count(rel) FILTER (WHERE rep > 0) AS resamples
FROM pairs
GROUP BY ALL
ORDER BY slice, metric;
