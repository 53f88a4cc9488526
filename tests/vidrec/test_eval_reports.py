"""The per-run Markdown report (PNG plots, gate verdicts) and the metrics JSON that DVC reads."""

import json
from pathlib import Path

import duckdb
import pytest

from tests.vidrec.eval_fixtures import random_tables
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.tables import load_table
from vidrec.gate import check_gate, load_policy, results_table
from vidrec.reports import write_metrics_json, write_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluation():
    con = duckdb.connect()
    for name, frame in random_tables(seed=5, k=10).items():
        load_table(con, name, frame)
    return evaluate(con, SuiteSettings(k=10, resamples=10), catalogue_size=60, n_users=40)


def test_report_has_every_section_and_plot(evaluation, tmp_path: Path) -> None:
    gate = results_table(check_gate(evaluation.table, load_policy()))
    report = write_report(tmp_path, evaluation.table, evaluation.reliability, gate, {"run_id": "r1"}, k=10)
    text = report.path.read_text()
    assert set(report.plots) == {"metrics", "calibration", "vs_champion", "slices", "gate"}
    for path in report.plots.values():
        assert path.read_bytes().startswith(PNG) and f"]({path.name})" in text
    for heading in ("## Gate", "## Headline metrics", "## Candidate vs champion", "## Calibration", "## Slices"):
        assert heading in text
    for rule in gate:  # every rule with its verdict
        assert rule["name"] in text
    assert report.markdown_inline.count("data:image/png;base64,") == len(report.plots)
    assert "cold_item=true" in text and "category=music" in text


def test_first_run_report_says_there_is_no_champion(evaluation, tmp_path: Path) -> None:
    table = evaluation.table[~evaluation.table["model"].str.contains("champion")]
    report = write_report(tmp_path, table, evaluation.reliability, [], {"run_id": "r0"}, k=10)
    assert "no champion" in report.path.read_text() and "vs_champion" not in report.plots


def test_metrics_json_is_strict_json_of_numbers_per_model(evaluation, tmp_path: Path) -> None:
    path = write_metrics_json(tmp_path / "metrics.json", evaluation.table, {"latency": {"scoring_p99_ms": 3.5}}, k=10)

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    document = json.loads(path.read_text(), parse_constant=reject)
    assert {"candidate", "champion", "logging_policy", "candidate_vs_champion", "latency"} <= set(document)
    table = evaluation.table
    auc = table[(table["model"] == "candidate") & (table["metric"] == "click_auc") & (table["slice"] == "all")]
    assert document["candidate"]["click_auc"] == pytest.approx(float(auc["value"].iloc[0]), abs=1e-12)
    assert document["candidate"]["ctr_at_10"] == document["candidate"]["ctr_at_10_snips"]
    assert all(isinstance(v, (int, float)) for group in document.values() for v in group.values())


def test_report_plots_the_mmr_lambda_curve_when_given(evaluation, tmp_path: Path) -> None:
    import pandas as pd

    curve = pd.DataFrame(
        {
            "lambda": [1.0, 0.7, 0.3],
            "sessions": 50,
            "ndcg_at_10": [0.40, 0.38, 0.30],
            "intra_list_diversity": [0.20, 0.25, 0.33],
            "category_coverage": [0.8, 0.9, 1.0],
            "categories_per_list": [3.5, 4.0, 4.9],
        }
    )
    report = write_report(tmp_path, evaluation.table, evaluation.reliability, [], {"run_id": "r2"}, 10, curve)
    text = report.path.read_text()
    assert report.plots["diversity"].read_bytes().startswith(PNG) and "](mmr_lambda.png)" in text
    assert "## Diversity: the MMR λ trade-off" in text and "0.33" in text


def test_the_vs_champion_plot_draws_a_point_estimate_outside_its_interval(tmp_path) -> None:
    """Identical models differ by ~0 with an interval of ~0 around it, and float rounding can put the point
    just outside (seen in a re-evaluation after batched scoring): the whiskers are clipped at 0, not an error."""
    from vidrec.plots import relative_changes

    rows = [
        {"metric": "ctr_at_10", "value": 1e-17, "ci_low": 2e-17, "ci_high": 3e-17},
        {"metric": "ndcg_at_10", "value": -0.02, "ci_low": -0.05, "ci_high": 0.01},
        {"metric": "watch", "value": 0.01, "ci_low": None, "ci_high": None},
    ]
    path = relative_changes(rows, "vs champion", tmp_path / "vs.png")
    assert path.is_file() and path.stat().st_size > 0
