"""Processes that use the warehouse exit quietly: no "nanobind: leaked ..." report from DuckDB's binding.

DuckDB reports every binding object still alive at interpreter shutdown. Dagster keeps a copy of the
calling frame's globals and locals when it first builds a record class, so a DuckDB module or
connection in such a frame outlived the process and the report ended every `make demo`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidrec.config import Paths, tool_env

REPO = Path(__file__).resolve().parent.parent
LEAK = "leaked"


def _stderr_of(code: str, env: dict[str, str] | None = None, timeout: int = 120) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def test_loading_the_definitions_and_reading_parquet_exit_clean(tmp_path: Path) -> None:
    """Before the fix, importing the definitions alone ended with 39 lines of the report."""
    import pandas as pd

    pd.DataFrame({"video_id": ["a", "b"]}).to_parquet(tmp_path / "videos.parquet")
    code = (
        "import assets.definitions\n"
        "from vidrec.object_store import read_parquet\n"
        f"assert len(read_parquet({str(tmp_path / 'videos.parquet')!r})) == 2\n"
    )
    stderr = _stderr_of(code)
    assert LEAK not in stderr, stderr[-3000:]


@pytest.mark.slow
def test_a_pipeline_run_through_the_warehouse_exits_clean(tmp_path: Path) -> None:
    """Two of the tiny world's media assets through Dagster's CLI, each step in its own process (the
    multiprocess executor `make pipeline`/`make demo` use); they write the media catalogue and the warehouse."""
    from vidrec.world.generate import generate_world

    world = tmp_path / "world"
    generate_world(world, size="tiny", progress=False)
    root = tmp_path / "root"
    Paths(root).ensure()
    env = {**os.environ, **tool_env(root, {"VIDREC_DATA": str(world), "VIDREC_PSEUDONYM_KEY": "test-key"})}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "assets.definitions",
            "--select",
            "raw_videos,video_metadata",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert LEAK not in log, [line for line in log.splitlines() if "leak" in line][:5]
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for key in ("raw_videos", "video_metadata"):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
