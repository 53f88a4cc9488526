"""Import products and orders (docs/import.md#products-and-orders): every bad row is skipped with a
counted reason (negative price, unknown SKU, currency missing, ...) and the counts reconcile.

The accepted tables have the ``products`` / ``orders`` contract columns (``expectations.suites``),
orders still with the source's raw ``user_id``: like events, they are pseudonymised on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.imports.report import ImportReport
from vidrec.imports.tables import blank, parse_ts, require, skip

PRODUCT_COLUMNS = ("sku", "brand", "category", "price", "currency", "video_ids")
ORDER_COLUMNS = ("order_id", "ts", "user_id", "sku", "video_id", "session_id", "quantity", "unit_price", "currency")
_ISO_CURRENCY = r"^[A-Z]{3}$"


@dataclass
class CommerceImport:
    """Accepted ``products`` and ``orders`` (contract columns) and what happened to every input row."""

    products: pd.DataFrame
    orders: pd.DataFrame
    report: ImportReport

    def gmv(self) -> float:
        """Gross merchandise value of the accepted orders: sum of quantity x unit_price."""
        return float((self.orders["quantity"] * self.orders["unit_price"]).sum())


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip()


def _currency(frame: pd.DataFrame, report: ImportReport, table: str, show: list[str]) -> pd.DataFrame:
    frame = skip(frame, blank(frame["currency"]), report, table, "currency missing", show)
    frame = frame.assign(currency=_text(frame["currency"]).str.upper())
    bad = ~frame["currency"].str.fullmatch(_ISO_CURRENCY).fillna(False).astype(bool)
    return skip(frame, bad, report, table, "currency is not a 3-letter ISO 4217 code", show)


def clean_products(raw: pd.DataFrame, report: ImportReport, source: str, known_videos: set[str] | None) -> pd.DataFrame:
    """Products by SKU; ``video_ids`` is a ``|``-separated list of the videos that sell the product
    (unknown ones are dropped from the list and counted in a note, the product kept)."""
    require(raw, ["sku", "price", "currency"], source)
    frame = raw.copy()
    frame["source_row"] = np.arange(len(frame))
    report.table("products").rows_read += len(frame)
    show = [c for c in ("sku", "price", "currency") if c in frame]
    frame = skip(frame, blank(frame["sku"]), report, "products", "missing sku", show)
    frame = frame.assign(sku=_text(frame["sku"]))
    frame = skip(frame, frame["sku"].duplicated(), report, "products", "duplicate sku (first row kept)", show)
    price = pd.to_numeric(frame["price"], errors="coerce")
    frame = skip(frame, price.isna(), report, "products", "price missing or not a number", show)
    frame = frame.assign(price=price[price.notna()].astype(float))
    frame = skip(frame, frame["price"] < 0, report, "products", "negative price", show)
    frame = _currency(frame, report, "products", show)
    for column in ("brand", "category", "video_ids"):
        if column not in frame:
            frame[column] = None
    frame["video_ids"] = frame["video_ids"].where(~blank(frame["video_ids"]), "").astype(str)
    if known_videos is not None:
        lists = frame["video_ids"].str.split("|")
        unknown = sum(len([v for v in vs if v and v not in known_videos]) for vs in lists)
        frame["video_ids"] = ["|".join(v for v in vs if v in known_videos) for vs in lists]
        if unknown:
            report.notes.append(f"products: {unknown} video id(s) in video_ids are not in the item table (dropped)")
    report.table("products").accepted += len(frame)
    return frame[list(PRODUCT_COLUMNS)].sort_values("sku").reset_index(drop=True)


def clean_orders(raw: pd.DataFrame, report: ImportReport, source: str, products: pd.DataFrame) -> pd.DataFrame:
    """Orders of known SKUs, with a positive whole quantity and a non-negative unit price; timestamps as
    ISO 8601 or epoch seconds; sorted by time."""
    require(raw, ["order_id", "ts", "user_id", "sku", "quantity", "unit_price", "currency"], source)
    frame = raw.copy()
    frame["source_row"] = np.arange(len(frame))
    report.table("orders").rows_read += len(frame)
    show = ["order_id", "user_id", "sku", "quantity", "unit_price", "currency"]
    for column in ("order_id", "user_id", "sku"):
        frame = skip(frame, blank(frame[column]), report, "orders", f"missing {column}", show)
    frame = frame.assign(**{c: _text(frame[c]).astype(object) for c in ("order_id", "user_id", "sku")})
    frame = skip(frame, frame["order_id"].duplicated(), report, "orders", "duplicate order_id (first kept)", show)
    ts = parse_ts(frame["ts"], unit="s")
    frame = skip(frame, ts.isna(), report, "orders", "unparseable timestamp", show)
    frame = frame.assign(ts=ts[ts.notna()])
    unknown = ~frame["sku"].isin(set(products["sku"]))
    frame = skip(frame, unknown, report, "orders", "unknown sku (not in the products table)", show)
    quantity = pd.to_numeric(frame["quantity"], errors="coerce")
    whole = quantity.notna() & (quantity >= 1) & (quantity == np.floor(quantity.fillna(0)))
    frame = skip(frame, ~whole, report, "orders", "quantity is not a whole number >= 1", show)
    frame = frame.assign(quantity=quantity[whole].astype(np.int64))
    price = pd.to_numeric(frame["unit_price"], errors="coerce")
    frame = skip(frame, price.isna(), report, "orders", "unit_price missing or not a number", show)
    frame = frame.assign(unit_price=price[price.notna()].astype(float))
    frame = skip(frame, frame["unit_price"] < 0, report, "orders", "negative unit_price", show)
    frame = _currency(frame, report, "orders", show)
    for column in ("video_id", "session_id"):
        frame[column] = (
            _text(frame[column]).where(~blank(frame[column]), None).astype(object) if column in frame else None
        )
    report.table("orders").accepted += len(frame)
    return frame.sort_values(["ts", "source_row"], kind="stable")[list(ORDER_COLUMNS)].reset_index(drop=True)


def import_commerce(
    products: pd.DataFrame, orders: pd.DataFrame, source: str = "commerce", known_videos: set[str] | None = None
) -> CommerceImport:
    """Clean both tables (orders against the accepted products) and check that the counts reconcile."""
    report = ImportReport(source=source, format="commerce")
    accepted = clean_products(products, report, f"{source}: products", known_videos)
    cleaned = clean_orders(orders, report, f"{source}: orders", accepted)
    report.check()
    return CommerceImport(accepted, cleaned, report)


def read_commerce_dir(folder: Path, known_videos: set[str] | None = None) -> CommerceImport:
    """``products.csv`` and ``orders.parquet`` (or ``orders.csv``) from a folder, as the demo world writes them."""
    folder = Path(folder)
    products = pd.read_csv(folder / "products.csv", dtype=str, keep_default_na=False)
    if (folder / "orders.parquet").exists():
        orders = pd.read_parquet(folder / "orders.parquet")
    elif (folder / "orders.csv").exists():
        orders = pd.read_csv(folder / "orders.csv", dtype=str, keep_default_na=False)
    else:
        raise FileNotFoundError(f"{folder} has no orders.parquet or orders.csv; see docs/import.md#products-and-orders")
    return import_commerce(products, orders, str(folder), known_videos)
