-- Absolute difference (candidate - baseline) per metric within each bootstrap replicate, with its 95%
-- percentile interval (paired.sql gives the relative difference the same way).
WITH pairs AS (
    SELECT c.rep, c.slice, c.metric, c.value - b.value AS diff
    FROM metric_reps c
    JOIN metric_reps b ON b.rep = c.rep AND b.slice = c.slice AND b.metric = c.metric AND b.model = $baseline
    WHERE c.model = $candidate
)
SELECT slice, $candidate || '_minus_' || $baseline AS model, metric,
       any_value(diff) FILTER (WHERE rep = 0) AS value,
       quantile_cont(diff, 0.025) FILTER (WHERE rep > 0) AS ci_low,
       quantile_cont(diff, 0.975) FILTER (WHERE rep > 0) AS ci_high,
       count(diff) FILTER (WHERE rep > 0) AS resamples
FROM pairs
GROUP BY ALL
ORDER BY slice, metric;
