"""Promotion is all-or-nothing: a failure injected at every step leaves production on the old model
(complete and loadable), success moves it to the new one, and a killed promotion never leaves a mix."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import assets.model_store as store
import bentoml
from models import serialization
from models.config import EncoderConfig, RankerConfig
from models.serialization import TrainedModel
from vidrec import bundle
from vidrec.registry import ProductionPointer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, TrainedModel]:
    directory = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    encoder, ranker = EncoderConfig(), RankerConfig()
    torch.save(encoder.build().state_dict(), directory / "encoder.pt")
    torch.save(ranker.build().state_dict(), directory / "ranker.pt")
    return (TrainedModel("encoder", str(directory / "encoder.pt"), asdict(encoder)),
            TrainedModel("ranker", str(directory / "ranker.pt"), asdict(ranker),
                         extra={"blend": {"click": 1.0, "watch": 1.0, "conversion": 1.0, "watch_scale_s": 5.0}}))


def _items(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "title": "t", "category": "music",
                         "creator_id": "c", "is_product": False, "price": np.nan, "duration_s": 2.0,
                         "is_live_host": False})


def _save(models: tuple[TrainedModel, TrainedModel], run: str):
    encoder, ranker = models
    return lambda: store.save_to_store(encoder, ranker, _items(), np.zeros((4, 8), np.float32), np.arange(4),
                                       {"u": ["v0"]}, [{"model": "candidate", "click_auc": 0.7}],
                                       {"run_id": run, "git_commit": "test"}, {"metrics": {}})


def _assert_serving(pointer: ProductionPointer, expected: str) -> None:
    assert pointer.tag == expected
    store.verify_stored(expected)  # the tag production names is complete and loads


def _raise(*_args, **_kwargs):
    raise OSError("injected failure")


STEPS = {
    # step 1: writing the entry (inside bentoml.models.create): nothing is committed to the store
    "copy weights": lambda mp: mp.setattr(store.shutil, "copyfile", _raise),
    "write serving tables": lambda mp: mp.setattr(bundle, "write_serving_tables", _raise),
    # step 2: verification of the committed entry (rebuilding the modules from the state_dicts)
    "verify weights": lambda mp: mp.setattr(serialization.torch, "load", _raise),
    # step 3: the pointer (temporary file, its fsync, the atomic rename)
    "pointer fsync": lambda mp: mp.setattr(os, "fsync", _raise),
    "pointer rename": lambda mp: mp.setattr(os, "replace", _raise),
}


def test_a_failure_at_every_step_leaves_the_old_model_in_production(models, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pointer = ProductionPointer(tmp_path)
    first = store.promote(_save(models, "first"), pointer)
    _assert_serving(pointer, first.tag)
    for step, inject in STEPS.items():
        stored = len(bentoml.models.list("vidrec-recommender"))
        with monkeypatch.context() as patch:
            inject(patch)
            with pytest.raises(Exception):
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
        "from models.serialization import TrainedModel\n"
        "import assets.model_store as store\n"
        "from tests.vidrec.test_registry_promotion import _save\n"
        "from vidrec.registry import ProductionPointer\n"
        f"encoder = TrainedModel('encoder', {models[0].weights_path!r}, {models[0].config!r})\n"
        f"ranker = TrainedModel('ranker', {models[1].weights_path!r}, {models[1].config!r}, extra={models[1].extra!r})\n"
        f"pointer = ProductionPointer(Path({str(tmp_path / 'registry')!r}))\n"
        "for i in range(1000):\n"
        "    store.promote(_save((encoder, ranker), f'loop-{i}'), pointer)\n"
        "    print('promoted', i, flush=True)\n"
    )
    pointer = ProductionPointer(tmp_path / "registry")
    process = subprocess.Popen([sys.executable, str(script)], cwd=REPO, env={**os.environ, **vidrec_env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
