-- Every scored impression once per slice it belongs to: cold-start items (not seen in training),
-- new users (no training events), category, product vs non-product, live-stream hosts.
WITH rows AS (SELECT * FROM scores JOIN impressions USING (event_id))
SELECT 'cold_item=' || cold_item AS slice, * FROM rows
UNION ALL SELECT 'new_user=' || new_user, * FROM rows
UNION ALL SELECT 'category=' || category, * FROM rows
UNION ALL SELECT 'is_product=' || is_product, * FROM rows
UNION ALL SELECT 'is_live_host=' || is_live_host, * FROM rows;
