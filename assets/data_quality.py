"""Data-quality reporting: Data Docs and a history row for every contract validation, and the
summary asset that shows pass rates per suite over time and the quarantine counts."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from assets.reporting import table_md
from assets.resources import VidrecStorage, warehouse_asset
from expectations.data_docs import build_data_docs
from expectations.validate import ValidationReport
from vidrec.plots import markdown_image
from vidrec.quality_history import (
    QualityRecord,
    append_record,
    history_path,
    pass_rate_plot,
    pass_rates_by_run,
    read_history,
    suite_summary,
)

GROUP = "quality"
DATA_DOCS_DIR = "data_docs"
# The assets whose blocking contract checks record validations (the summary runs after them).
CHECKED_ASSETS = ("video_probe", "video_metadata", "interactions")


def _plain(value: object) -> object:
    return getattr(value, "value", value)  # check metadata may hold MetadataValue wrappers


def record_validation(
    context: dg.AssetCheckExecutionContext,
    storage: VidrecStorage,
    asset: str,
    report: ValidationReport,
    result: dg.AssetCheckResult,
) -> dg.AssetCheckResult:
    """Render Data Docs for this validation run, append it to the quality history, and return
    ``result`` with a link to the Data Docs page in its metadata.

    ``result`` is a contract check's result; its scanned/accepted/quarantined counts go into
    the history so quarantine trends sit beside pass rates.
    """
    now = datetime.now(UTC)
    pages = build_data_docs(report, storage.paths.reports / DATA_DOCS_DIR, asset, context.run.run_id, now)
    counts = {key: int(_plain(result.metadata[key])) for key in ("scanned", "accepted", "quarantined")}
    append_record(
        history_path(storage.paths.reports),
        QualityRecord(
            validated_at=now.isoformat(),
            run_id=context.run.run_id,
            asset=asset,
            suite=report.suite,
            success=bool(report.success),
            rows=report.rows,
            rows_failed=len(report.row_failures),
            expectations_evaluated=report.evaluated,
            expectations_failed=len(report.failed),
            data_docs=pages.url,
            **counts,
        ),
    )
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=result.severity,
        description=result.description,
        metadata={
            **result.metadata,
            "data_docs": dg.MetadataValue.url(pages.url),
            "data_docs_index": dg.MetadataValue.path(str(pages.index)),
        },
    )


@warehouse_asset(GROUP, retry=False, deps=list(CHECKED_ASSETS))
def data_quality_summary(context: dg.AssetExecutionContext, storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """Pass rates per Great Expectations suite over time and quarantine counts, from the history
    every contract check appends to, with links to each run's Data Docs."""
    history = read_history(history_path(storage.paths.reports))
    summary = suite_summary(history)
    per_run = pass_rates_by_run(history)
    plot = pass_rate_plot(history, storage.paths.reports / context.run.run_id / "data_quality.png")
    this_run = history[history["run_id"] == context.run.run_id]
    if this_run.empty:
        context.log.warning("no contract check of this run recorded a validation; the summary shows earlier runs only")
    index = storage.paths.reports / DATA_DOCS_DIR / "uncommitted" / "data_docs" / "local_site" / "index.html"
    shown = per_run.tail(30).assign(validated_at=lambda f: f["validated_at"].astype(str))
    return dg.Output(
        summary,
        metadata={
            "suites": table_md(summary.drop(columns=["latest_data_docs"]).round(4)),
            "pass_rate_trend": dg.MetadataValue.md(
                markdown_image(plot, "row pass rate and quarantined rows per suite")
            ),
            "recent_validations": table_md(shown.round(4), limit=30),
            "validations_recorded": len(history),
            "validations_this_run": len(this_run),
            "quarantined_this_run": int(this_run["quarantined"].sum()) if len(this_run) else 0,
            "data_docs_index": dg.MetadataValue.path(str(index)),
            "history": dg.MetadataValue.path(str(history_path(storage.paths.reports))),
        },
    )
