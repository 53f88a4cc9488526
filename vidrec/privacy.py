"""User-id pseudonymisation: a keyed hash, so ids cannot be reversed or re-derived without the key;
and the guard that keeps the public demo key away from real users' ids."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import pandas as pd

from vidrec.config import ALLOW_DEMO_KEY_ENV_VAR, DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV_VAR

log = logging.getLogger(__name__)

# What the demo world generator writes and no real source has (vidrec/world/generate.py).
DEMO_WORLD_MARKER = "ground_truth"

DEMO_KEY_WARNING = (
    f"{PSEUDONYM_KEY_ENV_VAR} is not set: user ids are hashed with the PUBLIC demo key, which anyone can read "
    "in vidrec's source, so they can be re-derived from the raw ids. Fine for the simulated demo world only; "
    f"set {PSEUDONYM_KEY_ENV_VAR} to a secret (e.g. `openssl rand -hex 32`) for real data."
)


class DemoKeyRefused(ValueError):
    """The public demo key was about to pseudonymise data that is not a demo world."""


def is_demo_world(directory: Path) -> bool:
    """A simulated world from ``vidrec.world.generate`` (it has a ``ground_truth/`` folder)."""
    return (Path(directory) / DEMO_WORLD_MARKER).is_dir()


def guard_key(key: str, data_dir: Path, allow_demo_key: bool = False) -> str:
    """``key``, once it is safe to use on ``data_dir``.

    The demo key warns on a demo world, and on other data is refused unless ``allow_demo_key``
    (``VIDREC_ALLOW_DEMO_KEY=1``) says so explicitly, with a warning.
    """
    if key != DEMO_PSEUDONYM_KEY:
        return key
    if is_demo_world(data_dir):
        log.warning(DEMO_KEY_WARNING)
        return key
    if allow_demo_key:
        log.warning(
            "%s %s=1 lets it pseudonymise %s, which is not a demo world.",
            DEMO_KEY_WARNING,
            ALLOW_DEMO_KEY_ENV_VAR,
            data_dir,
        )
        return key
    raise DemoKeyRefused(
        f"refusing to pseudonymise the users of {data_dir} with the public demo key: it is not a demo world "
        f"(no {DEMO_WORLD_MARKER}/ folder) and {PSEUDONYM_KEY_ENV_VAR} is not set. Set {PSEUDONYM_KEY_ENV_VAR} "
        f"to a secret (e.g. `export {PSEUDONYM_KEY_ENV_VAR}=$(openssl rand -hex 32)`, kept in your secret store: "
        f"the same key must be used on every run), or set {ALLOW_DEMO_KEY_ENV_VAR}=1 to run with the demo key "
        "anyway (never for real users)."
    )


def pseudonymise(user_id: str, key: str) -> str:
    if not key:
        raise ValueError("the pseudonymisation key is empty; set VIDREC_PSEUDONYM_KEY")
    return hmac.new(key.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:24]


def pseudonymise_column(user_ids: pd.Series, key: str) -> pd.Series:
    """Hashes each distinct id once (logs repeat users many times)."""
    distinct = user_ids.astype(str).unique()
    mapping = {u: pseudonymise(u, key) for u in distinct}
    return user_ids.astype(str).map(mapping)
