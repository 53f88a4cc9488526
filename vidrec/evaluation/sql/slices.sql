-- Every scored impression once per slice it belongs to: cold-start items (not seen in training),
-- new users (no training events), category, product vs non-product, live-stream hosts.
-- Only the columns the metric queries read are kept (the same as metrics.EVAL_ROW_COLUMNS).
WITH rows AS (
    SELECT s.model, i.session_id, i.user_key, i.video_id, i.clicked, i.converted, s.p_click, s.p_conversion,
           s.score, i.cold_item, i.new_user, i.category, i.is_product, i.is_live_host
    FROM scores s JOIN impressions i USING (event_id)
)
SELECT 'cold_item=' || cold_item AS slice, * EXCLUDE (cold_item, new_user, category, is_product, is_live_host)
FROM rows
UNION ALL SELECT 'new_user=' || new_user, * EXCLUDE (cold_item, new_user, category, is_product, is_live_host) FROM rows
UNION ALL SELECT 'category=' || category, * EXCLUDE (cold_item, new_user, category, is_product, is_live_host) FROM rows
UNION ALL SELECT 'is_product=' || is_product, * EXCLUDE (cold_item, new_user, category, is_product, is_live_host)
FROM rows
UNION ALL SELECT 'is_live_host=' || is_live_host, * EXCLUDE (cold_item, new_user, category, is_product, is_live_host)
FROM rows;
