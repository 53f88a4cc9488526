"""The logging policy: an older production recommender that shows slates and records exact propensities.

It scores items by a noisy estimate of the user's category x style affinity plus a noisy per-item popularity,
then mixes in 30% uniform exploration: pi(i|user,t) = mix / n_avail + (1 - mix) * softmax(beta * score) over items
published before t. Because the score factorises by (category, style) group, exact normalisers are cheap even for
10k items x 100k sessions, so no candidate subsampling is needed and propensities stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vidrec.world import behaviour as bh
from vidrec.world.catalogue import to_ns
from vidrec.world.users import PREF_COLUMNS

N_STYLES = 3


@dataclass(frozen=True)
class Slates:
    """Chosen item indices and the propensity of each choice at its slot, both (n_sessions, slate_size)."""

    items: np.ndarray
    propensity: np.ndarray


class LoggingPolicy:
    """Sequential sampling without replacement from pi, vectorised over sessions."""

    def __init__(
        self, items: pd.DataFrame, users: pd.DataFrame, params: bh.BehaviourParams, rng: np.random.Generator
    ) -> None:
        self.mix, self.beta = params.policy_uniform_mix, params.policy_beta
        theta = users[list(PREF_COLUMNS)].to_numpy(np.float64)
        k = theta.shape[1]
        cat_aff = bh.category_affinity(theta, params)
        style_aff = bh.style_affinity(
            users["pref_style"].to_numpy()[:, None],
            users["style_weight"].to_numpy()[:, None],
            np.arange(N_STYLES)[None, :],
            params,
        )
        self.n_groups = k * N_STYLES
        user_group = (cat_aff[:, :, None] + style_aff[:, None, :]).reshape(len(users), self.n_groups)
        self.user_group_score = user_group + rng.normal(0.0, params.policy_user_noise, user_group.shape)
        quality = items["quality"].to_numpy()
        self.item_score = (quality - 0.5) + rng.normal(0.0, params.policy_item_noise, len(items))
        self.group = items["category_idx"].to_numpy() * N_STYLES + items["style"].to_numpy()
        published = to_ns(items["published_at"])
        self.order = np.argsort(published, kind="stable")
        self.published_sorted = published[self.order]
        # Per group: members in publish order and cumulative softmax weights, so "published before t" is a prefix.
        self.members, self.member_published, self.member_cumw = [], [], []
        for g in range(self.n_groups):
            members = self.order[self.group[self.order] == g]
            self.members.append(members)
            self.member_published.append(published[members])
            self.member_cumw.append(np.cumsum(np.exp(self.beta * self.item_score[members])))

    def normalisers(self, ui: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_avail = np.searchsorted(self.published_sorted, ts, side="left")
        group_mass = np.zeros((len(ts), self.n_groups))
        for g in range(self.n_groups):
            cnt = np.searchsorted(self.member_published[g], ts, side="left")
            cumw = self.member_cumw[g]
            group_mass[:, g] = np.where(cnt > 0, cumw[np.maximum(cnt - 1, 0)] if len(cumw) else 0.0, 0.0)
        group_weight = np.exp(self.beta * self.user_group_score[ui]) * group_mass
        return n_avail, group_weight, group_mass

    def _draw(
        self, n_avail: np.ndarray, group_weight: np.ndarray, group_mass: np.ndarray, m: int, rng: np.random.Generator
    ) -> np.ndarray:
        r = len(n_avail)
        uniform = self.order[(rng.random((r, m)) * n_avail[:, None]).astype(np.int64)]
        cum = np.cumsum(group_weight, axis=1)
        target = rng.random((r, m)) * cum[:, -1:]
        g = np.minimum((cum[:, None, :] <= target[:, :, None]).sum(axis=2), self.n_groups - 1)
        within = rng.random((r, m)) * group_mass[np.arange(r)[:, None], g]
        softmax_pick = np.empty((r, m), dtype=np.int64)
        for gg in np.unique(g):
            sel = g == gg
            idx = np.searchsorted(self.member_cumw[gg], within[sel], side="right")
            softmax_pick[sel] = self.members[gg][np.minimum(idx, len(self.members[gg]) - 1)]
        return np.where(rng.random((r, m)) < self.mix, uniform, softmax_pick)

    def item_prob(self, ui: np.ndarray, ii: np.ndarray, n_avail: np.ndarray, group_weight: np.ndarray) -> np.ndarray:
        """pi(item | user, t) for item indices `ii` of shape (n, S), before any item is removed."""
        z = group_weight.sum(axis=1, keepdims=True)
        score = self.user_group_score[ui[:, None], self.group[ii]] + self.item_score[ii]
        return self.mix / n_avail[:, None] + (1.0 - self.mix) * np.exp(self.beta * score) / z

    def sample(
        self, ui: np.ndarray, ts: np.ndarray, slate_size: int, rng: np.random.Generator, chunk: int = 10_000
    ) -> Slates:
        """Slates for sessions of users `ui` at int64-ns times `ts`."""
        items = np.empty((len(ui), slate_size), dtype=np.int64)
        prop = np.empty((len(ui), slate_size))
        for lo in range(0, len(ui), chunk):
            sl = slice(lo, lo + chunk)
            items[sl], prop[sl] = self._sample_chunk(ui[sl], ts[sl], slate_size, rng)
        return Slates(items=items, propensity=prop)

    def _sample_chunk(
        self, ui: np.ndarray, ts: np.ndarray, s: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        n_avail, group_weight, group_mass = self.normalisers(ui, ts)
        if (n_avail < s).any():
            raise ValueError(
                f"a session has only {n_avail.min()} published items for a slate of {s}; "
                "publish more of the catalogue before the event window"
            )
        out = np.empty((len(ui), s), dtype=np.int64)
        pending, m = np.arange(len(ui)), 3 * s
        # Rejecting repeats of iid draws from pi gives exactly sequential sampling without replacement.
        while len(pending):
            draws = self._draw(n_avail[pending], group_weight[pending], group_mass[pending], m, rng)
            repeat = (draws[:, :, None] == draws[:, None, :]) & np.tri(m, k=-1, dtype=bool)[None]
            first = ~repeat.any(axis=2)
            done = first.sum(axis=1) >= s
            positions = np.argsort(~first[done], axis=1, kind="stable")[:, :s]
            out[pending[done]] = np.take_along_axis(draws[done], positions, axis=1)
            pending, m = pending[~done], 2 * m
        p = self.item_prob(ui, out, n_avail, group_weight)
        removed = np.cumsum(p, axis=1) - p
        return out, np.clip(p / (1.0 - removed), 1e-12, 1.0)
