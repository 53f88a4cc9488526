"""Simulated users and their hidden preferences over item attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vidrec.world.catalogue import CATEGORY_NAMES
from vidrec.world.spec import WorldSpec

PREF_COLUMNS: tuple[str, ...] = tuple(f"pref_{name}" for name in CATEGORY_NAMES)


def build_users(spec: WorldSpec, rng: np.random.Generator) -> pd.DataFrame:
    """One row per user: category preferences (Dirichlet), preferred style and energy, quality sensitivity."""
    n, k = spec.n_users, len(CATEGORY_NAMES)
    # alpha < 1 makes most users care about one or two categories, as real audiences do.
    theta = rng.dirichlet(np.full(k, 0.4), n)
    users = pd.DataFrame(theta, columns=list(PREF_COLUMNS))
    users.insert(0, "user_id", [f"u{i:05d}" for i in range(n)])
    users["pref_style"] = rng.integers(0, 3, n).astype(np.int64)
    users["style_weight"] = rng.uniform(0.3, 1.2, n)
    users["pref_energy"] = rng.random(n)
    users["quality_sensitivity"] = rng.uniform(0.0, 1.5, n)
    users["bias"] = rng.normal(0.0, 0.3, n)
    # Heavy-tailed activity: a few users produce many sessions.
    users["activity"] = rng.lognormal(0.0, 0.8, n)
    return users
