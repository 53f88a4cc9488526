"""Helpers that turn domain results into Dagster metadata (tables, reconciled counts)."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import pandas as pd

from expectations.validate import ValidationReport


def table_md(frame: pd.DataFrame, limit: int = 20) -> dg.MetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_none_")
    shown = frame.head(limit)
    more = f"\n\n… and {len(frame) - limit} more" if len(frame) > limit else ""
    return dg.MetadataValue.md(shown.to_markdown(index=False) + more)


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """scanned = accepted + quarantined, always reported together."""
    accepted = int((frame["status"] == "accepted").sum())
    return {"scanned": len(frame), "accepted": accepted, "quarantined": len(frame) - accepted}


def quarantine_metadata(frame: pd.DataFrame, id_column: str) -> dict[str, object]:
    quarantined = frame[frame["status"] != "accepted"][[id_column, "reason"]]
    return {**status_counts(frame), "quarantine": table_md(quarantined)}


def contract_check(frame: pd.DataFrame, report: ValidationReport, id_column: str) -> dg.AssetCheckResult:
    """Every row the suite rejects must be quarantined, no accepted row may break it, and
    counts must reconcile. Metadata lists each failed expectation with counts and examples."""
    quarantined = set(frame.loc[frame["status"] != "accepted", id_column].astype(str))
    leaked = sorted(set(report.row_failures) - quarantined)
    counts = status_counts(frame)
    reasons_missing = int(frame.loc[frame["status"] != "accepted", "reason"].isna().sum())
    passed = not leaked and counts["scanned"] == counts["accepted"] + counts["quarantined"] and not reasons_missing
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **counts,
            "accepted_rows_failing_suite": len(leaked),
            "examples_failing_but_accepted": leaked[:5],
            "quarantined_without_reason": reasons_missing,
            "validation": dg.MetadataValue.json(report.as_metadata()),
        },
    )


def failed_check_lines(evaluations: Iterable[dg.AssetCheckEvaluation]) -> list[str]:
    """``asset:check (SEVERITY): rule; rule`` for each evaluation that did not pass (the rules the gate
    records as ``failed_rules``), for the DVC stage runner and the demo's run outcome alike."""
    lines = []
    for e in evaluations:
        if e.passed:
            continue
        rules = e.metadata.get("failed_rules")
        detail = f": {'; '.join(rules.value)}" if rules is not None and rules.value else ""
        lines.append(f"{e.asset_key.to_user_string()}:{e.check_name} ({e.severity.value}){detail}")
    return lines
