"""`make loop`, kept short: a 2-day closed loop on the tiny world against the real service and pipeline.

Day 0 trains and promotes; the day's held-back videos arrive through /videos; the world's users ask
/recommend over HTTP and answer from the world's behaviour model, feedback goes back through /events with
the request_id; the night retrains on what landed and (--ab-last-day) serves the candidate to a sticky half
of the users beside production on day 1, a live A/B whose per-arm CTR is compared with the simulated A/B. Every
impression the service showed landed and is accounted for by the join."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidrec.world.generate import generate_world

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_a_two_day_loop_on_the_tiny_world(tmp_path: Path) -> None:
    world = tmp_path / "world"
    generate_world(world, size="tiny", progress=False)
    policy = tmp_path / "lenient.yaml"  # the tiny world is too small for the real gate's quality floors
    policy.write_text(
        yaml.safe_dump(
            {"version": 1, "model": "candidate", "rules": [{"name": "auc", "metric": "click_auc", "at_least": 0}]}
        )
    )
    out = tmp_path / "loop.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDREC_", "DAGSTER_", "BENTOML_"))}
    env["VIDREC_PSEUDONYM_KEY"] = "loop-test-key"
    command = [sys.executable, str(REPO / "benchmarks" / "loop.py"), "--world", "tiny", "--data", str(world)]
    command += ["--days", "2", "--sessions", "40", "--uploads-per-day", "2", "--quick", "--policy", str(policy)]
    command += ["--root", str(tmp_path / "loop"), "--out", str(out)]
    command += ["--ab-last-day"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["days"] == 2 and len(result["nights"]) == 2 and result["nights"][0]["promoted_next"]
    # Every impression the service showed landed, and the join accounted for every landed row.
    assert result["impressions_shown"] == result["impressions_landed"] == 2 * 40 * 10
    assert result["unaccounted_impressions"] == 0
    by = {(r["day"], r["policy"]): r for r in result["per_day"]}
    assert set(by) == {(d, p) for d in (0, 1) for p in ("vidrec", "frozen", "oracle")}
    # Day 0 serves the same model as the frozen shadow: the same sessions, the same answers' random numbers.
    assert by[(0, "oracle")]["ctr_at_10"] >= by[(0, "vidrec")]["ctr_at_10"]
    assert by[(1, "vidrec")]["upload_impressions"] > 0  # the uploads reached the slates
    assert result["nights"][0]["uploads_in_catalogue_after_night"] == 2  # day 0's uploads: catalogue by day 1
    for key in ("ctr_final_over_frozen", "ctr_final_over_frozen_ci_low", "uploads_exposure_over_oracle_day_after"):
        assert result[key] is not None
    assert Path(result["plot"]).is_file()
    # The last day ran as a live 50/50 A/B: production stayed, the night's candidate served half the users.
    ab = result["ab_last_day"]
    assert ab["production"] == result["nights"][0]["model_tag"] == result["nights"][1]["model_tag"]
    assert ab["challenger"] != ab["production"]
    assert {a["arm"] for a in ab["arms"]} == {"production", "challenger"}
    assert all(a["impressions"] >= 100 for a in ab["arms"]) and ab["same_ordering"] in (True, False)
