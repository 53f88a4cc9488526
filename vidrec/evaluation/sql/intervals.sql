-- Point estimate (replicate 0) and the 95% percentile bootstrap interval (replicates 1..R) per metric.
SELECT slice, model, metric,
       any_value(value) FILTER (WHERE rep = 0) AS value,
       quantile_cont(value, 0.025) FILTER (WHERE rep > 0) AS ci_low,
       quantile_cont(value, 0.975) FILTER (WHERE rep > 0) AS ci_high,
       count(value) FILTER (WHERE rep > 0) AS resamples
FROM metric_reps
GROUP BY ALL
ORDER BY slice, model, metric;
