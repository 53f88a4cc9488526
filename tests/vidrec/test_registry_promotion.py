"""Promotion is all-or-nothing: a failure injected at every step leaves production on the old model
(complete and loadable), success moves it to the new one, and a killed promotion never leaves a mix."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bentoml
import pytest

import assets.model_store as store
from models.serving import bundle
from models.serving import weights as serialization
from models.serving.weights import TrainedModel
from tests.model_fixtures import tiny_contents, untrained_models
from vidrec.registry import ProductionPointer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, TrainedModel, TrainedModel]:
    return untrained_models(tmp_path_factory.mktemp("weights"))


def _save(models: tuple[TrainedModel, TrainedModel, TrainedModel], run: str):
    contents = tiny_contents(models, histories={"u": ["v0"]}, evaluation=[{"model": "candidate", "click_auc": 0.7}])
    return lambda: store.save_to_store(contents, {"run_id": run, "git_commit": "test"}, {"metrics": {}})


def _assert_serving(pointer: ProductionPointer, expected: str) -> None:
    assert pointer.tag == expected
    store.verify_stored(expected)  # the tag production names is complete and loads


def _raise(*_args, **_kwargs):
    raise OSError("injected failure")


STEPS = {
    # step 1: writing the entry (inside bentoml.models.create): nothing is committed to the store
    "copy weights": lambda mp: mp.setattr(bundle.shutil, "copyfile", _raise),
    "write serving tables": lambda mp: mp.setattr(bundle.pd.DataFrame, "to_parquet", _raise),
    # step 2: verification of the committed entry (rebuilding the modules from the state_dicts)
    "verify weights": lambda mp: mp.setattr(serialization.torch, "load", _raise),
    # step 3: the pointer (temporary file, its fsync, the atomic rename)
    "pointer fsync": lambda mp: mp.setattr(os, "fsync", _raise),
    "pointer rename": lambda mp: mp.setattr(os, "replace", _raise),
}


def test_a_failure_at_every_step_leaves_the_old_model_in_production(
    models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pointer = ProductionPointer(tmp_path)
    first = store.promote(_save(models, "first"), pointer)
    _assert_serving(pointer, first.tag)
    for step, inject in STEPS.items():
        stored = len(bentoml.models.list("vidrec-recommender"))
        with monkeypatch.context() as patch:
            inject(patch)
            with pytest.raises(Exception):  # noqa: B017 - each step fails its own way (OSError, RuntimeError...)
                store.promote(_save(models, f"broken-{step}"), pointer)
        _assert_serving(pointer, first.tag)
        assert pointer.read().history == [] and not list(tmp_path.glob("*.tmp")), step
        if not step.startswith("pointer"):  # nothing that could not serve is left in the store
            assert len(bentoml.models.list("vidrec-recommender")) == stored, step
    second = store.promote(_save(models, "second"), pointer)
    _assert_serving(pointer, second.tag)
    assert pointer.read().history == [first.tag] and second.previous == first.tag
    store.verify_stored(first.tag)  # the previous champion is kept for rollback
    pointer.rollback()
    _assert_serving(pointer, first.tag)


def test_a_promotion_killed_midway_leaves_old_or_new(models, tmp_path: Path, vidrec_env: dict) -> None:
    """A child process promotes in a loop and is SIGKILLed; the pointer must name a complete model."""
    script = tmp_path / "promote_loop.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom pathlib import Path\n"
        "import numpy as np\n"
        "from models.serving.weights import TrainedModel\n"
        "import assets.model_store as store\n"
        "from tests.vidrec.test_registry_promotion import _save\n"
        "from vidrec.registry import ProductionPointer\n"
        f"encoder = TrainedModel('encoder', {models[0].weights_path!r}, {models[0].config!r})\n"
        f"ranker = TrainedModel('ranker', {models[1].weights_path!r}, {models[1].config!r}, "
        f"extra={models[1].extra!r})\n"
        f"retrieval = TrainedModel('retrieval', {models[2].weights_path!r}, {models[2].config!r})\n"
        f"pointer = ProductionPointer(Path({str(tmp_path / 'registry')!r}))\n"
        "for i in range(1000):\n"
        "    store.promote(_save((encoder, ranker, retrieval), f'loop-{i}'), pointer)\n"
        "    print('promoted', i, flush=True)\n"
    )
    pointer = ProductionPointer(tmp_path / "registry")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=REPO,
        env={**os.environ, **vidrec_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for _ in range(3):  # let a few promotions complete, then kill somewhere inside the next one
            line = process.stdout.readline()
            assert line.startswith("promoted"), process.stderr.read() if process.stderr else line
        time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    tag = pointer.tag
    assert tag is not None
    store.verify_stored(tag)  # complete and loadable, whichever promotion it was


def test_a_bundle_without_the_retrieval_model_fails_promotion_with_the_reason(models, tmp_path: Path) -> None:
    pointer = ProductionPointer(tmp_path)
    stored = len(bentoml.models.list("vidrec-recommender"))
    contents = tiny_contents(models)
    contents.retrieval = None
    with pytest.raises(bundle.BundleError, match="no retrieval model.*retrieval_model"):
        store.promote(lambda: store.save_to_store(contents, {"run_id": "no-retrieval"}, {"metrics": {}}), pointer)
    assert pointer.tag is None and len(bentoml.models.list("vidrec-recommender")) == stored


def test_a_stored_bundle_missing_its_retrieval_weights_cannot_be_verified(models, tmp_path: Path) -> None:
    tag = store.save_to_store(tiny_contents(models), {"run_id": "lost-retrieval"}, {"metrics": {}})
    (Path(bentoml.models.get(tag).path) / bundle.RETRIEVAL_WEIGHTS).unlink()
    with pytest.raises(RuntimeError, match=f"{tag}.*lacks.*retrieval.pt"):
        store.verify_stored(tag)
