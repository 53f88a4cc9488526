"""The service's settings per model version (retrieval depth, index threshold, cached user states) and the
exploration policy it reads from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from models.serving.exploration import ExplorationSettings
from models.serving.path import PathSettings
from vidrec.index import ANN_THRESHOLD


@dataclass(frozen=True)
class ServingSettings:
    path: PathSettings | None = None  # None: the bundle's (retrieval depth and prior share); tests override
    ann_threshold: int = ANN_THRESHOLD
    # Encoded histories kept per model version (~12 KB each at history 20): a returning user's history
    # is encoded once, not per request. Keyed on (user bucket, history rows), so a request that adds
    # history gets its own entry, and a new model version starts empty.
    user_states: int = 4096
    exploration: ExplorationSettings = field(default_factory=ExplorationSettings)


EPSILON_ENV_VAR = "VIDREC_EXPLORATION_EPSILON"
TAIL_ENV_VAR = "VIDREC_EXPLORATION_TAIL"


def exploration_from_env(env: Mapping[str, str]) -> ExplorationSettings:
    """The service's exploration policy: ``VIDREC_EXPLORATION_EPSILON`` (0 = deterministic) and
    ``VIDREC_EXPLORATION_TAIL``, defaulting to ``ExplorationSettings``'s small documented amount."""
    default = ExplorationSettings()
    try:
        epsilon = float(env.get(EPSILON_ENV_VAR) or default.epsilon)
        tail = int(env.get(TAIL_ENV_VAR) or default.tail)
    except ValueError as error:
        raise ValueError(f"{EPSILON_ENV_VAR} must be a number and {TAIL_ENV_VAR} an integer: {error}") from None
    return ExplorationSettings(epsilon=epsilon, tail=tail)
