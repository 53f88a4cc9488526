"""User-id pseudonymisation: a keyed hash, so ids cannot be reversed or re-derived without the key."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd


def pseudonymise(user_id: str, key: str) -> str:
    if not key:
        raise ValueError("the pseudonymisation key is empty; set VIDREC_PSEUDONYM_KEY")
    return hmac.new(key.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:24]


def pseudonymise_column(user_ids: pd.Series, key: str) -> pd.Series:
    """Hashes each distinct id once (logs repeat users many times)."""
    distinct = user_ids.astype(str).unique()
    mapping = {u: pseudonymise(u, key) for u in distinct}
    return user_ids.astype(str).map(mapping)
