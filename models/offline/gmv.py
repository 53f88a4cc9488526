"""GMV@k rows of the evaluation table: each served model's top k against the hold-out's orders, by SNIPS on the
logged propensities (vidrec.evaluation.commerce.gmv_at_k), and the candidate's relative difference from the
champion with a 95% interval over users, which the gate's GMV non-inferiority rule reads.

On a demo world the simulated A/B adds ``ab_gmv_per_session_at_k``: the oracle's expected conversions of each
shown slot times the item's price, per session, the same sessions for every arm. Once the champion serves, the
logged hold-out was shown by it, and the gate lets this unbiased comparison decide (``superseded_by``).

The data's orders (``orders.parquet``/``orders.csv`` beside ``products.csv``, docs/import.md) go through the
importer's checks. Without them the hold-out has no GMV: the rows are not computed and ``orders_share`` is 0,
so the gate skips its GMV rule with that reason (vidrec.evaluation.availability, signal ``orders``).

``warehouse_gmv_rows`` computes the same rows from the evaluation tables in DuckDB (offline evaluation writes
them batch by batch and keeps no frame of the hold-out): it reads the served models' top-K rows and only the
logged impressions those lists hit, the rows the estimate weighs; the others count 0 in every sum.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from vidrec.evaluation.commerce import gmv_at_k, impression_gmv
from vidrec.imports.commerce import read_commerce_dir

COLUMNS = ("slice", "model", "metric", "value", "ci_low", "ci_high", "resamples")


def read_orders(directory: Path) -> pd.DataFrame | None:
    """The accepted orders of a data folder, or None when it has no products and orders."""
    directory = Path(directory)
    has_orders = (directory / "orders.parquet").is_file() or (directory / "orders.csv").is_file()
    if not (directory / "products.csv").is_file() or not has_orders:
        return None
    return read_commerce_dir(directory).orders


def orders_share(impressions: pd.DataFrame, orders: pd.DataFrame | None) -> float:
    """1.0 when the hold-out sessions carry orders to attribute, 0.0 when there are none (the availability row)."""
    if orders is None or orders.empty:
        return 0.0
    return 1.0 if orders["session_id"].isin(set(impressions["session_id"])).any() else 0.0


def _bootstrap_rows(
    per_user: dict[str, np.ndarray], metric: str, models: tuple[str, str], counts: np.ndarray, point: dict
) -> list[tuple]:
    """Rows for each model's mean per user-weighted session value and the candidate's relative difference."""
    rows, draws = [], {}
    for model, (num, den) in per_user.items():
        total = counts @ den
        draws[model] = np.where(total > 0, (counts @ num) / np.where(total > 0, total, 1.0), np.nan)
        low, high = np.nanpercentile(draws[model], [2.5, 97.5]) if len(counts) else (np.nan, np.nan)
        rows.append(("all", model, metric, point[model], low, high, len(counts)))
    if len(draws) == 2:
        candidate, champion = models
        scale = np.abs(draws[champion])
        relative = np.where(scale > 0, (draws[candidate] - draws[champion]) / np.where(scale > 0, scale, 1.0), np.nan)
        low, high = np.nanpercentile(relative, [2.5, 97.5]) if len(counts) else (np.nan, np.nan)
        base = point[champion]
        value = (point[candidate] - base) / abs(base) if base else np.nan
        rows.append(("all", f"{candidate}_vs_{champion}", metric, value, low, high, len(counts)))
    return rows


def ab_gmv_rows(
    top_k: pd.DataFrame,
    items: pd.DataFrame,
    models: tuple[str, ...] = ("candidate", "champion"),
    k: int = 10,
    resamples: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """``ab_gmv_per_session_at_<k>``: expected GMV per session of each model's top k (oracle conversion of the
    slot × price; the order quantity is the same factor for every arm and left out), interval over users.
    Empty without the oracle columns (not a demo world)."""
    shown = top_k[top_k["model"].isin(models) & top_k["oracle_conversion"].notna()]
    if shown.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    price = items.set_index("video_id")["price"].astype(float).fillna(0.0)
    shown = shown.assign(gmv=shown["oracle_conversion"].to_numpy(float) * shown["video_id"].map(price).fillna(0.0))
    per_session = shown.groupby(["model", "session_id", "user_key"], as_index=False)["gmv"].sum()
    users = pd.Index(sorted(per_session["user_key"].unique()))
    counts = np.random.default_rng(seed).multinomial(len(users), np.full(len(users), 1.0 / len(users)), resamples)
    per_user, point = {}, {}
    for model in [m for m in models if m in set(per_session["model"])]:
        mine = per_session[per_session["model"] == model].groupby("user_key")["gmv"].agg(["sum", "count"])
        mine = mine.reindex(users, fill_value=0.0)
        per_user[model] = (mine["sum"].to_numpy(float), mine["count"].to_numpy(float))
        point[model] = float(mine["sum"].sum() / max(mine["count"].sum(), 1.0))
    rows = _bootstrap_rows(per_user, f"ab_gmv_per_session_at_{k}", models[:2], counts, point)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _per_user(logged: pd.DataFrame, gmv: np.ndarray, top_k: pd.DataFrame, users: pd.Index) -> tuple:
    """Per user (aligned with ``users``): Σ w·gmv and Σ w over the logged impressions the model also lists."""
    target = set(zip(top_k["session_id"], top_k["video_id"]))
    hit = np.fromiter((p in target for p in zip(logged["session_id"], logged["video_id"])), bool, len(logged))
    w = np.where(hit, 1.0 / logged["propensity"].to_numpy(float), 0.0)
    frame = pd.DataFrame({"user_key": logged["user_key"].to_numpy(), "wr": w * gmv, "w": w})
    sums = frame.groupby("user_key")[["wr", "w"]].sum().reindex(users, fill_value=0.0)
    return sums["wr"].to_numpy(), sums["w"].to_numpy()


def gmv_rows(
    impressions: pd.DataFrame,
    top_k: pd.DataFrame,
    orders: pd.DataFrame,
    models: tuple[str, ...] = ("candidate", "champion"),
    k: int = 10,
    resamples: int = 100,
    seed: int = 0,
    users: pd.Series | None = None,
) -> pd.DataFrame:
    """``gmv_at_<k>_snips`` per model present in ``top_k`` (value from ``gmv_at_k``, interval by resampling
    users) and ``<candidate>_vs_<champion>``: the relative difference, its interval from the same resamples.
    ``impressions``: the logged hold-out (session_id, video_id, user_key, propensity); ``users``: the users
    of the whole logged hold-out when ``impressions`` holds only the rows the lists hit (default: its own)."""
    logged = impressions[impressions["propensity"].notna()].reset_index(drop=True)
    gmv = impression_gmv(logged, orders)
    users = pd.Index(sorted((logged["user_key"] if users is None else users).unique()))
    counts = np.random.default_rng(seed).multinomial(len(users), np.full(len(users), 1.0 / len(users)), resamples)
    metric = f"gmv_at_{k}_snips"
    rows, draws = [], {}
    for model in models:
        lists = top_k[top_k["model"] == model]
        if lists.empty:
            continue
        value = gmv_at_k(logged, gmv, lists, k).snips if len(logged) else float("nan")  # no list hit: no estimate
        wr, w = _per_user(logged, gmv.to_numpy(float), lists, users)
        num, den = counts @ wr, counts @ w
        # A resample without a single matched impression has no estimate (not 0): left out of the interval.
        draws[model] = np.where(den > 0, k * num / np.where(den > 0, den, 1.0), np.nan)
        low, high = np.nanpercentile(draws[model], [2.5, 97.5]) if resamples else (np.nan, np.nan)
        rows.append(("all", model, metric, value, low, high, resamples))
    if len(draws) == 2:
        candidate, champion = models
        point = {m: r[3] for m, r in zip(draws, rows)}
        base = point[champion]
        scale = np.abs(draws[champion])
        relative = np.where(scale > 0, (draws[candidate] - draws[champion]) / np.where(scale > 0, scale, 1.0), np.nan)
        low, high = np.nanpercentile(relative, [2.5, 97.5]) if resamples else (np.nan, np.nan)
        value = (point[candidate] - base) / abs(base) if base else np.nan
        rows.append(("all", f"{candidate}_vs_{champion}", metric, value, low, high, resamples))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def warehouse_gmv_rows(
    con: duckdb.DuckDBPyConnection,
    items: pd.DataFrame,
    orders: pd.DataFrame | None,
    models: tuple[str, ...] = ("candidate", "champion"),
    k: int = 10,
    resamples: int = 100,
    seed: int = 0,
) -> tuple[float, pd.DataFrame | None, pd.DataFrame]:
    """(``orders_share``, ``gmv_rows`` or None without orders or propensities, ``ab_gmv_rows``) from the
    evaluation tables ``impressions`` and ``top_k`` in ``con``'s current schema, the same numbers as the
    functions over the whole frames; what is read is bounded by the top-K lists, not by the log."""
    names = list(models)
    top_k = con.execute("SELECT * FROM top_k WHERE list_contains(?, model)", [names]).df()
    ab_gmv = ab_gmv_rows(top_k, items, models, k=k, resamples=resamples, seed=seed)
    has_orders = 0.0
    if orders is not None and not orders.empty:  # orders_share, in SQL: does a hold-out session have an order?
        con.register("_order_sessions", orders[["session_id"]])
        try:
            hit = con.execute("SELECT count(*) FROM impressions SEMI JOIN _order_sessions USING (session_id)")
            has_orders = 1.0 if hit.fetchall()[0][0] else 0.0
        finally:
            con.unregister("_order_sessions")
    users = con.execute("SELECT DISTINCT user_key FROM impressions WHERE propensity IS NOT NULL").df()["user_key"]
    if not has_orders or users.empty:
        return has_orders, None, ab_gmv
    logged = con.execute(
        """SELECT session_id, video_id, user_key, propensity FROM impressions
        SEMI JOIN (SELECT DISTINCT session_id, video_id FROM top_k WHERE list_contains(?, model)) AS listed
            USING (session_id, video_id)
        WHERE propensity IS NOT NULL ORDER BY event_id""",
        [names],
    ).df()
    gmv = gmv_rows(logged, top_k, orders, models, k=k, resamples=resamples, seed=seed, users=users)
    return has_orders, gmv, ab_gmv
