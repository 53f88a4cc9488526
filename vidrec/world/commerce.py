"""The commerce half of the demo world: products (SKUs) sold by several videos each, brands, live
sessions of live hosts, users' brand / price / host tastes, and the orders their conversions become.

Everything here draws from its own random streams (``generate.py``), so the catalogue, renders and
users' content tastes are the same as in a world without commerce; only the responses change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vidrec.world.catalogue import parse_utc, to_ns
from vidrec.world.spec import WorldSpec

BRANDS: tuple[str, ...] = ("acme", "borealis", "cobalt", "dune", "ember", "fjord")
CURRENCY = "EUR"
VIDEOS_PER_PRODUCT = 3  # product videos of one category are grouped into SKUs of about this many
LIVE_SESSION_RATE = 0.5  # chance a live host goes live on a given day
PRODUCT_COLUMNS = ("sku", "brand", "category", "price", "currency", "video_ids")
ORDER_COLUMNS = ("order_id", "ts", "user_id", "sku", "video_id", "session_id", "quantity", "unit_price", "currency")
LIVE_COLUMNS = ("live_id", "creator_id", "start", "end")


def assign_products(items: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group each category's product videos into SKUs (several videos per SKU); returns the products
    table and ``items`` with ``sku``, ``brand_idx`` and the SKU's price on each product video."""
    items = items.copy()
    items["sku"] = pd.Series([None] * len(items), dtype=object)
    items["brand_idx"] = -1
    rows = []
    for category in sorted(items.loc[items["is_product"], "category"].unique()):
        members = np.flatnonzero((items["is_product"] & (items["category"] == category)).to_numpy())
        n_products = max(1, int(round(len(members) / VIDEOS_PER_PRODUCT)))
        # Every SKU gets at least one video: a permutation dealt round-robin.
        owner = np.arange(len(members)) % n_products
        members = rng.permutation(members)
        for j in range(n_products):
            sku = f"sku-{category}-{j:03d}"
            brand = int(rng.integers(0, len(BRANDS)))
            price = float(np.round(np.exp(rng.normal(np.log(20.0), 0.6)), 2))
            videos = np.sort(members[owner == j])
            items.loc[videos, ["sku", "brand_idx", "price"]] = [sku, brand, price]
            ids = "|".join(items.loc[videos, "video_id"])
            rows.append((sku, BRANDS[brand], category, price, CURRENCY, ids))
    products = pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS))
    items["brand_idx"] = items["brand_idx"].astype(np.int64)
    return products, items


def add_user_tastes(users: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each user's favourite brand and how much it matters, price sensitivity and live-host affinity."""
    n = len(users)
    users = users.copy()
    users["pref_brand"] = rng.integers(0, len(BRANDS), n).astype(np.int64)
    users["brand_weight"] = rng.uniform(0.0, 1.5, n)
    # 0 is price-blind, 1.5 strongly prefers cheap products.
    users["price_sensitivity"] = rng.uniform(0.0, 1.5, n)
    users["host_affinity"] = rng.normal(0.0, 1.0, n)
    return users


def live_sessions(spec: WorldSpec, items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Live sessions of the live hosts during the event window: on about half of the days, one session
    starting at a random hour and lasting 1-3 hours."""
    hosts = sorted(items.loc[items["is_live_host"], "creator_id"].unique())
    start = pd.Timestamp(parse_utc(spec.start))
    rows = []
    for creator in hosts:
        for day in range(spec.n_days):
            if rng.random() >= LIVE_SESSION_RATE:
                continue
            begin = start + pd.Timedelta(days=day) + pd.Timedelta(seconds=int(rng.integers(0, 20 * 3600)))
            end = begin + pd.Timedelta(seconds=int(rng.integers(3600, 3 * 3600)))
            rows.append((f"live-{creator}-{day:03d}", creator, begin, end))
    frame = pd.DataFrame(rows, columns=list(LIVE_COLUMNS))
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class LiveSchedule:
    """Which creators are live at a given time: ``live_now(creators, ts)`` elementwise."""

    def __init__(self, sessions: pd.DataFrame) -> None:
        self.windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if len(sessions):
            starts, ends = to_ns(sessions["start"]), to_ns(sessions["end"])
            for creator, idx in sessions.groupby("creator_id", sort=False).indices.items():
                self.windows[str(creator)] = (starts[idx], ends[idx])

    def live_now(self, creators: np.ndarray, ts_ns: np.ndarray | None) -> np.ndarray:
        """True where the creator has a session with start <= ts < end; all False without a time."""
        creators = np.asarray(creators, dtype=object)
        out = np.zeros(creators.shape, dtype=bool)
        if ts_ns is None or not self.windows:
            return out
        ts = np.broadcast_to(np.asarray(ts_ns, dtype=np.int64), creators.shape)
        # Hash lookup once, then integer compares: comparing 1M object ids per host took seconds.
        codes = pd.Index(list(self.windows)).get_indexer(creators.ravel()).reshape(creators.shape)
        for h, (starts, ends) in enumerate(self.windows.values()):
            sel = codes == h
            if sel.any():
                t = ts[sel]
                out[sel] = ((t[:, None] >= starts[None, :]) & (t[:, None] < ends[None, :])).any(axis=1)
        return out


def orders_from_events(events: pd.DataFrame, items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One order per converted impression: the video's SKU at its price, quantity 1 + Poisson(0.3)."""
    converted = events[events["converted"]]
    product = items.set_index("video_id").loc[converted["video_id"], ["sku", "price"]]
    quantity = 1 + rng.poisson(0.3, len(converted))
    width = len(str(max(1, len(converted))))
    return pd.DataFrame(
        {
            "order_id": [f"o{k:0{width}d}" for k in range(len(converted))],
            "ts": converted["ts"].to_numpy(),
            "user_id": converted["user_id"].to_numpy(),
            "sku": product["sku"].to_numpy(),
            "video_id": converted["video_id"].to_numpy(),
            "session_id": converted["session_id"].to_numpy(),
            "quantity": quantity.astype(np.int64),
            "unit_price": product["price"].to_numpy(np.float64),
            "currency": CURRENCY,
        }
    )


def write_products_csv(products: pd.DataFrame, path: str | object) -> None:
    products.to_csv(path, index=False, lineterminator="\n", float_format="%.2f")


def write_live_csv(sessions: pd.DataFrame, path: str | object) -> None:
    out = sessions.copy()
    for column in ("start", "end"):
        out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, lineterminator="\n")
