"""Real-time user state through a served process with two workers: an acknowledged click is in the next
/recommend on either worker, a new user becomes known without a retrain, a dead store is a 503 with
Retry-After that loses no acknowledged event, and a restarted Redis is picked up without a restart."""

from __future__ import annotations

import os
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.bentos.live_server import served
from tests.redis_server import running_redis
from vidrec.config import Paths
from vidrec.landing import read_landed_events
from vidrec.privacy import pseudonymise
from vidrec.state import SEED, open_store

pytestmark = pytest.mark.slow
FRESH_S = 1.0
READS = 12  # new connections each: the two workers share the accepting socket, so both answer some


def _click(base: str, user: str, video: str) -> httpx.Response:
    event = {"user_id": user, "video_id": video, "clicked": True, "watch_s": 3.0}
    return httpx.post(f"{base}/events", json={"events": [event]}, timeout=30)


def _recommend(base: str, user: str) -> httpx.Response:
    return httpx.post(f"{base}/recommend", json={"user_id": user, "k": 3}, timeout=30)


def _history(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [h["video_id"] for h in reply.json()["history"]]


def _assert_fresh(base: str, user: str, video: str) -> None:
    """The click is in every /recommend from the moment /events acknowledged it (within FRESH_S)."""
    assert _click(base, user, video).status_code == 200
    acked = time.monotonic()
    reply = _recommend(base, user)
    assert time.monotonic() - acked < FRESH_S  # the first read after the ack (request time included)
    for _ in range(READS):
        assert _history(reply)[-1] == video and reply.json()["known_user"] is True
        reply = _recommend(base, user)


def _env(vidrec_env: dict, url: str) -> dict[str, str]:
    return {**vidrec_env, "VIDREC_STATE_URL": url, "VIDREC_MODEL_POLL_S": "0.5"}


def test_embedded_store_clicks_are_fresh_on_both_workers_and_new_users_become_known(
    trained, known_user: str, vidrec_env: dict, vidrec_root: Path, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'state.sqlite'}"
    videos = trained.items["video_id"].tolist()
    with served(_env(vidrec_env, url), vidrec_root / "state_embedded.log") as base:
        new_user = f"new-{uuid.uuid4().hex[:8]}"
        first = _recommend(base, new_user).json()
        assert first["known_user"] is False and first["history"] == []
        _assert_fresh(base, new_user, videos[0])
        _assert_fresh(base, new_user, videos[1])
        assert _history(_recommend(base, new_user)) == [videos[0], videos[1]]
        trained_history = _history(_recommend(base, known_user))
        _assert_fresh(base, known_user, videos[2])
        after = _history(_recommend(base, known_user))  # the bundle's history, then the click (oldest may drop)
        assert after[:-1] == trained_history[len(trained_history) - len(after) + 1 :]
    # Seeded once from the bundle, under pseudonymised keys only.
    store = open_store(url, tmp_path)
    key = os.environ["VIDREC_PSEUDONYM_KEY"]
    kinds = [e.kind for e in store.recent(pseudonymise(known_user, key))]
    assert kinds[:-1] == [SEED] * (len(kinds) - 1) and kinds[-1] == "watch"
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite*"))
    assert new_user.encode() not in raw and known_user.encode() not in raw


@pytest.mark.broker
def test_redis_down_is_a_503_that_keeps_the_event_and_a_restart_recovers(
    trained, vidrec_env: dict, vidrec_root: Path, tmp_path: Path
) -> None:
    videos = trained.items["video_id"].tolist()
    user = f"redis-{uuid.uuid4().hex[:8]}"
    with ExitStack() as first_redis:
        server = first_redis.enter_context(running_redis(tmp_path / "redis-1"))
        with served(_env(vidrec_env, server.url()), vidrec_root / "state_redis.log") as base:
            _assert_fresh(base, user, videos[0])
            first_redis.close()  # the store process dies (stopped by its PID); the service keeps running
            down = _recommend(base, user)
            assert down.status_code == 503 and down.headers["retry-after"] == "1"
            assert "user state store is unavailable" in down.json()["error"]
            lost = _click(base, user, videos[1])
            assert lost.status_code == 503 and lost.headers["retry-after"] == "1"
            landed_ids = lost.json()["landed_event_ids"]
            landed = read_landed_events(Paths(vidrec_root).landing).rows.set_index("event_id")
            assert landed.loc[landed_ids[0], "video_id"] == videos[1]  # acknowledged as landed, and it is
            with running_redis(tmp_path / "redis-2", port=server.port):  # same address, empty
                deadline = time.monotonic() + 10
                while _recommend(base, user).status_code != 200:
                    assert time.monotonic() < deadline, "the service did not recover from a Redis restart"
                    time.sleep(0.2)
                _assert_fresh(base, user, videos[2])
