"""The service's merge of the bundle's history with the user-state store, and what /events stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bentos.user_state import UserState, kind_of
from vidrec.landing import FeedbackEvent
from vidrec.privacy import pseudonymise
from vidrec.state import StoreSettings
from vidrec.state.sqlite import SqliteStore

KEY = "user-state-key"
ANN, BEN = pseudonymise("ann", KEY), pseudonymise("ben", KEY)
TRAINED = {ANN: ["t1", "t2", "t3"], BEN: ["b1"]}


@pytest.fixture()
def state(tmp_path: Path) -> UserState:
    return UserState(SqliteStore(tmp_path / "s.sqlite", StoreSettings(max_items=10)), KEY)


def _event(user: str, video: str, second: int, **outcome) -> FeedbackEvent:
    return FeedbackEvent(user, video, datetime(2030, 1, 1, 0, 0, second, tzinfo=UTC), **outcome)


def test_clicks_are_stored_with_their_kind_and_impressions_are_not(state: UserState) -> None:
    batch = [
        _event("ann", "v1", 1, clicked=True),
        _event("ann", "v2", 2),  # an impression without a click is not history
        _event("ann", "v3", 3, clicked=True, watch_s=4.0),
        _event("ann", "v4", 4, clicked=True, converted=True),
    ]
    assert state.record(batch, ["e1", "e2", "e3", "e4"]) == 3
    stored = state.store.recent(ANN)
    assert [(e.video_id, e.kind, e.event_id) for e in stored] == [
        ("v1", "click", "e1"),
        ("v3", "watch", "e3"),
        ("v4", "conversion", "e4"),
    ]
    assert stored[0].ts == datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    naive = FeedbackEvent("ann", "v5", datetime(2030, 1, 1, 0, 0, 5), clicked=True)  # UTC by contract
    state.record([naive], ["e5"])
    assert state.store.recent(ANN)[-1].ts == datetime(2030, 1, 1, 0, 0, 5, tzinfo=UTC).timestamp()
    assert kind_of(_event("x", "v", 1, clicked=True, watch_s=1.0, converted=True)) == "conversion"


def test_history_is_the_bundle_then_later_clicks_until_seeded(state: UserState) -> None:
    assert state.history(ANN, TRAINED, 5) == ["t1", "t2", "t3"]  # nothing live: the bundle's
    state.record([_event("ann", "live1", 1, clicked=True)], ["e1"])
    assert state.history(ANN, TRAINED, 5) == ["t1", "t2", "t3", "live1"]  # seed pending: bundle + live
    new = pseudonymise("newcomer", KEY)
    assert state.history(new, TRAINED, 5) == []
    state.record([_event("newcomer", "n1", 1, clicked=True)], ["e2"])
    assert state.history(new, TRAINED, 5) == ["n1"]  # known after one click, no retrain


def test_history_is_the_stores_once_seeded_or_once_it_holds_a_full_window(state: UserState) -> None:
    cutoff = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    state.store.seed("m:1", {ANN: ["s1", "s2"]}, cutoff)
    state.record([_event("ann", "live1", 1, clicked=True)], ["e1"])
    assert state.history(ANN, TRAINED, 5) == ["s1", "s2", "live1"]  # the seed stands for the bundle
    state.record([_event("ben", f"w{i}", i, clicked=True) for i in range(1, 4)], ["x1", "x2", "x3"])
    assert state.history(BEN, TRAINED, 3) == ["w1", "w2", "w3"]  # a full window: the bundle is older


def test_store_off_serves_the_bundle(tmp_path: Path) -> None:
    off = UserState(None, KEY)
    assert off.record([_event("ann", "v1", 1, clicked=True)], ["e1"]) == 1
    assert off.history(ANN, TRAINED, 2) == ["t1", "t2", "t3"]
