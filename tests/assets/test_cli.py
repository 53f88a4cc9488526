"""Dagster's standard CLI works on the project: selection strings parse (they need antlr4 4.13, which
DVC's own environment keeps away from this one). `dagster asset materialize --select` itself runs in
tests/test_duckdb_exit.py (three cheap assets of the tiny world, each step in its own process)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_asset_selection_strings_work() -> None:
    """One call (each loads the definitions, ~20 s on 2 cores): a group and a downstream selection."""
    selection = "group:media or key:interactions+"
    expected = {"raw_videos", "video_probe", "interactions", "multimodal_encoder"}
    absent = {"raw_events"}  # the external log: upstream of interactions, in no group selected
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "list",
            "-m",
            "assets.definitions",
            "--select",
            selection,
        ],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listed = set(result.stdout.split())
    assert expected <= listed and not (absent & listed), result.stdout
