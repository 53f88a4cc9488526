"""Sizes and parameters of a demo world; one frozen `WorldSpec` fully determines what is generated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class WorldSpec:
    """Everything that decides the content of a generated world (together with the code version)."""

    size: str
    n_videos: int
    n_users: int
    n_days: int
    n_sessions: int
    slate_size: int
    min_duration_s: float
    max_duration_s: float
    width: int = 64
    height: int = 64
    fps: int = 10
    sample_rate: int = 16000
    seed: int = 7
    # Start of the event window; most items are published before it.
    start: str = "2024-03-01T00:00:00Z"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_seed(self, seed: int) -> WorldSpec:
        return replace(self, seed=seed)


# Slates are longer than 10 so re-ranking a logged slate changes what lands in the top 10.
WORLD_SIZES: dict[str, WorldSpec] = {
    "tiny": WorldSpec(
        size="tiny",
        n_videos=24,
        n_users=30,
        n_days=4,
        n_sessions=300,
        slate_size=12,
        min_duration_s=2.0,
        max_duration_s=2.0,
        fps=8,
    ),
    "demo": WorldSpec(
        size="demo",
        n_videos=300,
        n_users=600,
        n_days=14,
        n_sessions=8_000,
        slate_size=20,
        min_duration_s=2.0,
        max_duration_s=6.0,
    ),
    # Between tiny and demo: a third point for the scale curves (benchmarks/scale.py), with demo's slates.
    "small": WorldSpec(
        size="small",
        n_videos=100,
        n_users=200,
        n_days=7,
        n_sessions=2_500,
        slate_size=20,
        min_duration_s=2.0,
        max_duration_s=4.0,
    ),
    # Events-heavy: demo's catalogue with 3x the users and sessions, so the scale curves tell the growth of
    # the log apart from the growth of the catalogue (benchmarks/scale.py).
    "events": WorldSpec(
        size="events",
        n_videos=300,
        n_users=2_000,
        n_days=14,
        n_sessions=25_000,
        slate_size=20,
        min_duration_s=2.0,
        max_duration_s=6.0,
    ),
    # Uniform 2-20 s puts ~55% of videos at >= 10 s, so long-video handling gets exercised.
    "large": WorldSpec(
        size="large",
        n_videos=10_000,
        n_users=8_000,
        n_days=30,
        n_sessions=100_000,
        slate_size=10,
        min_duration_s=2.0,
        max_duration_s=20.0,
    ),
}


def world_spec(size: str, seed: int | None = None) -> WorldSpec:
    """The spec for a named size, optionally with another seed."""
    if size not in WORLD_SIZES:
        raise ValueError(f"unknown world size {size!r}; choose one of {sorted(WORLD_SIZES)}")
    spec = WORLD_SIZES[size]
    return spec if seed is None else spec.with_seed(seed)
