"""What the pretrained backbone recognises in each video, as a validated table (``video_tags``)."""

import dagster as dg
import pandas as pd

from assets.data_quality import record_validation
from assets.media import GROUP
from assets.resources import FOLLOW_UPSTREAM, VidrecStorage, warehouse_asset
from expectations.validate import validate_frame
from vidrec.media.recognition import tags_table, top_tags_md


@warehouse_asset(GROUP, retry=False, automation_condition=FOLLOW_UPSTREAM)
def video_tags(video_features: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Top ImageNet labels per video (EfficientNet-Lite0 class probabilities averaged over its sampled
    frames) with their confidence: what search, filters and the API's item payloads call ``tags``."""
    tags = tags_table(video_features)
    recognised = video_features["recognised"].notna() if "recognised" in video_features else pd.Series(dtype=bool)
    return dg.Output(
        tags,
        metadata={
            "videos_tagged": int(tags["video_id"].nunique()),
            "videos_without_tags": int((~recognised).sum()),
            "tags": len(tags),
            "distinct_tags": int(tags["tag"].nunique()),
            "top_tags": dg.MetadataValue.md(top_tags_md(tags)),
        },
    )


@dg.asset_check(asset=video_tags, blocking=True)
def video_tags_contract(
    context: dg.AssetCheckExecutionContext, video_tags: pd.DataFrame, storage: VidrecStorage
) -> dg.AssetCheckResult:
    """Every tag row satisfies the `video_tags` suite (a probability, a real class, one rank per tag)."""
    report = validate_frame(video_tags, "video_tags", "tag_id")
    result = dg.AssetCheckResult(
        passed=bool(report.success),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            # The counts the quality history records: tag rows are not quarantined one by one (a bad row is
            # a bug in recognition, so the check fails), "quarantined" counts the rows the suite rejects.
            "scanned": len(video_tags),
            "accepted": len(video_tags) - len(report.row_failures),
            "quarantined": len(report.row_failures),
            "failed_expectations": [f.description for f in report.failed][:10],
            "examples_failing": sorted(report.row_failures)[:5],
        },
    )
    return record_validation(context, storage, "video_tags", report, result)
