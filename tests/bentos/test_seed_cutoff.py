"""Seeding the online user state at a model load keeps what the model's data did not include: the bundle
records its data cut-off (the newest event it was built from), and events after that cut-off survive the
seed even when they landed before the model was saved (while it trained)."""

import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import bentoml
import pytest

from bentos.user_state import UserState
from models.serving.bundle import load_bundle
from vidrec.landing import FeedbackEvent
from vidrec.privacy import pseudonymise
from vidrec.state import StoreSettings, open_store

KEY = "seed-key"


def test_the_bundle_records_the_newest_event_of_its_data(trained) -> None:
    bundle = load_bundle(Path(bentoml.models.get(trained.tag).path))
    assert bundle.data_cutoff == pytest.approx(trained.events["ts"].max().timestamp(), abs=1e-3)
    assert bundle.data_cutoff < bentoml.models.get(trained.tag).info.creation_time.timestamp()


def test_seeding_keeps_the_events_after_the_data_cutoff(tmp_path: Path) -> None:
    state = UserState(open_store(None, tmp_path, StoreSettings(max_items=20)), KEY)
    now = time.time()
    cutoff = now - 100  # the model's data ends here; it was saved (and is loaded) later

    def click(video: str, at: float) -> FeedbackEvent:
        return FeedbackEvent("alice", video, datetime.fromtimestamp(at, UTC), clicked=True)

    state.record([click("in_training", cutoff - 50), click("while_training", cutoff + 40)], ["e1", "e2"])
    user = pseudonymise("alice", KEY)
    model = SimpleNamespace(tag="m:1", histories={user: ["old", "in_training"]}, data_cutoff=cutoff)
    state.ensure_seeded(model)
    # Training's history replaces what it already includes; the click after its cut-off is kept, after it.
    assert state.history(user, model.histories, 20) == ["old", "in_training", "while_training"]
