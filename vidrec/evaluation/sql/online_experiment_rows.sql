-- The running experiment's logged impressions (one row per impression, its events joined by the warehouse's
-- logged_impressions view): only impressions since the experiment started, each served by its arm's model
-- (a request answered while the challenger was still loading is logged as production with production's
-- tag and stays in). An impression without an event is a shown, unclicked slot.
SELECT user_key, arm, position,
       coalesce(clicked, false) AS clicked,
       coalesce(watch_s, 0.0) AS watch_s,
       coalesce(converted, false) AS converted
FROM logged_impressions
WHERE CAST(ts AS TIMESTAMPTZ) >= CAST($started_at AS TIMESTAMPTZ)
  AND ((arm = 'production' AND model_tag = $production_tag) OR (arm = 'challenger' AND model_tag = $challenger_tag));
