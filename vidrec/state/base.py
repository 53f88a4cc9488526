"""The online user-state contract: what a store keeps for a user, its settings and its one error type.

A store holds each user's last ``max_items`` engagements (video, event kind, time), keyed only by the
pseudonymised ``user_key`` (``vidrec.privacy.pseudonymise``), and forgets users idle for ``ttl_s``.
Both backends (``vidrec.state.sqlite``, ``vidrec.state.redis_store``) pass the same contract tests
(tests/vidrec/test_state_store.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# ``pseudonymise`` yields 24 lowercase hex digits; anything else is a raw id that must never be stored.
USER_KEY_PATTERN = re.compile(r"[0-9a-f]{24}")
SEED = "seed"  # the kind of an item that came from the training histories at a promotion
KINDS = frozenset({"click", "watch", "conversion", SEED})
DEFAULT_MAX_ITEMS = 50  # the ranker reads the last 20; 50 leaves room for a longer history without a migration
DEFAULT_TTL_S = 30 * 24 * 3600.0
# A seed claimed this long ago and never finished belongs to a worker that died: another may redo it.
SEED_CLAIM_S = 600.0


class StateUnavailable(RuntimeError):
    """The state store cannot be reached or written now (server down, database locked, disk error)."""


class StateEvent(NamedTuple):
    """One engagement of a user: ``ts`` in epoch seconds (the event's time, not the write's). A named tuple:
    a read builds up to ``max_items`` of them per /recommend, at ~0.2 us each (a validating dataclass cost
    ~1.5 us); ``checked`` validates on the write path."""

    video_id: str
    kind: str
    ts: float
    event_id: str = ""

    def checked(self) -> StateEvent:
        """This event with an id (two clicks on one video in one second are two events); ValueError for an
        unknown kind."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown state event kind {self.kind!r}; expected one of {sorted(KINDS)}")
        return self if self.event_id else self._replace(event_id=uuid.uuid4().hex[:16])


@dataclass(frozen=True)
class StoreSettings:
    max_items: int = DEFAULT_MAX_ITEMS
    ttl_s: float = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.ttl_s <= 0:
            raise ValueError(f"max_items must be >= 1 and ttl_s > 0, got {self.max_items} and {self.ttl_s}")


def checked_events(events: Sequence[tuple[str, StateEvent]]) -> list[tuple[str, StateEvent]]:
    """``(user_key, event)`` pairs validated as a whole before anything is written: a batch with one raw
    user id or unknown kind stores nothing."""
    return [(check_user_key(u), e.checked()) for u, e in events]


def check_user_key(user_key: str) -> str:
    """``user_key`` when it is a pseudonymised key; ValueError for anything that could be a raw user id."""
    if not isinstance(user_key, str) or not USER_KEY_PATTERN.fullmatch(user_key):
        raise ValueError(
            f"refusing to store state under {str(user_key)[:8]!r}...: only pseudonymised user keys "
            "(vidrec.privacy.pseudonymise, 24 hex digits) may be stored"
        )
    return user_key


def seed_items(tag: str, videos: Sequence[str], cutoff: float, max_items: int) -> list[StateEvent]:
    """A training history as state items, oldest first, all just before ``cutoff`` (1 ms apart) so that
    any live event after the cut-off sorts after them and a later seed at or after ``cutoff`` replaces them."""
    kept = list(videos)[-max_items:]
    return [
        StateEvent(video, SEED, cutoff - (len(kept) - i) * 1e-3, f"{SEED}:{tag}:{i}") for i, video in enumerate(kept)
    ]


class StateStore(Protocol):
    """Online user state, shared by every worker process of the service."""

    settings: StoreSettings

    def record(self, events: Sequence[tuple[str, StateEvent]]) -> None:
        """Store ``(user_key, event)`` pairs in one short transaction; raises StateUnavailable."""
        ...

    def recent(self, user_key: str, n: int | None = None) -> list[StateEvent]:
        """The user's last ``n`` (default ``max_items``) events, oldest first; [] for an unknown or idle user."""
        ...

    def seed(self, tag: str, histories: Mapping[str, Sequence[str]], cutoff: float) -> bool:
        """Merge a promoted model's training histories in, once per ``tag`` across all processes: each
        user's events at or before ``cutoff`` are replaced by the training history, later ones are kept.
        True when this call did the seeding, False when another call did or is doing it."""
        ...

    def health(self) -> None:
        """Returns when the store answers; raises StateUnavailable otherwise."""
        ...

    def close(self) -> None: ...
