"""`bentoml build -f bentos/bentofile.yaml` packages the service with the promoted model."""

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd
import torch
import yaml

import assets.model_store as store
from models.config import EncoderConfig, RankerConfig
from models.serialization import TrainedModel
from vidrec.config import Paths
from vidrec.registry import ProductionPointer

REPO = Path(__file__).resolve().parents[2]


def _promote(directory: Path, root: Path, run: str) -> str:
    torch.manual_seed(0)
    torch.save(EncoderConfig().build().state_dict(), directory / "encoder.pt")
    torch.save(RankerConfig().build().state_dict(), directory / "ranker.pt")
    encoder = TrainedModel("encoder", str(directory / "encoder.pt"), asdict(EncoderConfig()))
    ranker = TrainedModel("ranker", str(directory / "ranker.pt"), asdict(RankerConfig()),
                          extra={"blend": {"click": 1.0, "watch": 1.0, "conversion": 1.0, "watch_scale_s": 5.0}})
    items = pd.DataFrame({"video_id": ["v0", "v1"], "title": "t", "category": "music", "creator_id": "c",
                          "is_product": False, "price": np.nan, "duration_s": 2.0, "is_live_host": False})
    save = lambda: store.save_to_store(encoder, ranker, items, np.zeros((2, 8), np.float32), np.arange(2), {},  # noqa: E731
                                       [], {"run_id": run, "git_commit": "test"}, {"metrics": {}})
    return store.promote(save, ProductionPointer(Paths(root).registry)).tag


def test_bentofile_declares_the_service_and_the_model() -> None:
    config = yaml.safe_load((REPO / "bentos" / "bentofile.yaml").read_text())
    assert config["service"] == "bentos.service:Recommender"
    assert config["models"][0]["tag"].startswith(store.MODEL_NAME + ":")


def test_bentoml_build_packages_the_promoted_model(tmp_path: Path, vidrec_root: Path, vidrec_env: dict) -> None:
    tag = _promote(tmp_path, vidrec_root, "bento-build")
    assert ProductionPointer(Paths(vidrec_root).registry).tag == tag
    out = subprocess.run([sys.executable, "-m", "bentoml", "build", "-f", "bentos/bentofile.yaml", "-o", "tag"],
                         cwd=REPO, env={**os.environ, **vidrec_env}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    bento_tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    bento = bentoml.bentos.get(bento_tag)
    assert [str(m.tag) for m in bento.info.models] == [tag]
    assert (Path(bento.path) / "src" / "bentos" / "service.py").is_file()
    assert (Path(bento.path) / "src" / "vidrec" / "evaluation" / "sql" / "prediction.sql").is_file()
