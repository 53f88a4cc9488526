"""Fixtures shared by vidrec's tests: the evaluation suite, and the tiny MP4s of the media tests."""

import time
from pathlib import Path

import pandas as pd
import pytest

from tests.vidrec.eval_fixtures import RESAMPLES, K, loaded, random_tables
from tests.vidrec.media_fixtures import write_mp4
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.tables import bootstrap_weights
from vidrec.media.probe import CRASH_HOOK_ENV_VAR, probe_videos


@pytest.fixture(scope="module")
def suite():
    """The suite over small random tables, once per module: (tables, result, replicate rows, user weights)."""
    tables = random_tables(seed=3, k=K)
    con = loaded(tables)
    result = evaluate(con, SuiteSettings(k=K, resamples=RESAMPLES, seed=11), catalogue_size=60, n_users=40)
    reps = con.execute("SELECT * FROM metric_reps").df()
    weights = bootstrap_weights(tables["impressions"]["user_key"].unique(), RESAMPLES, 11)
    return tables, result, reps, weights


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    files = {
        "good": write_mp4(root / "good.mp4"),
        "silent": write_mp4(root / "silent.mp4", audio=False),
        "long": write_mp4(root / "long.mp4", seconds=30, gop=8),
        "short_gop": write_mp4(root / "short_gop.mp4", seconds=3, gop=8),
    }
    # Truncating a faststart file keeps the index, so it opens and decodes short.
    whole = write_mp4(root / "faststart.mp4", faststart=True).read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    files["truncated"] = root / "truncated.mp4"
    (root / "empty.mp4").write_bytes(b"")
    files["empty"] = root / "empty.mp4"
    (root / "text.mp4").write_text("this is not a video\n" * 50)
    files["text"] = root / "text.mp4"
    # Different bytes from "good" (identical bytes would be probed once, as one content).
    (root / "crash.mp4").write_bytes(files["good"].read_bytes() + b"\0")
    files["crash"] = root / "crash.mp4"
    files["missing"] = root / "missing.mp4"
    return files


@pytest.fixture(scope="module")
def probed(media: dict[str, Path]) -> pd.DataFrame:
    """One probe run over every fixture; the ``crash`` file aborts its worker via the hook."""
    names = ["good", "silent", "truncated", "empty", "text", "missing", "crash"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CRASH_HOOK_ENV_VAR, str(media["crash"]))
        started = time.monotonic()
        frame = probe_videos([(name, str(media[name])) for name in names], progress=False)
        print(f"probe: {len(names)} files in {time.monotonic() - started:.2f} s")
    return frame.set_index("video_id", drop=False)
