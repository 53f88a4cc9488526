"""Drift between the training window and new data: per-modality content drift (MMD with a
permutation test) and event-rate drift (CTR, watch time), judged against a versioned policy.

Content is compared through frozen representations (colour/motion descriptors of the sampled
frames, the log-mel profile, MiniLM text embeddings), not the trained encoder: the encoder is
retrained every night, so drift in its space would mix model change with data change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from vidrec.drift_plot import drift_bars as drift_bars
from vidrec.media.shards import read_shard
from vidrec.splits import temporal_split

Level = Literal["ok", "warn", "block", "insufficient"]
MODALITIES = ("visual", "audio", "text")
EVENT_RATES = ("ctr", "watch_time")
_HIST_BINS = 8


@dataclass(frozen=True)
class Thresholds:
    statistic: str
    warn: float
    block: float


@dataclass(frozen=True)
class DriftPolicy:
    version: int
    alpha: float
    permutations: int
    seed: int
    min_samples: int
    checks: dict[str, Thresholds]


@dataclass(frozen=True)
class DriftResult:
    """One drift measurement and what the policy makes of it."""

    name: str
    statistic: str
    value: float | None
    p_value: float | None
    reference: float | None  # training-window summary (rate, or None for embeddings)
    current: float | None  # new-data summary
    n_reference: int
    n_new: int
    warn: float
    block: float
    level: Level
    detail: str

    def as_row(self) -> dict:
        return asdict(self)


def load_drift_policy(path: Path | None = None) -> DriftPolicy:
    """The policy at ``path``, else the versioned ``vidrec/policies/drift.yaml``."""
    name = str(path or "vidrec/policies/drift.yaml")
    text = path.read_text() if path else resources.files("vidrec.policies").joinpath("drift.yaml").read_text()
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("checks"), dict):
        raise ValueError(f"drift policy {name} has no 'checks' mapping")
    missing = set(MODALITIES + EVENT_RATES) - set(raw["checks"])
    if missing:
        raise ValueError(f"drift policy {name} lacks thresholds for {sorted(missing)}")
    checks = {}
    for key, spec in raw["checks"].items():
        thresholds = Thresholds(str(spec["statistic"]), float(spec["warn"]), float(spec["block"]))
        if not 0 <= thresholds.warn <= thresholds.block:
            raise ValueError(f"drift policy {name}: {key} needs 0 <= warn <= block, got {spec}")
        checks[key] = thresholds
    return DriftPolicy(
        version=int(raw.get("version", 0)),
        alpha=float(raw.get("alpha", 0.01)),
        permutations=int(raw.get("permutations", 200)),
        seed=int(raw.get("seed", 0)),
        min_samples=int(raw.get("min_samples", 3)),
        checks=checks,
    )


def judge(value: float, p_value: float, thresholds: Thresholds, alpha: float) -> Level:
    """Block or warn only when the shift is both large and statistically real."""
    if p_value >= alpha:
        return "ok"
    if value >= thresholds.block:
        return "block"
    return "warn" if value >= thresholds.warn else "ok"


# --- content descriptors -------------------------------------------------------------------


def visual_descriptor(frames: np.ndarray) -> np.ndarray:
    """(T, 3, H, W) uint8 frames -> colour means/spreads, 8-bin colour histograms, motion
    and edge energy (32 values); the simulator hides category and style in exactly these."""
    x = frames.astype(np.float32) / 255.0
    hist = [np.histogram(x[:, c], bins=_HIST_BINS, range=(0.0, 1.0))[0] / x[:, c].size for c in range(3)]
    motion = np.abs(np.diff(x, axis=0)).mean() if len(x) > 1 else 0.0
    edges = np.abs(np.diff(x, axis=-1)).mean() + np.abs(np.diff(x, axis=-2)).mean()
    return np.concatenate([x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)), *hist, [motion, edges]]).astype(np.float32)


def audio_descriptor(mel: np.ndarray) -> np.ndarray:
    """(time, mels) log-mel -> the mean and spread of each mel band over time."""
    m = mel.astype(np.float32)
    return np.concatenate([m.mean(axis=0), m.std(axis=0)])


def shard_descriptors(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Visual and audio descriptors of every accepted row of ``video_features``; audio only
    for videos that have a soundtrack. Returns frames of video_id + ``vector``."""
    visual, audio = [], []
    for row in features[features["status"] == "accepted"].itertuples():
        shard = read_shard(Path(row.shard_path))
        visual.append((row.video_id, visual_descriptor(shard.frames)))
        if shard.has_audio:
            audio.append((row.video_id, audio_descriptor(shard.mel)))
    as_frame = lambda pairs: pd.DataFrame(pairs, columns=["video_id", "vector"])  # noqa: E731
    return as_frame(visual), as_frame(audio)


# --- statistics ----------------------------------------------------------------------------


def mmd2_test(reference: np.ndarray, new: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
    """Unbiased squared MMD with an RBF kernel and its permutation p-value.

    Features are standardised by the reference window and the bandwidth is the median pairwise
    distance (the usual heuristic). Written out because it is a dozen lines of numpy, where the
    drift libraries that ship it (alibi-detect) pin their own TensorFlow/torch stacks.
    """
    if len(reference) < 2 or len(new) < 2:
        raise ValueError(f"MMD needs at least 2 rows per side, got {len(reference)} and {len(new)}")
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    pooled = (np.concatenate([reference, new]).astype(np.float64) - mean) / np.where(std > 1e-8, std, 1.0)
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    bandwidth = np.median(d2[np.triu_indices(len(pooled), k=1)]) or 1.0
    kernel = np.exp(-d2 / bandwidth)
    n = len(reference)
    observed = _mmd2_unbiased(kernel, np.arange(len(pooled)), n)
    rng = np.random.default_rng(seed)
    exceed = sum(_mmd2_unbiased(kernel, rng.permutation(len(pooled)), n) >= observed for _ in range(permutations))
    return float(observed), float((exceed + 1) / (permutations + 1))


def _mmd2_unbiased(kernel: np.ndarray, order: np.ndarray, n: int) -> float:
    x, y = order[:n], order[n:]
    kxx, kyy, kxy = kernel[np.ix_(x, x)], kernel[np.ix_(y, y)], kernel[np.ix_(x, y)]
    m = len(y)
    return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()


# --- windows and checks --------------------------------------------------------------------


def window_start(events: pd.DataFrame) -> pd.Timestamp:
    """Where new data begins: the hold-out window the candidate is evaluated on (the model
    trains on everything before it)."""
    return temporal_split(events).holdout_start


def item_windows(metadata: pd.DataFrame, start: pd.Timestamp) -> tuple[set[str], set[str]]:
    """Accepted items published before ``start`` (training catalogue) and from ``start`` on."""
    accepted = metadata[metadata["status"] == "accepted"]
    published = pd.to_datetime(accepted["published_at"], utc=True)
    return set(accepted.loc[published < start, "video_id"]), set(accepted.loc[published >= start, "video_id"])


def embedding_drift(
    name: str, vectors: pd.DataFrame, reference_ids: Iterable[str], new_ids: Iterable[str], policy: DriftPolicy
) -> DriftResult:
    """MMD between the ``vector`` of items in the two windows, judged by ``policy.checks[name]``."""
    thresholds = policy.checks[name]
    ref = vectors[vectors["video_id"].isin(set(reference_ids))]
    new = vectors[vectors["video_id"].isin(set(new_ids))]
    common = dict(
        name=name,
        statistic=thresholds.statistic,
        reference=None,
        current=None,
        n_reference=len(ref),
        n_new=len(new),
        warn=thresholds.warn,
        block=thresholds.block,
    )
    if min(len(ref), len(new)) < max(policy.min_samples, 2):
        return DriftResult(
            **common,
            value=None,
            p_value=None,
            level="insufficient",
            detail=f"need {policy.min_samples} items per window to judge drift",
        )
    value, p = mmd2_test(
        np.stack(ref["vector"].to_numpy()), np.stack(new["vector"].to_numpy()), policy.permutations, policy.seed
    )
    level = judge(value, p, thresholds, policy.alpha)
    return DriftResult(
        **common,
        value=round(value, 6),
        p_value=round(p, 6),
        level=level,
        detail=f"MMD² {value:.4f} (p={p:.4f}) vs warn {thresholds.warn}, block {thresholds.block}",
    )


def event_rate_drift(events: pd.DataFrame, start: pd.Timestamp, policy: DriftPolicy) -> list[DriftResult]:
    """CTR and mean watch time per click, training window (before ``start``) vs new data."""
    before, after = events[events["ts"] < start], events[events["ts"] >= start]
    results = []
    # CTR: two-proportion z-test on impressions.
    ctr = policy.checks["ctr"]
    c0, c1 = int(before["clicked"].sum()), int(after["clicked"].sum())
    n0, n1 = len(before), len(after)
    if min(n0, n1) < policy.min_samples or c0 == 0:
        results.append(_insufficient("ctr", ctr, n0, n1, "too few impressions or no clicks in the training window"))
    else:
        r0, r1 = c0 / n0, c1 / n1
        pooled = (c0 + c1) / (n0 + n1)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        p = float(2 * stats.norm.sf(abs(r1 - r0) / se)) if se > 0 else 1.0
        results.append(_rate_result("ctr", ctr, r0, r1, p, n0, n1, policy.alpha))
    # Watch time: Mann-Whitney on the watch_s of clicked impressions (heavy-tailed, so rank-based).
    wt = policy.checks["watch_time"]
    # dropna: a source without watch_s (an imported log) has none to compare, so this is "insufficient".
    w0 = before.loc[before["clicked"], "watch_s"].astype(float).dropna()
    w1 = after.loc[after["clicked"], "watch_s"].astype(float).dropna()
    if min(len(w0), len(w1)) < policy.min_samples or w0.mean() <= 0:
        results.append(_insufficient("watch_time", wt, len(w0), len(w1), "too few clicks per window"))
    else:
        p = float(stats.mannwhitneyu(w0, w1, alternative="two-sided").pvalue)
        results.append(
            _rate_result("watch_time", wt, float(w0.mean()), float(w1.mean()), p, len(w0), len(w1), policy.alpha)
        )
    return results


def _rate_result(
    name: str, thresholds: Thresholds, before: float, after: float, p: float, n0: int, n1: int, alpha: float
) -> DriftResult:
    change = abs(after / before - 1.0)
    return DriftResult(
        name=name,
        statistic=thresholds.statistic,
        value=round(change, 6),
        p_value=round(p, 6),
        reference=round(before, 6),
        current=round(after, 6),
        n_reference=n0,
        n_new=n1,
        warn=thresholds.warn,
        block=thresholds.block,
        level=judge(change, p, thresholds, alpha),
        detail=f"{before:.4f} -> {after:.4f} ({after / before - 1.0:+.1%}, p={p:.4g})",
    )


def _insufficient(name: str, thresholds: Thresholds, n0: int, n1: int, why: str) -> DriftResult:
    return DriftResult(
        name=name,
        statistic=thresholds.statistic,
        value=None,
        p_value=None,
        reference=None,
        current=None,
        n_reference=n0,
        n_new=n1,
        warn=thresholds.warn,
        block=thresholds.block,
        level="insufficient",
        detail=why,
    )


def drift_table(results: Iterable[DriftResult]) -> pd.DataFrame:
    """One row per drift measurement, in a stable order."""
    frame = pd.DataFrame([r.as_row() for r in results])
    order = {name: i for i, name in enumerate(MODALITIES + EVENT_RATES)}
    return frame.sort_values("name", key=lambda s: s.map(order)).reset_index(drop=True)
