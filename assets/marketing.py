"""Campaign audiences for an ad platform, from the production model (models.marketing.export)."""

import dagster as dg

from assets.model_store import champion_directory
from assets.reporting import table_md
from assets.resources import VidrecStorage
from models.marketing.audience import MIN_AUDIENCE
from models.marketing.export import Campaign, export_audiences, lift_plot
from vidrec.plots import markdown_image

GROUP = "marketing"


class CampaignsConfig(dg.Config):
    """Campaigns by name → video_ids; none configured: one campaign per category's product videos."""

    campaigns: dict[str, list[str]] = {}
    n: int = 1000
    min_size: int = MIN_AUDIENCE
    objective: str = "conversion"  # or "click"


@dg.asset(group_name=GROUP, kinds={"bentoml", "parquet"}, owners=["team:ml-platform"], deps=["promoted_model"])
def marketing_audiences(
    context: dg.AssetExecutionContext, config: CampaignsConfig, storage: VidrecStorage
) -> dg.MaterializeResult:
    """Top-N pseudonymised users per campaign by the production model's predicted conversion (Parquet + CSV);
    campaigns whose audience would be below the minimum size are not exported, with the reason."""
    if config.objective not in ("conversion", "click"):
        raise ValueError(f"objective {config.objective!r} must be 'conversion' or 'click'")
    champion = champion_directory(storage.paths.registry)
    if champion is None:
        raise RuntimeError("no production model yet: materialise promoted_model before marketing_audiences")
    tag, directory = champion
    campaigns = [Campaign(name, tuple(videos)) for name, videos in config.campaigns.items()] or None
    out_dir = storage.paths.root / "marketing" / context.run_id
    audiences, summary = export_audiences(directory, campaigns, out_dir, config.n, config.min_size, config.objective)  # type: ignore[arg-type]
    plot = lift_plot(summary, out_dir / "lift.png")
    exported = summary[summary["status"] == "exported"]
    return dg.MaterializeResult(
        metadata={
            "model_tag": tag,
            "campaigns": len(summary),
            "exported": len(exported),
            "audience_rows": len(audiences),
            "min_size": config.min_size,
            "mean_predicted_lift": float(exported["predicted_lift"].mean()) if len(exported) else float("nan"),
            "summary": table_md(summary),
            "lift_plot": dg.MetadataValue.md(markdown_image(plot, "predicted lift per campaign")),
            "parquet": dg.MetadataValue.path(str(out_dir / "audiences.parquet")),
            "csv": dg.MetadataValue.path(str(out_dir / "audiences.csv")),
        }
    )
