"""The scale-out config files under deploy/ are tested, not just written: the Celery executor's
definitions and run config validate and run (tasks executed eagerly, no broker), BentoML accepts
the replica config, the Kubernetes manifests agree with it, and DuckDB reads Parquet through
fsspec from an object-store URL."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import fsspec
import pandas as pd
import pytest
import yaml
from dagster_celery.cli import get_validated_config

from vidrec.object_store import read_parquet

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
BROKER_ENV = {"VIDREC_CELERY_BROKER": "memory://", "VIDREC_CELERY_BACKEND": "cache+memory://"}


@pytest.fixture()
def celery_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BROKER_ENV.items():
        monkeypatch.setenv(key, value)


def _celery_job() -> dg.JobDefinition:
    from deploy.celery.definitions import defs

    dg.Definitions.validate_loadable(defs)
    return defs.resolve_job_def("nightly_celery")


def test_celery_job_and_run_config_validate(celery_env) -> None:
    job = _celery_job()
    assert job.executor_def.name == "celery"
    run_config = yaml.safe_load((DEPLOY / "celery" / "run_config.yaml").read_text())
    resolved = dg.validate_run_config(job, run_config)["execution"]["celery"]
    assert resolved["broker"] == "memory://" and resolved["config_source"]["task_acks_late"] is True
    broken = yaml.safe_load((DEPLOY / "celery" / "run_config.yaml").read_text())
    broken["execution"]["config"]["brokr"] = broken["execution"]["config"].pop("broker")
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, broken)


def test_celery_worker_config_validates(celery_env) -> None:
    worker = get_validated_config(str(DEPLOY / "celery" / "worker.yaml"))
    run = yaml.safe_load((DEPLOY / "celery" / "run_config.yaml").read_text())["execution"]["config"]
    assert worker["broker"] == "memory://"
    # Workers and runs must agree on where tasks go and how they are acknowledged.
    assert worker["config_source"] == run["config_source"] and worker["include"] == run["include"]


@pytest.mark.slow
def test_celery_executor_runs_pipeline_steps_as_tasks(tmp_path: Path) -> None:
    """Two steps of nightly_celery run through the Celery executor, tasks executed eagerly in
    this process (Celery's task_always_eager), so no broker or worker is needed."""
    from vidrec.world.generate import generate_world

    world = tmp_path / "world"
    generate_world(world, size="tiny", progress=False)
    config = yaml.safe_load((DEPLOY / "celery" / "run_config.yaml").read_text())
    config["execution"]["config"]["config_source"]["task_always_eager"] = True
    run_config = tmp_path / "run_config.yaml"
    run_config.write_text(yaml.safe_dump(config))
    root = tmp_path / "root"
    env = {**os.environ, **BROKER_ENV, **_exports(root, world)}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "job",
            "execute",
            "-m",
            "deploy.celery.definitions",
            "-j",
            "nightly_celery",
            "-o",
            "raw_videos,video_metadata",
            "-c",
            str(run_config),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    # The run and its materialisations, read back from the instance the CLI wrote to.
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs(limit=1)
        assert run.job_name == "nightly_celery" and run.status == dg.DagsterRunStatus.SUCCESS
        for key in ("raw_videos", "video_metadata"):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key


def _exports(root: Path, world: Path) -> dict[str, str]:
    """What `eval "$(python -m vidrec.config)"` exports, for a temporary root and world."""
    from vidrec.config import Paths, tool_env

    Paths(root).ensure()
    return tool_env(root, {"VIDREC_DATA": str(world), "VIDREC_PSEUDONYM_KEY": "test-key"})


def test_bentoml_accepts_the_replica_config() -> None:
    """BentoML loads deploy/bentoml/bentoml_configuration.yaml over the service's defaults (what
    `bentoml serve` does at start) and the replica gets its workers, bind address and port."""
    code = (
        "import json\n"
        "from bentos.service import Recommender\n"
        "from bentoml._internal.configuration.containers import BentoMLContainer\n"  # no public reader
        "Recommender.inject_config()\n"
        "print(json.dumps(BentoMLContainer.config.services['Recommender'].get(), default=str))\n"
    )
    env = {**os.environ, "BENTOML_CONFIG": str(DEPLOY / "bentoml" / "bentoml_configuration.yaml")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    service = json.loads(out.stdout.strip().splitlines()[-1])
    assert service["workers"] == 2
    assert service["http"]["host"] == "0.0.0.0" and service["http"]["port"] == 3000
    assert service["traffic"]["max_concurrency"] == 64


def test_kubernetes_manifests_agree_with_the_bentoml_config() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "recommender.yaml").read_text())}
    assert set(docs) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    bento_config = yaml.safe_load((DEPLOY / "bentoml" / "bentoml_configuration.yaml").read_text())
    assert yaml.safe_load(docs["ConfigMap"]["data"]["bentoml_configuration.yaml"]) == bento_config

    deployment = docs["Deployment"]["spec"]
    assert deployment["replicas"] >= 2
    labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"] == labels == docs["Service"]["spec"]["selector"]
    (container,) = deployment["template"]["spec"]["containers"]
    port = bento_config["services"]["Recommender"]["http"]["port"]
    assert container["ports"][0]["containerPort"] == port
    # BentoML's own probe endpoints (bentoml/_internal/server/base_app.py).
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    env = {e["name"]: e for e in container["env"]}
    mount = {v["name"]: v["mountPath"] for v in container["volumeMounts"]}
    assert env["BENTOML_CONFIG"]["value"].startswith(mount["config"])
    assert env["VIDREC_HOME"]["value"] == mount["state"]
    assert "secretKeyRef" in env["VIDREC_PSEUDONYM_KEY"]["valueFrom"]  # never a literal key

    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert 1 <= hpa["minReplicas"] <= deployment["replicas"] <= hpa["maxReplicas"]


def test_the_recommender_reaches_the_redis_user_state_store_of_its_manifest() -> None:
    redis = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "redis.yaml").read_text())}
    assert set(redis) == {"StatefulSet", "Service"}
    recommender = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "recommender.yaml").read_text())}
    (container,) = recommender["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    service = redis["Service"]
    port = service["spec"]["ports"][0]["port"]
    assert env["VIDREC_STATE_URL"]["value"].endswith(f"@{service['metadata']['name']}:{port}/0")
    # The password comes from a secret on both sides, and is defined before the URL that expands it.
    names = [e["name"] for e in container["env"]]
    assert names.index("VIDREC_REDIS_PASSWORD") < names.index("VIDREC_STATE_URL")
    assert "$(VIDREC_REDIS_PASSWORD)" in env["VIDREC_STATE_URL"]["value"]
    (redis_container,) = redis["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    secret = env["VIDREC_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert redis_container["env"][0]["valueFrom"]["secretKeyRef"] == secret
    assert redis_container["ports"][0]["containerPort"] == port
    assert redis["StatefulSet"]["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


@pytest.fixture()
def lake() -> str:
    """Two day-partitions of events in an fsspec in-memory bucket (stands in for s3://)."""
    fs = fsspec.filesystem("memory")
    for day, clicks in (("2024-03-01", [True, False, False]), ("2024-03-02", [True, True])):
        with fs.open(f"memory://vidrec-lake/events/day={day}/part-0.parquet", "wb") as handle:
            pd.DataFrame({"event_id": [f"{day}-{i}" for i in range(len(clicks))], "clicked": clicks}).to_parquet(handle)
    yield "memory://vidrec-lake/events"
    fs.rm("memory://vidrec-lake", recursive=True)


def test_duckdb_reads_partitioned_parquet_from_an_object_store_url(lake: str) -> None:
    daily = read_parquet(
        f"{lake}/*/*.parquet",
        "SELECT day, count(*) AS n, avg(clicked::INT) AS ctr FROM data GROUP BY day ORDER BY day",
        hive_partitioning=True,
    )
    assert daily["n"].tolist() == [3, 2]
    assert daily["ctr"].tolist() == pytest.approx([1 / 3, 1.0])


def test_duckdb_reads_a_file_url_and_names_a_missing_path(tmp_path: Path, lake: str) -> None:
    pd.DataFrame({"video_id": ["a", "b"]}).to_parquet(tmp_path / "videos.parquet")
    assert read_parquet((tmp_path / "videos.parquet").as_uri())["video_id"].tolist() == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="vidrec-lake/nothing"):
        read_parquet(f"{lake.rsplit('/', 1)[0]}/nothing/*.parquet")
