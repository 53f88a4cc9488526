"""`bentoml build -f bentos/bentofile.yaml` packages the service with the promoted model."""

import os
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
import yaml

import assets.model_store as store
from tests.model_fixtures import tiny_contents, untrained_models
from vidrec.config import Paths
from vidrec.registry import ProductionPointer

REPO = Path(__file__).resolve().parents[2]


def _promote(directory: Path, root: Path, run: str) -> str:
    contents = tiny_contents(untrained_models(directory), n=2)
    save = lambda: store.save_to_store(contents, {"run_id": run, "git_commit": "test"}, {"metrics": {}})  # noqa: E731
    return store.promote(save, ProductionPointer(Paths(root).registry)).tag


def test_bentofile_declares_the_service_and_the_model() -> None:
    config = yaml.safe_load((REPO / "bentos" / "bentofile.yaml").read_text())
    assert config["service"] == "bentos.service:Recommender"
    assert config["models"][0]["tag"].startswith(store.MODEL_NAME + ":")


@pytest.fixture()
def promoted(tmp_path: Path, vidrec_root: Path):
    """A tiny model promoted in the session's registry for this test only: the registry is shared, and the
    tests after this one serve the session's trained model (rolled back to it, or to nothing)."""
    pointer = ProductionPointer(Paths(vidrec_root).registry)
    before = pointer.tag
    tag = _promote(tmp_path, vidrec_root, "bento-build")
    yield tag
    if before is not None:
        pointer.rollback()
    assert pointer.tag == before


def test_bentoml_build_packages_the_promoted_model(promoted: str, vidrec_root: Path, vidrec_env: dict) -> None:
    tag = promoted
    assert ProductionPointer(Paths(vidrec_root).registry).tag == tag
    out = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentos/bentofile.yaml", "-o", "tag"],
        cwd=REPO,
        env={**os.environ, **vidrec_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    bento_tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    bento = bentoml.bentos.get(bento_tag)
    assert [str(m.tag) for m in bento.info.models] == [tag]
    assert (Path(bento.path) / "src" / "bentos" / "service.py").is_file()
    assert (Path(bento.path) / "src" / "vidrec" / "evaluation" / "sql" / "prediction.sql").is_file()
