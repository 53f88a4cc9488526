"""Data-quality reporting: each contract validation renders Great Expectations Data Docs and
appends a history row; the summary asset turns the history into pass rates and quarantine
counts over runs."""

import csv
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster_duckdb_pandas import DuckDBPandasIOManager

from assets import data_quality as quality
from assets import media
from assets.resources import VidrecStorage
from expectations.data_docs import build_data_docs
from expectations.validate import ValidationReport, validate_frame
from vidrec.ingest import quarantine, with_text
from vidrec.quality_history import QualityRecord, append_record, history_path, read_history
from vidrec.sources import METADATA_COLUMNS, read_metadata


def _metadata_csv(directory: Path, bad_rows: int) -> Path:
    """Five good rows and ``bad_rows`` rows with a negative price (the suite rejects them)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(METADATA_COLUMNS))
        writer.writeheader()
        for i in range(5 + bad_rows):
            writer.writerow(
                {
                    "video_id": f"v{i:03d}",
                    "title": f"clip {i}",
                    "description": "",
                    "tags": "calm",
                    "category": "music",
                    "creator_id": "c001",
                    "is_product": "false",
                    "price": "" if i < 5 else "-3.50",
                    "is_live_host": "false",
                    "published_at": "2024-03-01T00:00:00Z",
                }
            )
    return directory


def _run(root: Path, data: Path) -> dg.ExecuteInProcessResult:
    """A stand-in ``video_metadata`` (read, validated, quarantined as the real asset does), the
    real contract check, and the summary."""

    @dg.asset(name="video_metadata")
    def video_metadata() -> pd.DataFrame:
        metadata = with_text(read_metadata(data))
        return quarantine(metadata, validate_frame(metadata, "video_metadata", "video_id").row_failures, "video_id")

    return dg.materialize(
        [video_metadata, media.video_metadata_contract, quality.data_quality_summary],
        resources={
            "storage": VidrecStorage(root=str(root)),
            "warehouse_io": DuckDBPandasIOManager(database=str(root / "w.duckdb"), schema="vidrec"),
        },
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dg.ExecuteInProcessResult]]:
    root = tmp_path_factory.mktemp("quality-root")
    clean = _metadata_csv(tmp_path_factory.mktemp("clean"), bad_rows=0)
    dirty = _metadata_csv(tmp_path_factory.mktemp("dirty"), bad_rows=2)
    return root, [_run(root, clean), _run(root, dirty)]


def test_each_validation_links_its_data_docs_page(two_runs) -> None:
    root, runs = two_runs
    for run in runs:
        assert run.success
        (evaluation,) = run.get_asset_check_evaluations()
        assert evaluation.passed  # bad rows are quarantined, so the contract holds
        url = evaluation.metadata["data_docs"].value
        page = Path(url.removeprefix("file://"))
        assert page.is_file() and run.run_id in str(page)
        assert "video_metadata" in page.read_text()
    index = Path(runs[-1].get_asset_check_evaluations()[0].metadata["data_docs_index"].value)
    listing = index.read_text()
    assert all(run.run_id in listing for run in runs)  # the index lists every run's validation


def test_history_records_pass_rates_and_quarantine_counts(two_runs) -> None:
    root, runs = two_runs
    history = read_history(history_path(root / "reports"))
    assert list(history["run_id"]) == [r.run_id for r in runs]
    assert list(history["scanned"]) == [5, 7] and list(history["quarantined"]) == [0, 2]
    assert list(history["row_pass_rate"]) == [1.0, pytest.approx(5 / 7)]
    assert (history["scanned"] == history["accepted"] + history["quarantined"]).all()


def test_summary_asset_shows_trend_table_and_plot(two_runs) -> None:
    _, runs = two_runs
    summary = runs[-1].output_for_node("data_quality_summary")
    row = summary.set_index("suite").loc["video_metadata"]
    assert row["runs"] == 2 and row["runs_passed_share"] == 0.5
    assert row["latest_quarantined"] == 2 and row["latest_row_pass_rate"] == pytest.approx(5 / 7)
    (materialization,) = runs[-1].asset_materializations_for_node("data_quality_summary")
    metadata = materialization.metadata
    assert metadata["pass_rate_trend"].value.startswith("![")
    assert metadata["validations_this_run"].value == 1 and metadata["quarantined_this_run"].value == 2


def test_malformed_history_line_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "quality_history.jsonl"
    record = QualityRecord(
        validated_at="2024-03-01T00:00:00+00:00",
        run_id="r1",
        asset="interactions",
        suite="events",
        success=True,
        rows=10,
        rows_failed=0,
        expectations_evaluated=5,
        expectations_failed=0,
        scanned=10,
        accepted=10,
        quarantined=0,
    )
    append_record(path, record)
    with path.open("a") as handle:
        handle.write(json.dumps({"run_id": "r2"}) + "\n")
    with pytest.raises(ValueError, match=r"quality_history.jsonl:2"):
        read_history(path)


def test_counts_that_do_not_reconcile_are_rejected() -> None:
    with pytest.raises(ValueError, match="scanned 10 != accepted 9 \\+ quarantined 0"):
        QualityRecord(
            validated_at="2024-03-01T00:00:00+00:00",
            run_id="r1",
            asset="interactions",
            suite="events",
            success=True,
            rows=10,
            rows_failed=0,
            expectations_evaluated=5,
            expectations_failed=0,
            scanned=10,
            accepted=9,
            quarantined=0,
        )


def test_data_docs_need_the_great_expectations_result(tmp_path: Path) -> None:
    report = ValidationReport(suite="events", success=True, evaluated=0, failed=[], row_failures={})
    with pytest.raises(ValueError, match="carries no Great Expectations result"):
        build_data_docs(report, tmp_path, "interactions", "run-1")


def test_empty_history_reads_as_an_empty_frame(tmp_path: Path) -> None:
    history = read_history(tmp_path / "missing.jsonl")
    assert history.empty and "row_pass_rate" in history.columns
    assert isinstance(history, pd.DataFrame)
