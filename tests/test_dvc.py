"""`dvc repro` reproduces the whole pipeline headlessly in a temporary copy of the repository
(tiny world, one epoch), `dvc metrics show` / `dvc plots show` read the evaluation outputs, and
`dvc push` reaches a remote overridden with `dvc remote add --local`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# DVC has its own tool environment (the Makefile's .venv-dvc; `make test` passes VIDREC_DVC): its
# hydra/omegaconf pin antlr4-python3-runtime 4.9.3, which breaks Dagster's selection parser.
DVC = Path(os.environ.get("VIDREC_DVC") or REPO / ".venv-dvc" / "bin" / "dvc")


def _dvc_executable() -> Path:
    if not DVC.is_file():
        pytest.fail(f"no DVC at {DVC}: run `make dvc-env` (or `make test`, which makes it), or set VIDREC_DVC")
    return DVC


def _dvc(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDREC_", "DAGSTER_", "BENTOML_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1")
    result = subprocess.run(
        [str(_dvc_executable()), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"dvc {' '.join(args)} failed:\n{_readable(result.stdout)}\n{_readable(result.stderr)}"
    )
    return result


def _readable(output: str) -> str:
    """The end of a log without the DuckDB binding's exit-time leak report, which drowns it."""
    lines = [
        line
        for line in output.splitlines()
        if "nanobind" not in line and "leaked " not in line and not line.startswith(" - ")
    ]
    return "\n".join(lines)[-4000:]


def _copy_of_repo(target: Path) -> Path:
    """The files git would commit (tracked and not ignored), in a fresh git repository."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    return target


def test_config_names_a_local_default_remote() -> None:
    config = (REPO / ".dvc" / "config").read_text()
    assert "remote = local" in config and "['remote \"local\"']" in config
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    # One stage per asset group, each running that group through Dagster.
    assert {"media", "events", "training", "monitoring", "evaluation", "quality"} <= set(stages)
    for group in ("media", "events", "training", "monitoring", "evaluation", "quality"):
        assert f"assets.dvc_stage {group}" in stages[group]["cmd"]


def test_the_dvc_cli_reads_the_pipeline_and_lives_apart_from_dagster(tmp_path: Path) -> None:
    """DVC's CLI parses dvc.yaml with params.yaml interpolated, from its own environment; the project's
    environment has the antlr4 runtime Dagster's selection parser needs (tests/assets/test_cli.py)."""
    repo = _copy_of_repo(tmp_path / "repo")
    listed = _dvc(repo, "stage", "list").stdout
    assert {"world", "media", "events", "training", "monitoring", "evaluation", "quality"} <= {
        line.split()[0] for line in listed.splitlines() if line.strip()
    }
    assert "data/demo" in _dvc(repo, "status").stdout  # the world stage's output, not generated here
    from importlib.metadata import version

    assert version("antlr4-python3-runtime").startswith("4.13")


@pytest.mark.slow
def test_dvc_repro_reproduces_the_pipeline_in_a_copy(tmp_path: Path) -> None:
    repo = _copy_of_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["world"]["size"] = "tiny"
    params["training"].update(encoder_epochs=1, ranker_epochs=1)
    # One epoch on 24 videos cannot meet the production AUC floor; the gate itself stays on.
    lenient = tmp_path / "lenient_gate.yaml"
    lenient.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "model": "candidate",
                "rules": [{"name": "click AUC floor", "metric": "click_auc", "at_least": 0.0}],
            }
        )
    )
    params["gate"]["policy"] = str(lenient)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    remote = tmp_path / "remote"
    _dvc(repo, "remote", "add", "--local", "-d", "scratch", str(remote))  # overrides the repo's default

    _dvc(repo, "repro")

    for stage, files in {
        "media": ["video_probe.parquet", "text_features.parquet"],
        "events": ["interactions.parquet"],
        "training": ["item_embeddings.parquet"],
        "monitoring": ["drift_report.csv"],
        "evaluation": ["offline_evaluation.csv"],
        "quality": ["data_quality_summary.csv"],
    }.items():
        for name in files:
            assert (repo / ".vidrec" / "exports" / stage / name).is_file(), f"{stage} did not export {name}"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"world", "media", "events", "training", "monitoring", "evaluation", "quality"}

    metrics = json.loads(_dvc(repo, "metrics", "show", "--json").stdout)
    shown = json.dumps(metrics)
    assert "ndcg_at_10" in shown and "candidate" in shown
    plots = tmp_path / "plots"
    _dvc(repo, "plots", "show", "-o", str(plots))
    html = (plots / "index.html").read_text()
    # DVC names each plot after its file (dots become underscores) and inlines the data.
    assert "offline_evaluation_csv" in html and "drift_report_csv" in html

    assert "up to date" in _dvc(repo, "status").stdout.lower()  # nothing left to reproduce
    _dvc(repo, "push")
    assert any(p.is_file() for p in remote.rglob("*")), "dvc push wrote nothing to the overridden remote"


def test_warehouse_export_writes_tables_and_names_unknown_ones(tmp_path: Path) -> None:
    import duckdb
    import pandas as pd

    from vidrec.warehouse_export import export_tables

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA vidrec")
        con.execute(
            "CREATE TABLE vidrec.offline_evaluation AS SELECT 'candidate' AS model, 0.31::DOUBLE AS ndcg_at_10, "
            "[0.1, 0.2]::DOUBLE[] AS embedding"
        )
    (csv,) = export_tables(warehouse, ["offline_evaluation"], tmp_path / "out", "csv", drop_columns=("embedding",))
    assert pd.read_csv(csv).to_dict("records") == [{"model": "candidate", "ndcg_at_10": 0.31}]
    (parquet,) = export_tables(warehouse, ["offline_evaluation"], tmp_path / "out")
    assert pd.read_parquet(parquet)["embedding"].iloc[0].tolist() == [0.1, 0.2]
    with pytest.raises(ValueError, match=r"vidrec.item_embeddings is not in .*offline_evaluation"):
        export_tables(warehouse, ["item_embeddings"], tmp_path / "out")


def test_stage_runner_reports_why_a_stage_stopped() -> None:
    """A DVC log must say which step failed and why, and which checks failed."""
    import dagster as dg

    from assets.dvc_stage import failed_checks, group_selection, step_errors

    @dg.asset(group_name="media")
    def broken_input() -> int:
        raise ValueError("metadata.csv lacks columns ['title']")

    @dg.asset(group_name="media")
    def probed() -> int:
        return 1

    @dg.asset_check(asset=probed, blocking=True)
    def probed_contract(probed: int) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)

    result = dg.materialize(
        [broken_input, probed, probed_contract], selection=group_selection("media"), raise_on_error=False
    )
    assert not result.success
    errors = step_errors(result)
    assert any(e.startswith("broken_input: ValueError: metadata.csv lacks columns") for e in errors)
    assert failed_checks(result) == ["probed:probed_contract (ERROR)"]


def test_params_yaml_starts_from_the_code_defaults() -> None:
    """params.yaml is where a DVC run overrides training settings; it ships equal to the defaults in
    models/fit/steps.py, so `dvc repro` and a Dagster materialisation train the same model out of the box."""
    from models.fit.steps import StepSettings

    training = yaml.safe_load((REPO / "params.yaml").read_text())["training"]
    defaults = StepSettings()
    assert training == {name: getattr(defaults, name) for name in training}


def test_params_yaml_serving_starts_from_the_path_defaults() -> None:
    """params.yaml's `serving` section (the final score's GMV weight and live boost) ships equal to
    models/serving/path.py PathSettings, which the Dagster resource defaults to."""
    from assets.evaluation import ServedPathSettings
    from models.serving.path import PathSettings

    serving = yaml.safe_load((REPO / "params.yaml").read_text())["serving"]
    defaults = PathSettings()
    assert serving == {"gmv_weight": defaults.gmv_weight, "live_boost": defaults.live_boost}
    assert ServedPathSettings().settings() == defaults
