"""Import of products and orders: the demo world's tables pass whole and pass their GX suites; bad rows
(negative price, unknown SKU, currency missing, ...) are skipped with reasons and the counts reconcile."""

from __future__ import annotations

import pandas as pd
import pytest

from expectations.validate import validate_frame
from vidrec.imports.commerce import import_commerce, read_commerce_dir
from vidrec.world.generate import generate_world


def _products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["s1", "s2", "s3", "s4", "s1", ""],
            "brand": ["acme", "dune", "acme", "fjord", "acme", "x"],
            "category": ["tech"] * 6,
            "price": ["19.99", "-5", "7.50", "12", "3", "1"],
            "currency": ["EUR", "EUR", "", "usd", "EUR", "EUR"],
            "video_ids": ["v1|v2", "v3", "v4", "v9|v1", "v1", ""],
        }
    )


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o1", "o7"],
            "ts": ["2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z", "1709290000", "2024-03-02", "soon",
                   "2024-03-02", "2024-03-03", "2024-03-03"],
            "user_id": ["u1", "u2", "u1", "u3", "u4", "u5", "u1", "u6"],
            "sku": ["s1", "s2", "s4", "nope", "s1", "s1", "s1", "s4"],
            "video_id": ["v1", "v3", "", "v2", "v1", "v1", "v1", "v9"],
            "quantity": ["2", "1", "1", "1", "1", "1.5", "1", "1"],
            "unit_price": ["19.99", "1", "12", "3", "19.99", "19.99", "19.99", "12"],
            "currency": ["EUR", "EUR", "USD", "EUR", "EUR", "EUR", "EUR", None],
        }
    )  # fmt: skip


def test_bad_product_and_order_rows_are_skipped_with_reasons() -> None:
    result = import_commerce(_products(), _orders(), known_videos={"v1", "v2", "v3", "v4"})
    report = result.report
    assert report.tables["products"].skipped == {
        "negative price": 1,
        "currency missing": 1,
        "duplicate sku (first row kept)": 1,
        "missing sku": 1,
    }
    assert result.products["sku"].tolist() == ["s1", "s4"]
    assert result.products.set_index("sku")["currency"]["s4"] == "USD"  # upper-cased, a valid code
    assert result.products.set_index("sku")["video_ids"]["s4"] == "v1"  # v9 is no known video
    assert any("not in the item table" in note for note in report.notes)
    # s2 was rejected (negative price), so its order is an unknown SKU too.
    assert report.tables["orders"].skipped == {
        "unknown sku (not in the products table)": 2,
        "unparseable timestamp": 1,
        "quantity is not a whole number >= 1": 1,
        "duplicate order_id (first kept)": 1,
        "currency missing": 1,
    }
    assert result.orders["order_id"].tolist() == ["o1", "o3"]  # 1709290000 s is 2024-03-01 10:46 UTC, after o1
    assert result.gmv() == pytest.approx(2 * 19.99 + 12)
    assert all(t.reconciles() for t in report.tables.values())
    rejected = report.rejected
    assert set(rejected["table"]) == {"products", "orders"}
    assert "negative price" in set(rejected["reason"]) and rejected["raw"].str.contains("-5").any()


def test_the_suites_flag_bad_commerce_rows() -> None:
    products = _products().iloc[:4]
    products = products.assign(price=pd.to_numeric(products["price"]), currency=["EUR", "EUR", None, "eu"])
    report = validate_frame(products, "products", id_column="sku")
    assert not report.success
    failures = {sku: " ".join(reasons) for sku, reasons in report.row_failures.items()}
    assert "price is not negative" in failures["s2"]
    assert "currency is present" in failures["s3"]
    assert "currency is an ISO 4217 code" in failures["s4"]
    assert "s1" not in failures


def test_the_world_commerce_tables_import_whole_and_pass_their_suites(tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = generate_world(tmp_path / "world", "tiny", workers=1, progress=False)
    videos = set(pd.read_parquet(world.items_parquet)["video_id"])
    result = read_commerce_dir(world.out_dir, known_videos=videos)
    assert result.report.tables["products"].accepted == world.counts["products"]
    assert result.report.tables["orders"].accepted == world.counts["orders"]
    assert sum(result.report.tables["orders"].skipped.values()) == 0
    assert result.gmv() == pytest.approx(world.counts["gmv"], abs=0.01)
    assert validate_frame(result.products, "products", id_column="sku").success
    orders = result.orders.rename(columns={"user_id": "user_key"})
    assert validate_frame(orders, "orders", id_column="order_id").success
