"""The user-state contract: the same tests against the embedded SQLite store and a real redis-server."""

from __future__ import annotations

import multiprocessing
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, running_redis
from vidrec.privacy import pseudonymise
from vidrec.state import SEED, StateEvent, StateStore, StateUnavailable, StoreSettings, open_store
from vidrec.state.sqlite import SqliteStore

KEY = "state-test-key"
ALICE, BOB = pseudonymise("alice", KEY), pseudonymise("bob", KEY)


class Backend:
    """One backend under test: opens store objects on the same data, and can take the store down."""

    def __init__(self, name: str, tmp_path: Path, stack: ExitStack) -> None:
        self.name, self.tmp_path, self.stack = name, tmp_path, stack
        self.server: RedisServer | None = None
        if name == "redis":
            self.server = stack.enter_context(running_redis(tmp_path / "redis"))
            self.url = self.server.url()
        else:
            self.url = f"sqlite://{tmp_path / 'state.sqlite'}"
        self._blocker: object | None = None

    def open(self, **settings: float) -> StateStore:
        if self.server is None:  # the "unavailable" test waits this long on the lock
            return SqliteStore(self.tmp_path / "state.sqlite", StoreSettings(**settings), busy_timeout_s=0.3)
        return open_store(self.url, self.tmp_path, StoreSettings(**settings))

    def take_down(self) -> None:
        """Redis: stop the server (by its PID). SQLite: another process-like connection holds the write lock."""
        if self.server is not None:
            self.stack.close()
            return
        import sqlite3

        blocker = sqlite3.connect(self.tmp_path / "state.sqlite", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        self._blocker = blocker


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.broker)])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    with ExitStack() as stack:
        yield Backend(request.param, tmp_path, stack)


def _click(video: str, ts: float, event_id: str = "") -> StateEvent:
    return StateEvent(video, "click", ts, event_id)


def test_recent_keeps_the_last_n_oldest_first(backend: Backend) -> None:
    store = backend.open(max_items=5)
    store.record([(ALICE, _click(f"v{i}", 1000.0 + i)) for i in range(8)])
    store.record([(BOB, StateEvent("w", "conversion", 2000.0))])
    assert [e.video_id for e in store.recent(ALICE)] == ["v3", "v4", "v5", "v6", "v7"]
    assert [e.video_id for e in store.recent(ALICE, 2)] == ["v6", "v7"]
    assert store.recent(BOB) == [StateEvent("w", "conversion", 2000.0, store.recent(BOB)[0].event_id)]
    store.record([(ALICE, _click("late-but-old", 999.0))])  # older than all kept: trimmed at once
    assert [e.video_id for e in store.recent(ALICE)] == ["v3", "v4", "v5", "v6", "v7"]
    assert store.recent(pseudonymise("nobody", KEY)) == []


def test_idle_users_expire_after_the_ttl(backend: Backend) -> None:
    store = backend.open(ttl_s=1.0)
    store.record([(ALICE, _click("a", time.time()))])
    assert len(store.recent(ALICE)) == 1
    time.sleep(1.3)
    store.record([(BOB, _click("b", time.time()))])
    assert store.recent(ALICE) == []
    assert len(store.recent(BOB)) == 1
    if isinstance(store, SqliteStore):  # the rows go too, not only out of sight
        assert store.purge_idle(time.time() + 0.5) == 1


def test_seed_keeps_events_after_the_cutoff_and_runs_once_per_tag(backend: Backend) -> None:
    store, cutoff = backend.open(max_items=10), 10_000.0
    store.record([(ALICE, _click("old-live", cutoff - 50)), (ALICE, _click("new-live", cutoff + 5))])
    assert store.seed("model:v1", {ALICE: ["h1", "h2", "h3"], BOB: ["b1"]}, cutoff) is True
    alice = store.recent(ALICE)
    assert [e.video_id for e in alice] == ["h1", "h2", "h3", "new-live"]  # training saw old-live (in h1..h3)
    assert [e.kind for e in alice] == [SEED, SEED, SEED, "click"]
    assert [e.video_id for e in store.recent(BOB)] == ["b1"]
    store.record([(BOB, _click("after-seed", cutoff + 9))])
    assert store.seed("model:v1", {BOB: ["other"]}, cutoff) is False  # a second worker loading v1
    assert [e.video_id for e in store.recent(BOB)] == ["b1", "after-seed"]
    assert store.seed("model:v2", {ALICE: ["g1"]}, cutoff + 6) is True  # the next promotion replaces seeds
    assert [e.video_id for e in store.recent(ALICE)] == ["g1"]


def test_two_workers_loading_one_version_seed_it_once(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    histories = {pseudonymise(f"user-{i}", KEY): [f"v{i}", f"v{i + 1}"] for i in range(1200)}
    results: list[bool] = []
    threads = [threading.Thread(target=lambda s=s: results.append(s.seed("m:1", histories, 50.0))) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert [e.video_id for e in stores[0].recent(pseudonymise("user-1199", KEY))] == ["v1199", "v1200"]


def test_only_pseudonymised_keys_are_stored(backend: Backend) -> None:
    store = backend.open()
    for raw in ("alice", "user-42", ALICE.upper(), ALICE + "0"):
        with pytest.raises(ValueError, match="only pseudonymised user keys"):
            store.record([(raw, _click("v", 1.0))])
        with pytest.raises(ValueError, match="only pseudonymised user keys"):
            store.recent(raw)
    with pytest.raises(ValueError, match="only pseudonymised user keys"):
        store.seed("m:1", {ALICE: ["v"], "bob": ["v"]}, 1.0)
    with pytest.raises(ValueError, match="unknown state event kind"):
        store.record([(ALICE, StateEvent("v", "like", 1.0))])
    assert store.recent(ALICE) == []  # a batch with one raw key or one unknown kind stores nothing
    assert store.seed("m:1", {ALICE: ["v"]}, 1.0) is True  # and the refused seed did not claim the tag


def _write_many(url: str, root: str, user_key: str, writer: int, n: int) -> None:
    store = open_store(url, Path(root), StoreSettings(max_items=1000))
    for i in range(n):
        store.record([(user_key, _click(f"v{writer}-{i}", 1000.0 + i, f"{writer}-{i}"))])


def test_two_processes_writing_at_once_lose_nothing(backend: Backend) -> None:
    store = backend.open(max_items=1000)
    store.health()  # the schema exists before the writers race to create it
    context = multiprocessing.get_context("fork")
    writers = [
        context.Process(target=_write_many, args=(backend.url, str(backend.tmp_path), ALICE, w, 150)) for w in (1, 2)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    ids = {e.event_id for e in store.recent(ALICE, 1000)}
    assert ids == {f"{w}-{i}" for w in (1, 2) for i in range(150)}


def test_an_unavailable_store_raises_state_unavailable(backend: Backend) -> None:
    store = backend.open()
    store.record([(ALICE, _click("a", 1.0))])
    store.health()
    backend.take_down()
    started = time.monotonic()
    with pytest.raises(StateUnavailable, match="the state store .* failed recording events"):
        store.record([(ALICE, _click("b", 2.0))])
    with pytest.raises(StateUnavailable):
        store.health()
    assert time.monotonic() - started < 5.0  # a dead store answers fast, so requests fail fast


@pytest.mark.broker
def test_the_redis_client_recovers_after_a_server_restart(tmp_path: Path) -> None:
    with running_redis(tmp_path / "first") as server:
        store = open_store(server.url(), tmp_path)
        store.record([(ALICE, _click("before", 1.0))])
        port = server.port
    with pytest.raises(StateUnavailable, match="failed reading"):
        store.recent(ALICE)
    with running_redis(tmp_path / "second", port=port):  # same address, empty (no persistence in tests)
        assert store.recent(ALICE) == []
        store.record([(ALICE, _click("after", 2.0))])
        assert [e.video_id for e in store.recent(ALICE)] == ["after"]
        store.health()


def test_an_embedded_store_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StateUnavailable, match="cannot create the state store folder"):
        open_store(f"sqlite://{tmp_path / 'a-file' / 'sub' / 'state.sqlite'}", tmp_path)
    with pytest.raises(ValueError, match="expected redis://"):
        open_store("mysql://db", tmp_path)
