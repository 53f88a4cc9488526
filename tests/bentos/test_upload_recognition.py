"""An upload is recognised at upload time: its frames are decoded in the isolated worker, the backbone runs
in the service's process, the features land in the cache the pipeline reads, and the tags travel with the
landed record (so a restart or a new model version re-reads them)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bentos.search import parse_recognised
from bentos.uploads import landed_frame_features, landed_tag_columns, process_upload
from vidrec.media.hashing import file_sha256
from vidrec.media.real_samples import CATS, SAMPLES, make_sample_videos
from vidrec.media.recognition import RecognitionConfig, frame_features

CHELSEA = tuple(s for s in SAMPLES if s.name == "chelsea")


@pytest.fixture(scope="module")
def cat_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image's cat photograph as a 1 s pan/zoom MP4."""
    return make_sample_videos(tmp_path_factory.mktemp("upload"), CHELSEA, seconds=1.0, size=(192, 144))["chelsea"]


def test_an_upload_is_tagged_with_what_its_frames_show(cat_clip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "backbone"
    processed = process_upload(cat_clip, tmp_path / "features", recognition_cache=cache)
    tags = parse_recognised(processed.recognised)
    assert len(tags) == RecognitionConfig().top_k and tags[0]["label_index"] in CATS, tags
    assert processed.recognition_reason is None
    stored = np.load(processed.frame_features_path)
    assert stored.shape == (RecognitionConfig().n_frames, 1280) and stored.dtype == np.float16
    # The pipeline's extraction (video_features) finds the upload's features cached under the same key.
    upload = pd.DataFrame([{"video_id": "up", "path": str(cat_clip), "sha256": file_sha256(str(cat_clip))}])
    _, status = frame_features(upload, cache)
    assert status["cached"].all()
    # The same bytes again: read from the cache (no frames decoded), the same tags.
    again = process_upload(cat_clip, tmp_path / "features", recognition_cache=cache)
    assert again.recognised == processed.recognised and again.frame_features_path == processed.frame_features_path


def test_without_a_recognition_cache_nothing_is_recognised(cat_clip: Path, tmp_path: Path) -> None:
    processed = process_upload(cat_clip, tmp_path / "features")
    assert processed.recognised is None and processed.frame_features_path is None


def test_landed_records_give_the_catalogue_its_tag_columns(tmp_path: Path) -> None:
    recognised = '[{"tag": "boathouse", "confidence": 0.4, "label_index": 449}]'
    record = {"tags": ["harbour", "boats"], "recognised": recognised}
    assert landed_tag_columns(record) == {"tags": "harbour|boats", "recognised": record["recognised"]}
    assert landed_tag_columns({}) == {"tags": "", "recognised": None}
    # A record whose cache entry is gone: the picture is masked rather than the upload failing.
    assert landed_frame_features({"frame_features_path": str(tmp_path / "gone.npy")}) is None
    assert landed_frame_features({}) is None
