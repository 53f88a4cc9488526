"""The service's side of the online user-state store (``vidrec.state``): acknowledged clicks in, the
freshest history out, seeding at each model load, and a 503 with ``Retry-After`` while the store is down.

Only engagements (clicked events) are stored: the ranker's history is the user's clicks
(``vidrec.engagement.latest_histories``), and impressions without a click would push them out.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import bentoml
from starlette.responses import JSONResponse

from vidrec.landing import FeedbackEvent
from vidrec.privacy import pseudonymise
from vidrec.state import SEED, URL_ENV_VAR, StateEvent, StateStore, StateUnavailable, store_from_env

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
OFF = "off"

R = TypeVar("R")


class Seedable(Protocol):
    tag: str
    histories: dict[str, list[str]]
    data_cutoff: float | None


def kind_of(event: FeedbackEvent) -> str:
    """The strongest engagement an event reports (conversion > watch > click)."""
    return "conversion" if event.converted else "watch" if event.watch_s > 0 else "click"


def _epoch(ts: datetime) -> float:
    """Seconds since the epoch; a timestamp without a zone is UTC (the API's contract), not server-local."""
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()


class UserState:
    """One worker's handle on the shared store, keyed by the service's pseudonymisation key. ``store`` None
    (``VIDREC_STATE_URL=off``) serves the bundle's histories frozen at promotion, as before the store existed
    (what benchmarks/realtime.py compares against)."""

    def __init__(self, store: StateStore | None, key: str) -> None:
        self.store, self.key = store, key
        self._seeded: set[str] = set()  # tags this worker has seen seeded (by itself or another worker)

    @classmethod
    def from_env(cls, root: Path, key: str) -> UserState:
        off = os.environ.get(URL_ENV_VAR, "").lower() == OFF
        return cls(None if off else store_from_env(root), key)

    def record(self, batch: Sequence[FeedbackEvent], event_ids: Sequence[str]) -> int:
        """Store the clicked events of a landed batch; the number stored. Raises StateUnavailable."""
        pairs = [
            (pseudonymise(e.user_id, self.key), StateEvent(e.video_id, kind_of(e), _epoch(e.ts), event_id))
            for e, event_id in zip(batch, event_ids, strict=True)
            if e.clicked
        ]
        if self.store is not None:
            self.store.record(pairs)
        return len(pairs)

    def history(self, user_key: str, trained: Mapping[str, Sequence[str]], n: int) -> list[str]:
        """The user's video_ids, oldest first (the last ``n`` at least, when there are that many).

        The store's, when they include this user's seeded history (then the store holds training's history
        followed by every later event) or when the user has ``n`` live events (nothing older would be used);
        otherwise ``trained`` (this version's bundle: the seed is pending, or the user's state expired)
        followed by the store's live events. Raises StateUnavailable."""
        if self.store is None:
            return list(trained.get(user_key, ()))
        recent = self.store.recent(user_key, n)
        if len(recent) >= n or any(e.kind == SEED for e in recent):
            return [e.video_id for e in recent]
        return [*trained.get(user_key, ()), *(e.video_id for e in recent)]

    def ensure_seeded(self, model: Seedable) -> None:
        """Seed the store from ``model``'s training histories unless done (once per tag across workers,
        the store's marker decides). A store that is down is retried at the next call (every model poll);
        until then ``history`` falls back to the bundle, so nothing is wrong meanwhile, only less fresh."""
        if self.store is None or model.tag in self._seeded:
            return
        # Events at or before the bundle's data cut-off (its newest event) are replaced by training's
        # history; later ones (landed while it trained, or since) are kept. A bundle written before the
        # cut-off was recorded falls back to its store entry's creation time, which bounds it from above.
        cutoff = model.data_cutoff
        if cutoff is None:
            cutoff = bentoml.models.get(model.tag).info.creation_time.timestamp()
        try:
            self.store.seed(model.tag, model.histories, cutoff)
        except StateUnavailable as error:
            log.warning("seeding the user-state store from %s failed (retried at the next poll): %s", model.tag, error)
            return
        except ValueError as error:  # a raw user id in the bundle: never stored, and no reason to stop serving
            log.error("not seeding the user-state store from %s: %s", model.tag, error)
        self._seeded.add(model.tag)


def unavailable(error: StateUnavailable, landed: Sequence[str] | None = None) -> JSONResponse:
    """503 with Retry-After, saying that the state store (not the server) is down; for /events, that the
    batch is landed durably anyway (so a client need not resend it)."""
    message = f"the user state store is unavailable: {error}; retry after {RETRY_AFTER_S} s"
    body: dict[str, Any] = {"error": message}
    if landed is not None:
        body["landed_event_ids"] = list(landed)
        body["error"] += (
            f" ({len(landed)} events were landed durably and reach the next training run; they are not yet"
            " in the user's live history)"
        )
    log.warning("503: %s", message)
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def answers_503(endpoint: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R | JSONResponse]]:
    """An async endpoint that answers ``unavailable(...)`` when the state store raises StateUnavailable."""

    @functools.wraps(endpoint)
    async def wrapped(*args: Any, **kwargs: Any) -> R | JSONResponse:
        try:
            return await endpoint(*args, **kwargs)
        except StateUnavailable as error:
            return unavailable(error)

    return wrapped
