"""Evaluation protocols for imported interaction data: how positives are filtered (k-core), split
(global temporal, leave-one-out by time, per-user ratio as RecBole's ``RS`` with ``group_by: user``, global
random ratio) and ranked (full by default, sampled on request).

A ``Protocol`` is recorded with every result (``Protocol.to_dict`` / ``label``) so a number can be
compared with a published table only when the protocol matches.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse

from vidrec.evaluation.full_ranking import ScoreFn, full_ranking, sampled_ranking

log = logging.getLogger(__name__)

SPLITS = ("temporal", "leave_one_out", "ratio_by_user", "random_global")
# A split with fewer interactions than this keeps the user in train only (no validation or test item).
MIN_SPLIT_USER = 3


@dataclass(frozen=True)
class Protocol:
    """``split``: ``temporal`` (one global time cut: the last ``holdout_fraction`` of interactions is test,
    the fraction before it validation), ``leave_one_out`` (per user, last interaction is test, the one
    before validation), ``ratio_by_user`` (each user's interactions shuffled with ``seed`` and cut into
    ``ratios``, as RecBole's ``RS`` with ``group_by: user``), or ``random_global`` (all interactions shuffled
    together with ``seed`` into ``ratios``; a user's share of each part varies). The per-user splits keep
    users with fewer than 3 interactions in train only (counted as ``users_train_only``).
    ``k_core``: users and items with fewer interactions are removed repeatedly (0 = off).
    ``ranking``: ``full`` (every item) or ``sampled`` (``n_negatives`` random unseen items per positive).
    Models are fitted on train + validation and scored on test, with their fitted items masked.
    """

    split: Literal["temporal", "leave_one_out", "ratio_by_user", "random_global"] = "leave_one_out"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    holdout_fraction: float = 0.1
    seed: int = 0
    k_core: int = 0
    ranking: Literal["full", "sampled"] = "full"
    n_negatives: int = 100
    ks: tuple[int, ...] = (10, 20)

    def __post_init__(self) -> None:
        if self.split == "random":
            raise ValueError(
                "split 'random' was renamed 'random_global' (all interactions shuffled together); "
                "for RecBole's per-user ratio split use 'ratio_by_user'"
            )
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; use one of {list(SPLITS)}")
        if self.ranking not in ("full", "sampled"):
            raise ValueError(f"unknown ranking {self.ranking!r}; use 'full' or 'sampled'")
        if len(self.ratios) != 3 or min(self.ratios) < 0 or not np.isclose(sum(self.ratios), 1.0):
            raise ValueError(f"ratios must be three non-negative fractions summing to 1, got {self.ratios}")
        if not 0 < self.holdout_fraction < 0.5:
            raise ValueError(f"holdout_fraction must be in (0, 0.5), got {self.holdout_fraction}")

    def label(self) -> str:
        """Short text for tables, e.g. ``leave_one_out, 5-core, full ranking``."""
        ratios = ":".join(f"{r * 10:g}" for r in self.ratios)
        split = {
            "temporal": f"global temporal ({self.holdout_fraction:g} test)",
            "leave_one_out": "leave-one-out by time",
            "ratio_by_user": f"per-user ratio {ratios} (seed {self.seed})",
            "random_global": f"global random {ratios} (seed {self.seed})",
        }[self.split]
        core = f"{self.k_core}-core" if self.k_core else "no k-core"
        ranking = (
            "full ranking"
            if self.ranking == "full"
            else f"SAMPLED ranking ({self.n_negatives} negatives, seed {self.seed})"
        )
        return f"{split}, {core}, {ranking}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "label": self.label()}


@dataclass
class Split:
    """Index-coded interactions (user_idx, item_idx, ts) of each part, the id maps, and what was removed."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    protocol: Protocol
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def fit(self) -> pd.DataFrame:
        """Train + validation: what models are fitted on before scoring the test part."""
        return pd.concat([self.train, self.val], ignore_index=True)

    def matrix(self, part: pd.DataFrame) -> sparse.csr_matrix:
        ones = np.ones(len(part), dtype=np.float32)
        shape = (len(self.user_ids), len(self.item_ids))
        m = sparse.csr_matrix((ones, (part["user_idx"].to_numpy(), part["item_idx"].to_numpy())), shape=shape)
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


def k_core(pairs: pd.DataFrame, k: int) -> pd.DataFrame:
    """Repeatedly drop users and items with fewer than ``k`` interactions until none are left."""
    if k <= 1:
        return pairs
    while True:
        user_n = pairs.groupby("user_id")["video_id"].transform("size")
        item_n = pairs.groupby("video_id")["user_id"].transform("size")
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            return pairs
        pairs = pairs[keep]


def _by_time(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs.sort_values(["ts", "row"], kind="stable")


def split_interactions(
    positives: pd.DataFrame, protocol: Protocol, item_ids: list[str] | None = None, clock_time: bool = True
) -> Split:
    """Apply ``protocol`` to positives (``user_id, video_id, ts``). ``item_ids`` is the catalogue to rank
    (default: items with interactions); ``clock_time=False`` (sequence positions) refuses the temporal split."""
    if protocol.split == "temporal" and not clock_time:
        raise ValueError(
            "the global temporal split needs clock timestamps; this source has sequence positions "
            "only — use split='leave_one_out', 'ratio_by_user' or 'random_global'"
        )
    missing = {"user_id", "video_id", "ts"} - set(positives.columns)
    if missing:
        raise ValueError(f"positives lack columns {sorted(missing)}")
    notes: list[str] = []
    counts = {"positives": len(positives)}
    pairs = positives.assign(row=np.arange(len(positives)))
    pairs = _by_time(pairs).drop_duplicates(["user_id", "video_id"], keep="first")
    counts["repeat_pairs_removed"] = counts["positives"] - len(pairs)
    if counts["repeat_pairs_removed"]:
        notes.append(f"{counts['repeat_pairs_removed']} repeated (user, item) positives collapsed to their first time")
    before = len(pairs)
    pairs = k_core(pairs, protocol.k_core)
    counts["k_core_removed"] = before - len(pairs)
    if pairs.empty:
        raise ValueError(f"no interactions left after {protocol.k_core}-core filtering; lower k_core")
    catalogue = sorted(set(item_ids) if item_ids is not None and not protocol.k_core else set(pairs["video_id"]))
    user_ids = np.array(sorted(pairs["user_id"].unique()), dtype=object)
    item_codes = pd.Index(catalogue)
    pairs = pairs.assign(
        user_idx=pd.Index(user_ids).get_indexer(pairs["user_id"]), item_idx=item_codes.get_indexer(pairs["video_id"])
    )
    if (pairs["item_idx"] < 0).any():
        raise ValueError("positives name items outside item_ids; import them through the same item table")
    part = _assign_parts(pairs, protocol)
    frames = {
        name: pairs.loc[part == name, ["user_idx", "item_idx", "ts"]].reset_index(drop=True)
        for name in ("train", "val", "test")
    }
    split = Split(
        frames["train"],
        frames["val"],
        frames["test"],
        user_ids,
        np.array(catalogue, dtype=object),
        protocol,
        counts,
        notes,
    )
    counts.update({name: len(frame) for name, frame in frames.items()})
    counts.update(users=len(user_ids), items=len(catalogue))
    if protocol.split in ("leave_one_out", "ratio_by_user"):
        sizes = pairs.groupby("user_id").size()
        counts["users_train_only"] = int((sizes < MIN_SPLIT_USER).sum())
        if counts["users_train_only"]:
            notes.append(
                f"{counts['users_train_only']} users with fewer than {MIN_SPLIT_USER} interactions are in "
                "train only (nothing of theirs is validated or tested)"
            )
    return split


def _assign_parts(pairs: pd.DataFrame, protocol: Protocol) -> pd.Series:
    """'train' / 'val' / 'test' per row of time-ordered, de-duplicated pairs."""
    n = len(pairs)
    if protocol.split == "ratio_by_user":
        return _ratio_by_user(pairs, protocol)
    if protocol.split == "random_global":
        order = np.random.default_rng(protocol.seed).permutation(n)
        cut_train = int(round(n * protocol.ratios[0]))
        cut_val = cut_train + int(round(n * protocol.ratios[1]))
        labels = np.empty(n, dtype=object)
        labels[order[:cut_train]], labels[order[cut_train:cut_val]], labels[order[cut_val:]] = "train", "val", "test"
        return pd.Series(labels, index=pairs.index)
    if protocol.split == "leave_one_out":
        # Position from the end of each user's time-ordered history; users with < 3 stay in train only.
        from_end = pairs.groupby("user_id").cumcount(ascending=False)
        size = pairs.groupby("user_id")["user_id"].transform("size")
        labels = np.where(
            (from_end == 0) & (size >= MIN_SPLIT_USER),
            "test",
            np.where((from_end == 1) & (size >= MIN_SPLIT_USER), "val", "train"),
        )
        return pd.Series(labels, index=pairs.index)
    ts = np.sort(pairs["ts"].to_numpy())
    test_start = ts[int(n * (1 - protocol.holdout_fraction))]
    val_start = ts[int(n * (1 - 2 * protocol.holdout_fraction))]
    labels = np.where(pairs["ts"] >= test_start, "test", np.where(pairs["ts"] >= val_start, "val", "train"))
    return pd.Series(labels, index=pairs.index)


def ratio_counts(total: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """How many of a user's ``total`` interactions go to train, validation and test: RecBole 1.2's
    ``Dataset._calcu_split_ids`` (floor each part, give train the rest, then move one from train to each
    part whose share is below one interaction, while train keeps more than one), so files cut here load
    into RecBole with the same sizes it would cut itself."""
    counts = [int(r * total) for r in ratios]
    counts[0] = total - sum(counts[1:])
    for i in range(1, len(ratios)):
        if counts[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            counts[-i] += 1
            counts[0] -= 1
    return counts[0], counts[1], counts[2]


def _ratio_by_user(pairs: pd.DataFrame, protocol: Protocol) -> pd.Series:
    """Per user: shuffle the user's interactions with one seeded generator (users in id order, so the
    result does not depend on row order), then cut them by ``ratio_counts``."""
    rng = np.random.default_rng(protocol.seed)
    labels = np.full(len(pairs), "train", dtype=object)
    users = pairs["user_id"].to_numpy()
    # positions grouped by user (users sorted), each user's positions in item-id order
    order = np.lexsort((pairs["video_id"].to_numpy().astype(str), users.astype(str)))
    starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        rows = order[start:end]
        if len(rows) < MIN_SPLIT_USER:
            continue
        shuffled = rows[rng.permutation(len(rows))]
        n_train, n_val, _ = ratio_counts(len(rows), protocol.ratios)
        labels[shuffled[n_train : n_train + n_val]] = "val"
        labels[shuffled[n_train + n_val :]] = "test"
    return pd.Series(labels, index=pairs.index)


def evaluate(split: Split, score_fn: ScoreFn, model: str, batch_size: int = 1024) -> dict[str, object]:
    """Metrics of one fitted model on the test part, with the protocol recorded in the row.

    Evaluated users: those with test items and at least one fitted interaction (id-only models know
    nothing of the others; how many were left out is in the row). Test items a user already had in the
    fit part are not counted (they are masked from the ranking).
    """
    protocol = split.protocol
    fit, test = split.matrix(split.fit), split.matrix(split.test)
    test = (test - test.multiply(fit)).tocsr()  # a re-consumed item cannot be ranked: it is masked
    test.eliminate_zeros()
    has_test = np.diff(test.indptr) > 0
    has_fit = np.diff(fit.indptr) > 0
    users = np.flatnonzero(has_test & has_fit)
    if len(users) == 0:
        raise ValueError(f"no user has both fitted and test interactions under {protocol.label()}")
    if protocol.ranking == "full":
        metrics = full_ranking(score_fn, users, test, fit, protocol.ks, batch_size)
    else:
        metrics = sampled_ranking(
            score_fn, users, test, fit, protocol.n_negatives, protocol.ks, protocol.seed, batch_size
        )
    prefix = "" if protocol.ranking == "full" else f"sampled{protocol.n_negatives}_"
    return {
        "model": model,
        **{f"{prefix}{k}": v for k, v in metrics.items()},
        "users_evaluated": int(len(users)),
        "users_without_fit_history": int((has_test & ~has_fit).sum()),
        "test_pairs": int(test.nnz),
        "protocol": protocol.label(),
        "protocol_json": protocol.to_dict(),
    }
