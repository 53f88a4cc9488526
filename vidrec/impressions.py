"""The impression log: one row per item the service showed, and the signed request ids that name a slate.

A ``request_id`` is a token signed with the pseudonymisation key (HMAC-SHA256, truncated to 96 bits). It
binds a random nonce, the issue time, the user's pseudonymised key and a 3-byte digest of each shown
video id in display order. Any worker, or a restarted one, can therefore tell from the token alone, with no
shared state, whether feedback posted to ``/events`` names a request the service really issued, for the
same user, and a video that was in that slate (a stranger's video matches a digest with probability
k / 2^24). The token grows 4 characters per shown item (~60 characters at k = 10).

Rows are JSON lines in ``<landing>/impressions/date=YYYY-MM-DD/<writer>.jsonl``, written by
``ImpressionLog``: a request appends its rows to memory, and a background thread writes and fsyncs them
in batches every ``flush_s`` (group commit: /recommend never waits on the disk). A crash of the process
can lose at most the last ``flush_s`` of impressions; feedback that names such a lost request is then
quarantined with a reason by the join (``vidrec/feedback.py``), never silently dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import random
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vidrec.landing import LandedRows, append_day_rows, read_landed_rows

log = logging.getLogger(__name__)

IMPRESSIONS_DIR = "impressions"
IMPRESSION_COLUMNS = (
    "request_id",
    "ts",
    "user_key",
    "model_tag",
    "arm",
    "policy",
    "video_id",
    "position",
    "score",
    "propensity",
)
_VERSION = b"r1"
_NONCE = 8
_DIGEST = 3
_MAC = 12


class RequestIdError(ValueError):
    """A request_id the service never issued, issued to another user, or not naming the video."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(video_id: str) -> bytes:
    return hashlib.blake2b(video_id.encode(), digest_size=_DIGEST).digest()


def _mac(key: str, payload: bytes, user_key: str) -> bytes:
    return hmac.new(key.encode(), _VERSION + payload + user_key.encode(), hashlib.sha256).digest()[:_MAC]


# Simulations only (never set in production): seeds this process's nonce stream, so the exploration draws
# repeat from run to run. Nonces then depend on the order of requests in the process, so a simulation that
# wants identical slates sends its requests one at a time to one worker (``benchmarks/loop.py`` does).
NONCE_SEED_ENV_VAR = "VIDREC_SIM_NONCE_SEED"
_seeded: dict[str, random.Random] = {}
_seeded_lock = threading.Lock()


def new_nonce() -> int:
    """64 random bits: a request's identity, and the seed of its exploration draw (from the OS, unless a
    simulation seeds the stream with ``VIDREC_SIM_NONCE_SEED``, read when called)."""
    seed = os.environ.get(NONCE_SEED_ENV_VAR)
    if not seed:
        return int.from_bytes(os.urandom(_NONCE), "big")
    with _seeded_lock:
        stream = _seeded.setdefault(seed, random.Random(f"vidrec-nonce:{seed}"))
        return stream.getrandbits(8 * _NONCE)


def reset_nonce_streams() -> None:
    """Forget the seeded streams (a simulation's new run in the same process starts them again)."""
    with _seeded_lock:
        _seeded.clear()


def issue_request_id(
    key: str, user_key: str, video_ids: Sequence[str], nonce: int | None = None, issued_at: float | None = None
) -> str:
    """A signed request id for the slate ``video_ids`` shown to ``user_key``."""
    issued = int(issued_at if issued_at is not None else time.time())
    nonce = new_nonce() if nonce is None else nonce
    digests = b"".join(_digest(v) for v in video_ids)
    payload = nonce.to_bytes(_NONCE, "big") + struct.pack(">I", issued) + digests
    return f"{_VERSION.decode()}.{_b64(payload)}.{_b64(_mac(key, payload, user_key))}"


@dataclass(frozen=True)
class IssuedRequest:
    nonce: int  # seeds the request's exploration draw, so a logged slate can be replayed
    issued_at: int
    digests: tuple[bytes, ...]

    def position_of(self, video_id: str) -> int | None:
        """The video's position in the slate (None when it was not shown)."""
        digest = _digest(video_id)
        return next((i for i, d in enumerate(self.digests) if d == digest), None)


def verify_request_id(key: str, user_key: str, request_id: str) -> IssuedRequest:
    """The slate a request id names; RequestIdError when it was not issued by this service to this user."""
    try:
        version, payload_text, mac_text = request_id.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except ValueError:
        raise RequestIdError(f"request_id {request_id[:80]!r} is not one the service issued (malformed)") from None
    if version.encode() != _VERSION or (len(payload) - _NONCE - 4) % _DIGEST or len(payload) < _NONCE + 4:
        raise RequestIdError(f"request_id {request_id[:80]!r} is not one the service issued (unknown format)")
    if not hmac.compare_digest(mac, _mac(key, payload, user_key)):
        raise RequestIdError(
            f"request_id {request_id[:80]!r} was not issued by this service to this user_id "
            "(a forged, altered or another user's request id)"
        )
    nonce = int.from_bytes(payload[:_NONCE], "big")
    (issued,) = struct.unpack(">I", payload[_NONCE : _NONCE + 4])
    body = payload[_NONCE + 4 :]
    return IssuedRequest(nonce, issued, tuple(body[i : i + _DIGEST] for i in range(0, len(body), _DIGEST)))


def request_seed(request_id: str) -> int:
    """The nonce inside a request id (64 random bits): the seed of that request's exploration draw."""
    return int.from_bytes(_unb64(request_id.split(".")[1])[:_NONCE], "big")


class ImpressionLog:
    """Appends impression rows to the landing area in fsync'd batches from a background thread."""

    def __init__(self, landing: Path, flush_s: float = 0.05) -> None:
        self.root = Path(landing) / IMPRESSIONS_DIR
        self.writer = f"{os.uname().nodename}-{os.getpid()}"
        self.flush_s = flush_s
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="impression-log", daemon=True)
        self._thread.start()

    def log(self, rows: list[dict]) -> None:
        """Queue rows (``IMPRESSION_COLUMNS``); written and fsync'd within ``flush_s``."""
        with self._lock:
            self._pending.extend(rows)

    def flush(self) -> int:
        """Write and fsync everything queued now; returns the rows written."""
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            try:
                append_day_rows(self.root, self.writer, rows)
            except OSError:
                with self._lock:  # keep them for the next attempt rather than losing them
                    self._pending[:0] = rows
                raise
        return len(rows)

    def _run(self) -> None:
        while not self._stopped.wait(self.flush_s):
            try:
                self.flush()
            except OSError as error:  # a full or failing disk: retried on the next tick, and said loudly
                log.error("impression log write failed (rows kept in memory, retrying): %s", error)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stopped.set()
        self._thread.join(timeout=5)
        self.flush()


def read_landed_impressions(landing: Path) -> LandedRows:
    """Every landed impression row (ts as UTC timestamps) and the lines that could not be read."""
    landed = read_landed_rows(Path(landing) / IMPRESSIONS_DIR, IMPRESSION_COLUMNS)
    landed.rows["ts"] = pd.to_datetime(landed.rows["ts"], utc=True)
    landed.rows = landed.rows.astype({"position": "int64", "score": "float64", "propensity": "float64"})
    return landed
