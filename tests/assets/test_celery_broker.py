"""The Celery executor on a real broker: a redis-server on 127.0.0.1 (broker and result backend), two
Celery workers started with the project's worker config (deploy/celery/worker.yaml), and the
`nightly_celery` job's media steps on the tiny world sent to them as tasks. Everything started here is
stopped by the PID started. Marked `broker`: skip locally with `-m "not broker"`; CI runs it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.redis_server import RedisServer
from vidrec.config import Paths, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.broker]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = ("vidrec-a", "vidrec-b")  # dagster-celery names them NAME@HOSTNAME
# raw_videos, then the sidecar and the probe (which depend only on it): three Celery tasks, two of which
# can run at once; the cheapest part of the pipeline that still reads media and writes the warehouse.
STEPS = ("raw_videos", "video_metadata", "video_probe")


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the group this test started (the dagster-celery CLI and its `celery worker`: a warm
    shutdown), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _wait_for_workers(env: dict[str, str], deadline_s: float) -> None:
    """Until both workers answer a broadcast ping (`celery inspect ping` over the broker)."""
    code = (
        "import sys; from dagster_celery.make_app import make_app\n"
        "app = make_app({'broker': sys.argv[1], 'backend': sys.argv[2]})\n"
        "print(sorted((app.control.inspect(timeout=2).ping() or {}).keys()))\n"
    )
    deadline = time.monotonic() + deadline_s
    while True:
        out = subprocess.run(
            [sys.executable, "-c", code, env["VIDREC_CELERY_BROKER"], env["VIDREC_CELERY_BACKEND"]],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        if all(f"'{worker}@" in out for worker in WORKERS):
            return
        assert time.monotonic() < deadline, f"workers did not answer a ping in {deadline_s:.0f} s: {out}"
        time.sleep(2)


def test_nightly_celery_steps_run_on_two_workers_over_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    from vidrec.world.generate import generate_world

    world = tmp_path / "world"
    generate_world(world, size="tiny", progress=False)
    root = tmp_path / "root"
    Paths(root).ensure()
    env = {
        **os.environ,
        **tool_env(root, {"VIDREC_DATA": str(world), "VIDREC_PSEUDONYM_KEY": "test-key"}),
        "VIDREC_CELERY_BROKER": redis_server.url(0),
        "VIDREC_CELERY_BACKEND": redis_server.url(1),
        "PYTHONPATH": str(REPO),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # `celery`
    # The instance's storage exists before two workers open it (both creating its tables at once fails).
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.get_runs(limit=1)
    workers = []
    try:
        for name in WORKERS:
            log = open(tmp_path / f"{name}.log", "wb")
            workers.append(
                subprocess.Popen(
                    # The documented worker command (docs/scale-out.md); one process per worker (`--pool solo`)
                    # keeps two workers within a 2-core machine.
                    [
                        str(BIN / "dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(REPO / "deploy" / "celery" / "worker.yaml"),
                        "-n",
                        name,
                        "--",
                        "--pool",
                        "solo",
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        _wait_for_workers(env, deadline_s=180)
        result = subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "deploy.celery.definitions",
                "-j",
                "nightly_celery",
                "-o",
                ",".join(STEPS),
                "-c",
                str(REPO / "deploy" / "celery" / "run_config.yaml"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = result.stdout + result.stderr
        assert result.returncode == 0, log[-4000:]
    finally:
        for worker in workers:
            _stop(worker)

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs(limit=1)
        assert run.job_name == "nightly_celery" and run.status == dg.DagsterRunStatus.SUCCESS
        for key in STEPS:
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
        # Each step ran as a Celery task on one of the two workers (dagster-celery's engine event).
        ran_on = {}
        for record in instance.get_records_for_run(run.run_id).records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.is_engine_event and "in celery worker" in (event.message or ""):
                metadata = event.engine_event_data.metadata
                ran_on[event.step_key] = str(metadata["Celery worker"].value)
    assert set(ran_on) == set(STEPS), ran_on
    assert {worker.split("@")[0] for worker in ran_on.values()} <= set(WORKERS), ran_on
