"""The UI as the cockpit: `make ui`'s command (`python -m assets.ui`: dagster dev, webserver + daemon
over workspace.yaml) on 127.0.0.1, a materialisation launched through the GraphQL API, success and check
results read back, schedules and sensors visible; then SIGTERM to the PID this test started stops every
process under it within 10 s (as Ctrl-C does)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.assets.test_ui_launcher import still_running
from vidrec.config import Paths, tool_env
from vidrec.world.generate import generate_world

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
LOCATION, REPOSITORY = "assets.definitions", "__repository__"

REPOSITORY_QUERY = """
query Repo($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on Repository {
      schedules { name cronSchedule scheduleState { status } }
      sensors { name sensorState { status } }
      jobs { name }
      assetNodes { assetKey { path } description groupName kinds
                   owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } } }
    }
    ... on PythonError { message }
  }
}"""

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

RUN_STATUS = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""

CHECK_EXECUTIONS = """
query Checks($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 1) {
    runId status
    evaluation { success severity metadataEntries { label ... on IntMetadataEntry { intValue } } }
  }
}"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(base: str, query: str, variables: dict) -> dict:
    reply = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=60)
    reply.raise_for_status()
    body = reply.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory):
    """`python -m assets.ui` (what `make ui` runs) over workspace.yaml with its own DAGSTER_HOME and the tiny world."""
    world = tmp_path_factory.mktemp("world")
    generate_world(world, size="tiny", progress=False)
    root = tmp_path_factory.mktemp("ui-state")
    Paths(root).ensure()
    env = {**os.environ, **tool_env(root, {"VIDREC_DATA": str(world), "VIDREC_PSEUDONYM_KEY": "test-key"})}
    port = _free_port()
    log = open(root / "dagster-dev.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "assets.ui", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the clean-up below reaches anything left
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, (root / "dagster-dev.log").read_text()[-3000:]
            try:
                data = _graphql(
                    base,
                    REPOSITORY_QUERY,
                    {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}},
                )
                if data["repositoryOrError"]["__typename"] == "Repository":
                    break
            except (httpx.HTTPError, AssertionError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, "the webserver did not load the code location in 240 s"
            time.sleep(1)
        yield base, data["repositoryOrError"], root, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def test_schedules_sensors_and_asset_descriptions_are_visible(ui) -> None:
    _, repository, _, _ = ui
    schedules = {s["name"]: s for s in repository["schedules"]}
    assert schedules["nightly_retraining"]["cronSchedule"] == "0 2 * * *"
    assert schedules["nightly_retraining"]["scheduleState"]["status"] == "STOPPED"  # an operator turns it on
    assert {"raw_data_sensor", "feature_automation"} <= {s["name"] for s in repository["sensors"]}
    assert {"main", "nightly"} <= {j["name"] for j in repository["jobs"]}
    for node in repository["assetNodes"]:
        name = "/".join(node["assetKey"]["path"])
        assert node["description"] and node["groupName"] != "default" and node["kinds"] and node["owners"], name


def test_a_materialisation_launched_over_graphql_succeeds_with_its_check(ui) -> None:
    base, _, root, _ = ui
    asset = {"path": ["video_metadata"]}
    params = {  # the metadata sidecar with the file listing it is matched against
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["raw_videos"]}, asset],
            "assetCheckSelection": [{"assetKey": asset, "name": "video_metadata_contract"}],
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "vidrec/trigger", "value": "test"}]},
    }
    launched = _graphql(base, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:  # queued -> (daemon) starting -> started -> success
        status = _graphql(base, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(2)
    assert status == "SUCCESS", f"run {run_id} ended {status}; see {root}/dagster"
    executions = _graphql(base, CHECK_EXECUTIONS, {"assetKey": asset, "checkName": "video_metadata_contract"})
    latest = executions["assetCheckExecutions"][0]
    assert latest["runId"] == run_id and latest["status"] == "SUCCEEDED"
    assert latest["evaluation"]["success"] and latest["evaluation"]["severity"] == "ERROR"
    counts = {e["label"]: e.get("intValue") for e in latest["evaluation"]["metadataEntries"]}
    assert counts["scanned"] == counts["accepted"] + counts["quarantined"] == 24


def _command_line(proc: psutil.Process) -> str:
    """A child's command line; empty for one that has already exited (a zombie not yet reaped, or gone):
    dagster dev starts short-lived helpers, and one may end between the listing and this read."""
    try:
        return " ".join(proc.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


def test_sigterm_stops_the_webserver_and_the_daemon_within_10_s(ui) -> None:
    """Runs last in this module: it stops the UI the tests above used."""
    _, _, root, process = ui
    children = psutil.Process(process.pid).children(recursive=True)
    commands = " ".join(_command_line(c) for c in children)
    assert "dagster_webserver" in commands and "dagster._daemon" in commands, commands
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # what make passes on, and what a service manager sends
    process.wait(timeout=15)
    alive = still_running(children, timeout=max(0.1, 10 - (time.monotonic() - started)))
    took = time.monotonic() - started
    assert not alive, f"still running {took:.1f} s after SIGTERM: {[p.pid for p in alive]}"
    assert took <= 10, f"stopping took {took:.1f} s; see {root}/dagster-dev.log"
    assert process.returncode == 128 + signal.SIGTERM
