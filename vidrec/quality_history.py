"""The data-quality history: one JSON line per suite validation, and the pass-rate trends and
quarantine counts read back from it.

A JSONL file under the reports folder rather than a warehouse table because checks of a
multiprocess run write it in parallel and DuckDB admits one writing process.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from filelock import FileLock

from vidrec import plots  # noqa: F401  (selects the headless matplotlib backend first)

HISTORY_FILE = "quality_history.jsonl"
RUN_COLUMNS = ("run_id", "validated_at", "suite", "row_pass_rate", "success", "quarantined")
SUMMARY_COLUMNS = (
    "suite",
    "runs",
    "runs_passed_share",
    "latest_row_pass_rate",
    "mean_row_pass_rate",
    "latest_scanned",
    "latest_quarantined",
    "latest_data_docs",
)


@dataclass(frozen=True)
class QualityRecord:
    """One validation of one table against its suite, with the quarantine counts beside it."""

    validated_at: str  # ISO-8601 UTC
    run_id: str
    asset: str
    suite: str
    success: bool
    rows: int  # rows the suite judged
    rows_failed: int
    expectations_evaluated: int
    expectations_failed: int
    scanned: int  # rows of the asset: accepted + quarantined
    accepted: int
    quarantined: int
    data_docs: str | None = None  # URL of this run's Data Docs page

    def __post_init__(self) -> None:
        if self.scanned != self.accepted + self.quarantined:
            raise ValueError(
                f"{self.asset} in run {self.run_id}: scanned {self.scanned} != accepted "
                f"{self.accepted} + quarantined {self.quarantined}"
            )

    @property
    def row_pass_rate(self) -> float | None:
        return None if self.rows == 0 else 1.0 - self.rows_failed / self.rows


def history_path(reports: Path) -> Path:
    return reports / HISTORY_FILE


def append_record(path: Path, record: QualityRecord) -> None:
    """Append one line; a lock keeps lines whole when checks run in parallel processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=60), path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(record), sort_keys=True) + "\n")


def read_history(path: Path) -> pd.DataFrame:
    """Every record as a frame (empty, with the columns, when nothing was validated yet).

    A malformed line is an error naming the file and line: a silently skipped record would
    make a pass rate look better than it was.
    """
    columns = [f.name for f in fields(QualityRecord)]
    if not path.exists():
        return pd.DataFrame(columns=[*columns, "row_pass_rate"])
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(QualityRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            raise ValueError(f"{path}:{number} is not a quality record ({error}); fix or remove that line") from error
    frame = pd.DataFrame([asdict(r) for r in records], columns=columns)
    frame["row_pass_rate"] = [r.row_pass_rate for r in records]
    frame["validated_at"] = pd.to_datetime(frame["validated_at"], utc=True)
    return frame.sort_values(["validated_at", "suite"], kind="stable").reset_index(drop=True)


def pass_rates_by_run(history: pd.DataFrame) -> pd.DataFrame:
    """Per run (in time order) and suite: row pass rate, whether the suite passed, quarantined rows."""
    if history.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    # The latest validation of a suite within a run stands for that run (a re-executed check replaces it).
    latest = history.groupby(["run_id", "suite"], sort=False).tail(1)
    return latest[list(RUN_COLUMNS)].reset_index(drop=True)


def suite_summary(history: pd.DataFrame) -> pd.DataFrame:
    """One row per suite: runs validated, share of runs that passed, latest and mean row pass
    rate, and the latest quarantine counts."""
    per_run = pass_rates_by_run(history)
    if per_run.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    latest = history.groupby("suite").tail(1).set_index("suite")
    summary = per_run.groupby("suite").agg(
        runs=("run_id", "nunique"), runs_passed_share=("success", "mean"), mean_row_pass_rate=("row_pass_rate", "mean")
    )
    summary["latest_row_pass_rate"] = latest["row_pass_rate"]
    summary["latest_scanned"] = latest["scanned"]
    summary["latest_quarantined"] = latest["quarantined"]
    summary["latest_data_docs"] = latest["data_docs"]
    return summary.reset_index()[list(SUMMARY_COLUMNS)]


def pass_rate_plot(history: pd.DataFrame, path: Path) -> Path:
    """Row pass rate per suite over validation runs (top) and quarantined rows (bottom)."""
    per_run = pass_rates_by_run(history)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 4.8), dpi=100, sharex=True)
    for suite, rows in per_run.groupby("suite"):
        top.plot(rows["validated_at"], rows["row_pass_rate"], marker="o", label=suite)
        bottom.plot(rows["validated_at"], rows["quarantined"], marker="s", label=suite)
    top.set(title="Data quality over validation runs", ylabel="row pass rate")
    bottom.set(ylabel="quarantined rows", xlabel="validated at (UTC)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        if not per_run.empty:
            ax.legend(fontsize=7)
    fig.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
