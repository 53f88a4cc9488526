"""The nightly job under the multiprocess executor on the tiny world, through the CLI and a real
instance (dagster.yaml from vidrec.config): every step in its own process, warehouse writers one at a
time through the pool, the gate passed and the model promoted."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.definitions import all_assets
from assets.jobs import multiprocess_config
from assets.resources import WAREHOUSE_POOL
from vidrec.config import Paths, tool_env
from vidrec.registry import ProductionPointer
from vidrec.world.generate import generate_world

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WRITERS = {
    "video_probe",
    "video_metadata",
    "video_features",
    "text_features",
    "interactions",
    "item_embeddings",
    "offline_evaluation",
}
POOLED = {key.to_user_string() for a in all_assets if a.op.pool == WAREHOUSE_POOL for key in a.keys}


def _intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float, int]]:
    """step key -> (started, finished, pid) from the run's event log."""
    started, out = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = (record.timestamp, event.pid)
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            out[event.step_key] = (started[event.step_key][0], record.timestamp, started[event.step_key][1])
    return out


def test_nightly_job_runs_under_the_multiprocess_executor(tmp_path: Path) -> None:
    world = tmp_path / "world"
    generate_world(world, size="tiny", progress=False)
    root = tmp_path / "state"
    paths = Paths(root).ensure()
    policy = tmp_path / "lenient.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "model": "candidate",
                "rules": [{"name": "click AUC floor", "metric": "click_auc", "at_least": 0.0}],
            }
        )
    )
    config = {
        **multiprocess_config(max_concurrent=2),
        "resources": {
            "training": {"config": {"encoder_epochs": 1, "ranker_epochs": 1, "retrieval_epochs": 1}},
            "gate_policy": {"config": {"path": str(policy)}},
        },
    }
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, **tool_env(root, {"VIDREC_DATA": str(world), "VIDREC_PSEUDONYM_KEY": "test-key"})}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "job",
            "execute",
            "-m",
            "assets.definitions",
            "-j",
            "nightly",
            "-c",
            str(config_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        steps = _intervals(instance, run.run_id)
    assert {"multimodal_encoder", "ranker", "promoted_model"} <= set(steps)
    assert len({pid for _, _, pid in steps.values()}) > 3  # each step ran in its own process
    # The pool (limit 1 from dagster.yaml) kept DuckDB writers apart: no two overlapped in time.
    writers = sorted((start, end, key) for key, (start, end, _) in steps.items() if key in POOLED)
    assert WRITERS <= {key for _, _, key in writers}
    for (_, end, first), (start, _, second) in zip(writers, writers[1:]):
        assert start >= end, f"{first} and {second} ({WAREHOUSE_POOL}) ran at the same time"
    assert ProductionPointer(paths.registry).tag  # gate passed (lenient policy) and the model was promoted
