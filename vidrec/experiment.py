"""Which arm of a live A/B experiment a user is in: sticky by HMAC(user_key, experiment salt).

No Dagster, no BentoML: the service assigns with it on every request and the tests check its share.
A user keeps their arm for the whole experiment (same key, same salt), a new experiment (new salt)
reshuffles everyone, and raising the share only moves users from production to the challenger.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

Arm = Literal["production", "challenger"]
PRODUCTION: Arm = "production"
CHALLENGER: Arm = "challenger"
ARMS: tuple[Arm, Arm] = (PRODUCTION, CHALLENGER)

_SCALE = float(2**64)


def bucket(user_key: str, salt: str) -> float:
    """The user's uniform position in [0, 1) for this experiment: the first 64 bits of
    HMAC-SHA256(salt, user_key). Keyed by the salt so that positions of two experiments are independent."""
    if not salt:
        raise ValueError("the experiment salt is empty; every experiment needs its own salt (see vidrec.registry)")
    digest = hmac.new(salt.encode(), user_key.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_for(user_key: str, salt: str, share: float) -> Arm:
    """``"challenger"`` for users whose bucket falls below ``share`` (0 < share < 1), else ``"production"``.

    ``user_key`` is the pseudonymised user (``vidrec.privacy.pseudonymise``), the same key the impression
    log records, so the analysis can recompute anyone's arm.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"challenger share {share!r} must be strictly between 0 and 1")
    return CHALLENGER if bucket(user_key, salt) < share else PRODUCTION
