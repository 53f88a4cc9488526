"""The commerce world: SKUs with several videos, orders that reconcile with conversions, and tastes
(brand, price, live host) that really move the oracle's utility, the live boost only inside a session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidrec.world import commerce
from vidrec.world.behaviour import BehaviourParams
from vidrec.world.catalogue import sample_items
from vidrec.world.generate import WorldManifest, generate_world
from vidrec.world.oracle import Oracle
from vidrec.world.spec import world_spec
from vidrec.world.users import build_users


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldManifest:
    return generate_world(tmp_path_factory.mktemp("commerce") / "world", "tiny", workers=1, progress=False)


def test_products_link_several_videos_at_the_sku_price(world: WorldManifest) -> None:
    products = pd.read_csv(world.products_csv)
    items = pd.read_parquet(world.items_parquet)
    assert list(products.columns) == list(commerce.PRODUCT_COLUMNS)
    assert products["sku"].is_unique and (products["currency"] == commerce.CURRENCY).all()
    links = products.assign(video_id=products["video_ids"].str.split("|")).explode("video_id")
    # Every product video belongs to exactly one SKU, and nothing else does.
    assert sorted(links["video_id"]) == sorted(items.loc[items["is_product"], "video_id"])
    joined = links.merge(items, on="video_id", suffixes=("", "_item"))
    assert (joined["sku"] == joined["sku_item"]).all()
    assert np.allclose(joined["price"], joined["price_item"])
    assert (joined["category"] == joined["category_item"]).all()


def test_orders_are_the_conversions_with_quantity_and_price(world: WorldManifest) -> None:
    events = pd.read_parquet(world.events_parquet)
    orders = pd.read_parquet(world.orders_parquet)
    converted = events[events["converted"]]
    assert len(orders) == len(converted) == world.counts["orders"]
    assert list(orders.columns) == list(commerce.ORDER_COLUMNS)
    assert (orders["quantity"] >= 1).all() and (orders["unit_price"] > 0).all()
    assert orders["video_id"].tolist() == converted["video_id"].tolist()
    gmv = float((orders["quantity"] * orders["unit_price"]).sum())
    assert world.counts["gmv"] == pytest.approx(gmv, abs=0.01)


def test_products_are_deterministic_per_seed() -> None:
    items = sample_items(world_spec("demo"), np.random.default_rng(0))
    a, items_a = commerce.assign_products(items, np.random.default_rng(5))
    b, items_b = commerce.assign_products(items, np.random.default_rng(5))
    c, _ = commerce.assign_products(items, np.random.default_rng(6))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(items_a, items_b)
    assert not a["price"].equals(c["price"])
    assert len(a) >= 10 and (a["video_ids"].str.count(r"\|") >= 1).mean() > 0.5  # mostly several videos per SKU


def _oracle_with_live_host() -> tuple[Oracle, int, int, pd.Timestamp]:
    spec = world_spec("demo")
    items = sample_items(spec, np.random.default_rng(1))
    _, items = commerce.assign_products(items, np.random.default_rng(2))
    users = commerce.add_user_tastes(build_users(spec, np.random.default_rng(3)), np.random.default_rng(4))
    host_row = int(np.flatnonzero(items["is_live_host"].to_numpy())[0])
    start = pd.Timestamp("2024-03-02T10:00:00Z")
    live = pd.DataFrame(
        {"live_id": ["l1"], "creator_id": [items.loc[host_row, "creator_id"]], "start": [start],
         "end": [start + pd.Timedelta(hours=1)]}
    )  # fmt: skip
    return Oracle(items, users, BehaviourParams(), live), host_row, 0, start


def test_live_boost_applies_only_inside_the_session_window() -> None:
    oracle, row, user, start = _oracle_with_live_host()
    params, affinity = oracle.params, oracle.users.loc[user, "host_affinity"]
    times = [start - pd.Timedelta(seconds=1), start, start + pd.Timedelta(minutes=59), start + pd.Timedelta(hours=1)]
    u = np.array([oracle.utility_idx(np.array([user]), np.array([row]), t.value)[0] for t in times])
    without = oracle.utility_idx(np.array([user]), np.array([row]))[0]
    assert u[0] == pytest.approx(without) and u[3] == pytest.approx(without)  # end is exclusive
    assert u[1] == pytest.approx(without + params.live_boost + affinity)
    assert u[2] == pytest.approx(u[1])


def test_brand_and_price_tastes_move_utility_and_conversion() -> None:
    oracle, _, _, _ = _oracle_with_live_host()
    product = int(np.flatnonzero(oracle.items["is_product"].to_numpy())[0])
    brand = int(oracle.items.loc[product, "brand_idx"])
    fans = np.flatnonzero(oracle.users["pref_brand"].to_numpy() == brand)
    others = np.flatnonzero(oracle.users["pref_brand"].to_numpy() != brand)
    term = oracle.commerce_idx(np.arange(len(oracle.users)), np.full(len(oracle.users), product))
    weight = oracle.users["brand_weight"].to_numpy()
    log_price = np.log(oracle.items.loc[product, "price"] / 20.0)
    price_part = -oracle.users["price_sensitivity"].to_numpy() * log_price
    assert np.allclose(term[fans], weight[fans] * 1.0 + price_part[fans])
    assert np.allclose(term[others], weight[others] * -0.3 + price_part[others])
    # The oracle's conversion probability carries the same tastes.
    p = oracle.conversion_prob_idx(np.arange(len(oracle.users)), np.full(len(oracle.users), product))
    assert p[fans].mean() > p[others].mean()
    non_product = int(np.flatnonzero(~oracle.items["is_product"].to_numpy() & ~oracle.items["is_live_host"])[0])
    assert np.all(oracle.commerce_idx(np.arange(5), np.full(5, non_product)) == 0.0)
