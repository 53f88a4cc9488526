"""The item catalogue as one asset: built once from the media and metadata tables and consumed by every
training and evaluation asset (each used to rebuild it from the same four tables)."""

import dagster as dg
import pandas as pd

from assets.reporting import table_md
from assets.resources import RawData
from vidrec.commerce_tables import read_products
from vidrec.items import build_items, with_products
from vidrec.upload_source import UPLOAD

GROUP = "media"


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=["team:ml-platform"])
def items(
    video_probe: pd.DataFrame,
    video_metadata: pd.DataFrame,
    video_features: pd.DataFrame,
    text_features: pd.DataFrame,
    raw_data: RawData,
) -> dg.Output[pd.DataFrame]:
    """The item catalogue the models train on and serve: accepted videos joined with their metadata, feature
    shards, text embeddings and the SKU and brand they sell (the data's products); every accepted video that
    is not an item is listed with the reason."""
    table, excluded = build_items(video_probe, video_metadata, video_features, text_features)
    table = with_products(table, read_products(raw_data.directory))
    # A video_probe table written before uploads were a source has no `source` column: no uploads then.
    uploaded = video_probe["source"].eq(UPLOAD) if "source" in video_probe else pd.Series(False, video_probe.index)
    return dg.Output(
        table,
        metadata={
            "items": len(table),
            "excluded": len(excluded),
            "excluded_videos": table_md(excluded),
            "with_visual": int(table["has_visual"].sum()) if len(table) else 0,
            "with_audio": int(table["has_audio"].sum()) if len(table) else 0,
            "with_text": int(table["has_text"].sum()) if len(table) else 0,
            "with_product": int(table["sku"].notna().sum()),
            # Uploads the service landed that are items now (vidrec/upload_source.py).
            "from_uploads": int(table["video_id"].isin(set(video_probe.loc[uploaded, "video_id"])).sum()),
        },
    )
