"""The production user-state store: Redis (``VIDREC_STATE_URL=redis://host:port/db``), shared by every
replica of the service, not only the workers of one machine.

Each user is one sorted set ``<prefix>u:<user_key>`` of members ``event_id<US>kind<US>video_id``
scored by the event time: ZADD, then ZREMRANGEBYRANK keeps the newest ``max_items``, then EXPIRE
forgets the user after ``ttl_s`` without events, all in one MULTI/EXEC. A connection broken by a
server restart is re-made on the next command (redis-py's retry), so the store object outlives the
restart; while the server is down every call raises StateUnavailable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from vidrec.state.base import (
    SEED_CLAIM_S,
    StateEvent,
    StateUnavailable,
    StoreSettings,
    check_user_key,
    checked_events,
    seed_items,
)

log = logging.getLogger(__name__)

PREFIX = "vidrec:state:"
SEP = "\x1f"  # ASCII unit separator between a member's event_id, kind and video_id
SEED_CHUNK = 500  # users per MULTI/EXEC while seeding
# A request waits at most ~1 s on a dead server (connect timeout + 2 quick retries), then answers 503.
TIMEOUT_S = 0.5
RETRIES = 2


class RedisStore:
    """``StateStore`` over the Redis server at ``url``."""

    def __init__(self, url: str, settings: StoreSettings = StoreSettings(), prefix: str = PREFIX) -> None:
        self.url, self.settings, self.prefix = url, settings, prefix
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), RETRIES),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=30,
            decode_responses=True,
        )

    def _key(self, user_key: str) -> str:
        return f"{self.prefix}u:{check_user_key(user_key)}"

    @contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as error:  # refused, timed out, loading, out of memory, read-only replica
            raise StateUnavailable(f"the state store {self._safe_url()} failed {doing}: {error}") from error

    def _safe_url(self) -> str:
        """The URL without a password (it ends up in logs and 503 bodies)."""
        kwargs = self.client.connection_pool.connection_kwargs
        return f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"

    @staticmethod
    def _member(event: StateEvent) -> str:
        # Split on a control character no id contains, ~10x cheaper to read back than JSON.
        for part in (event.event_id, event.kind):
            if SEP in part:
                raise ValueError(f"a state event id or kind contains the separator: {part!r}")
        return f"{event.event_id}{SEP}{event.kind}{SEP}{event.video_id}"

    def _append(self, pipe: redis.client.Pipeline, key: str, events: Sequence[StateEvent]) -> None:
        pipe.zadd(key, {self._member(e): e.ts for e in events})
        pipe.zremrangebyrank(key, 0, -self.settings.max_items - 1)
        pipe.expire(key, int(max(1, self.settings.ttl_s)))

    def record(self, events: Sequence[tuple[str, StateEvent]]) -> None:
        events = checked_events(events)
        if not events:
            return
        by_user: dict[str, list[StateEvent]] = {}
        for user_key, event in events:
            by_user.setdefault(self._key(user_key), []).append(event)
        with self._failures("recording events"):
            pipe = self.client.pipeline(transaction=True)
            for key, user_events in by_user.items():
                self._append(pipe, key, user_events)
            pipe.execute()

    def recent(self, user_key: str, n: int | None = None) -> list[StateEvent]:
        key = self._key(user_key)
        limit = self.settings.max_items if n is None else min(n, self.settings.max_items)
        with self._failures("reading a user's events"):
            rows = self.client.zrange(key, -limit, -1, withscores=True)
        out = []
        for member, ts in rows:
            event_id, kind, video_id = member.split(SEP, 2)
            out.append(StateEvent(video_id, kind, ts, event_id))
        return out

    def seed(self, tag: str, histories: Mapping[str, Sequence[str]], cutoff: float) -> bool:
        marker = f"{self.prefix}seed:{tag}"
        keys = {user_key: self._key(user_key) for user_key in histories}
        with self._failures("seeding"):
            # NX: one process wins the claim; it expires if that process dies before finishing.
            if not self.client.set(marker, "running", nx=True, ex=int(SEED_CLAIM_S)):
                return False
            users = list(histories)
            for start in range(0, len(users), SEED_CHUNK):
                pipe = self.client.pipeline(transaction=True)
                for user_key in users[start : start + SEED_CHUNK]:
                    key = keys[user_key]
                    pipe.zremrangebyscore(key, "-inf", cutoff)  # what training saw; later events stay
                    self._append(pipe, key, seed_items(tag, histories[user_key], cutoff, self.settings.max_items))
                pipe.execute()
            self.client.set(marker, f"done {time.time():.0f}")
        log.info("seeded the state store %s from %s: %d users", self._safe_url(), tag, len(users))
        return True

    def health(self) -> None:
        with self._failures("a health check"):
            self.client.ping()

    def bytes_used(self, user_keys: Sequence[str]) -> int:
        """Redis's own accounting (MEMORY USAGE) of these users' keys."""
        with self._failures("measuring memory"):
            pipe = self.client.pipeline(transaction=False)
            for user_key in user_keys:
                pipe.memory_usage(self._key(user_key), samples=0)
            return sum(int(b or 0) for b in pipe.execute())

    def close(self) -> None:
        self.client.close()
