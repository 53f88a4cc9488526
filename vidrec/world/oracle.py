"""Ground-truth oracle: true utility and response probabilities for any (user, video) pair of a generated world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.world import behaviour as bh
from vidrec.world.commerce import LiveSchedule
from vidrec.world.users import PREF_COLUMNS

ArrayLike = np.ndarray | list | tuple | str


class Oracle:
    """Vectorised access to the hidden response model; ids broadcast like numpy arrays.

    `Oracle.load(world_dir)` is the usual constructor; the simulator builds one from the same tables it writes.
    """

    def __init__(
        self,
        items: pd.DataFrame,
        users: pd.DataFrame,
        params: bh.BehaviourParams,
        live: pd.DataFrame | None = None,
    ) -> None:
        self.params = params
        self.items = items.reset_index(drop=True)
        self.users = users.reset_index(drop=True)
        self._item_ids = pd.Index(self.items["video_id"])
        self._user_ids = pd.Index(self.users["user_id"])
        self._theta = self.users[list(PREF_COLUMNS)].to_numpy(np.float64)
        self._u = {
            c: self.users[c].to_numpy()
            for c in ("pref_style", "style_weight", "pref_energy", "quality_sensitivity", "bias")
        }
        self._i = {
            c: self.items[c].to_numpy()
            for c in ("category_idx", "style", "energy", "quality", "duration_s", "is_product")
        }
        self._i["price"] = self.items["price"].to_numpy(np.float64)
        # A world without commerce columns (hand-made test tables) has no commerce term.
        self.commerce = "brand_idx" in self.items and "pref_brand" in self.users
        if self.commerce:
            self._i["brand_idx"] = self.items["brand_idx"].to_numpy(np.int64)
            self._i["creator_id"] = self.items["creator_id"].to_numpy(object)
            for c in ("pref_brand", "brand_weight", "price_sensitivity", "host_affinity"):
                self._u[c] = self.users[c].to_numpy()
        self.live = LiveSchedule(live if live is not None else pd.DataFrame(columns=["creator_id"]))

    @classmethod
    def load(cls, world_dir: Path | str) -> Oracle:
        """Load from `<world_dir>/ground_truth/*.parquet` and the behaviour parameters in `world.json`."""
        world_dir = Path(world_dir)
        manifest = world_dir / "world.json"
        if not manifest.exists():
            raise FileNotFoundError(
                f"{manifest} is missing; generate the world first (python -m vidrec.world.generate --out {world_dir})"
            )
        params = bh.BehaviourParams(**json.loads(manifest.read_text())["behaviour"])
        items = pd.read_parquet(world_dir / "ground_truth" / "items.parquet")
        users = pd.read_parquet(world_dir / "ground_truth" / "users.parquet")
        live_path = world_dir / "ground_truth" / "live_sessions.parquet"
        live = pd.read_parquet(live_path) if live_path.exists() else None
        return cls(items, users, params, live)

    # Index lookups -------------------------------------------------------------------------------------------
    @staticmethod
    def _lookup(index: pd.Index, ids: ArrayLike, what: str) -> np.ndarray:
        arr = np.asarray(ids, dtype=object)
        found = index.get_indexer(arr.ravel())
        if (found < 0).any():
            missing = arr.ravel()[found < 0][:5].tolist()
            raise KeyError(f"unknown {what} {missing}; ids must come from this world's ground truth tables")
        return found.reshape(arr.shape)

    def user_index(self, user_ids: ArrayLike) -> np.ndarray:
        return self._lookup(self._user_ids, user_ids, "user_id")

    def item_index(self, video_ids: ArrayLike) -> np.ndarray:
        return self._lookup(self._item_ids, video_ids, "video_id")

    # Index-based model (used by the simulator) ---------------------------------------------------------------
    def utility_idx(self, ui: np.ndarray, ii: np.ndarray, ts_ns: np.ndarray | int | None = None) -> np.ndarray:
        """True utility; ``ts_ns`` (int64 ns, broadcast) decides which live hosts are live, None: nobody is."""
        u, i = self._u, self._i
        base = bh.utility(
            self._theta[ui, i["category_idx"][ii]],
            u["pref_style"][ui],
            u["style_weight"][ui],
            u["pref_energy"][ui],
            u["quality_sensitivity"][ui],
            u["bias"][ui],
            i["style"][ii],
            i["energy"][ii],
            i["quality"][ii],
            self.params,
        )
        if not self.commerce:
            return base
        return base + self.commerce_idx(ui, ii, ts_ns)

    def commerce_idx(self, ui: np.ndarray, ii: np.ndarray, ts_ns: np.ndarray | int | None = None) -> np.ndarray:
        """The brand, price and live-host part of the utility (vidrec.world.behaviour.commerce_affinity)."""
        u, i = self._u, self._i
        ui, ii = np.broadcast_arrays(np.asarray(ui), np.asarray(ii))
        return bh.commerce_affinity(
            i["is_product"][ii],
            u["pref_brand"][ui] == i["brand_idx"][ii],
            u["brand_weight"][ui],
            u["price_sensitivity"][ui],
            i["price"][ii],
            self.live.live_now(i["creator_id"][ii], ts_ns),
            u["host_affinity"][ui],
            self.params,
        )

    def click_prob_idx(self, ui: np.ndarray, ii: np.ndarray, position: np.ndarray | int | None = None) -> np.ndarray:
        return bh.click_prob(self.utility_idx(ui, ii), position, self.params)

    def watch_s_given_click_idx(self, ui: np.ndarray, ii: np.ndarray) -> np.ndarray:
        frac = bh.expected_watch_fraction(self.utility_idx(ui, ii), self._i["quality"][ii], self.params)
        return frac * self._i["duration_s"][ii]

    def conversion_prob_idx(self, ui: np.ndarray, ii: np.ndarray) -> np.ndarray:
        return bh.conversion_prob(
            self.utility_idx(ui, ii), self._i["is_product"][ii], self._i["price"][ii], self.params
        )

    # Id-based API ----------------------------------------------------------------------------------------------
    def utility(self, user_ids: ArrayLike, video_ids: ArrayLike) -> np.ndarray:
        """True utility u(user, video)."""
        return self.utility_idx(self.user_index(user_ids), self.item_index(video_ids))

    def click_prob(
        self, user_ids: ArrayLike, video_ids: ArrayLike, position: np.ndarray | int | None = None
    ) -> np.ndarray:
        """P(click); with `position=None` there is no position bias, so this is pure relevance."""
        return self.click_prob_idx(self.user_index(user_ids), self.item_index(video_ids), position)

    def watch_s_given_click(self, user_ids: ArrayLike, video_ids: ArrayLike) -> np.ndarray:
        """E[watch_s | click]."""
        return self.watch_s_given_click_idx(self.user_index(user_ids), self.item_index(video_ids))

    def expected_watch_s(
        self, user_ids: ArrayLike, video_ids: ArrayLike, position: np.ndarray | int | None = None
    ) -> np.ndarray:
        """E[watch_s] per impression = P(click) * E[watch_s | click]."""
        ui, ii = self.user_index(user_ids), self.item_index(video_ids)
        return self.click_prob_idx(ui, ii, position) * self.watch_s_given_click_idx(ui, ii)

    def conversion_prob(self, user_ids: ArrayLike, video_ids: ArrayLike) -> np.ndarray:
        """P(convert | click); zero for videos that are not products."""
        return self.conversion_prob_idx(self.user_index(user_ids), self.item_index(video_ids))
