"""The serving catalogue: item rows, their content embeddings and content index (/similar, /search), filters.

Rows are append-only (uploads add rows; nothing is removed while a model serves), so a row number
taken by one request stays valid while another request appends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bentos.schemas import Filters
from bentos.search import SearchIndex, parse_recognised, relevance, weights_for
from vidrec.index import ANN_THRESHOLD, ExactIndex, IvfIndex, build_index

COLUMNS = ("video_id", "title", "category", "creator_id", "is_product", "price", "duration_s", "is_live_host")
# Uploader tags and recognised tags (JSON, vidrec.media.recognition.tags_json): empty for bundles without them.
TAG_COLUMNS = ("tags", "recognised")


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero): inner products become cosines in [-1, 1]. The fused
    part of a content embedding is unit length but the measured descriptors after it are not, so raw
    inner products reached 1.77."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12))


@dataclass
class NewItem:
    """An item to append: its catalogue columns and its content embedding."""

    row: dict
    embedding: np.ndarray


class Catalogue:
    """Row-aligned with the model's served path (``models.serving.path``): both append uploads in step."""

    def __init__(self, items: pd.DataFrame, embeddings: np.ndarray, ann_threshold: int = ANN_THRESHOLD) -> None:
        if len(items) != len(embeddings):
            raise ValueError(f"catalogue parts disagree: {len(items)} items, {len(embeddings)} embeddings")
        self._lock = threading.Lock()
        items = items.reset_index(drop=True)
        self.items = items[list(COLUMNS)].copy()
        for column in TAG_COLUMNS:
            present = column in items
            self.items[column] = items[column].astype(object).where(items[column].notna(), None) if present else None
        self.items["category"] = self.items["category"].astype(str)
        self.items["creator_id"] = self.items["creator_id"].astype(str)
        self.embeddings = unit_rows(embeddings)  # L2-normalised: /similar and /search report cosines
        self.row_of = {v: i for i, v in enumerate(self.items["video_id"])}
        self.index: ExactIndex | IvfIndex = build_index(self.embeddings, ann_threshold)
        self.search_index = SearchIndex(
            self.items["title"].astype(str).tolist(), self.items["tags"].tolist(), self.items["recognised"].tolist()
        )
        self.recognised: list[list[dict]] = []
        self._tag_rows: dict[str, list[int]] = {}
        self._index_tags(0)
        self._refresh_columns()

    def _index_tags(self, start: int) -> None:
        """Payload tags and the tag filter's inverted index (recognised names and uploader tags) of rows
        from ``start`` on (uploads index only their own row)."""
        tail = self.items.iloc[start:]
        for row, (own, cell) in enumerate(zip(tail["tags"], tail["recognised"]), start=start):
            recognised = parse_recognised(cell)
            self.recognised.append([{"tag": t["tag"], "confidence": t["confidence"]} for t in recognised])
            names = {t.strip().lower() for t in str(own or "").replace("|", ",").split(",") if t.strip()}
            names |= {t["tag"].lower() for t in recognised}
            for name in names:
                self._tag_rows.setdefault(name, []).append(row)

    def _refresh_columns(self) -> None:
        # NumPy copies of the filter columns: a boolean mask over 100k rows costs microseconds this way.
        self.category = self.items["category"].to_numpy(dtype=object)
        self.is_product = self.items["is_product"].astype(bool).to_numpy()
        self.is_live_host = self.items["is_live_host"].astype(bool).to_numpy()
        self.creator = self.items["creator_id"].to_numpy(dtype=object)
        # Response columns as plain arrays too: a pandas row lookup costs ~0.2 ms per request, these ~µs.
        self.video_ids = self.items["video_id"].to_numpy(dtype=object)
        self.titles = self.items["title"].astype(str).to_numpy(dtype=object)
        self._category_masks: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.row_of)

    def rows(self, video_ids: list[str]) -> tuple[list[int], list[str]]:
        """Rows of the known ids (in order) and the ids that are not in the catalogue."""
        known, unknown = [], []
        for video_id in video_ids:
            row = self.row_of.get(video_id)
            (unknown.append(video_id) if row is None else known.append(row))
        return known, unknown

    def allowed(self, filters: Filters, seen: list[int] | None = None, live_only: bool = False) -> np.ndarray | None:
        """Boolean mask of rows passing the filters, or None when everything passes."""
        n = len(self)
        mask: np.ndarray | None = None

        def narrow(part: np.ndarray) -> None:
            nonlocal mask
            mask = part[:n].copy() if mask is None else mask & part[:n]

        if filters.category is not None:
            cached = self._category_masks.get(filters.category)
            if cached is None or len(cached) < n:
                cached = self._category_masks[filters.category] = self.category == filters.category
            narrow(cached)
        if filters.product_only:
            narrow(self.is_product)
        if filters.tags:
            tagged = np.zeros(n, dtype=bool)
            for tag in filters.tags:
                tagged[[r for r in self._tag_rows.get(tag.strip().lower(), ()) if r < n]] = True
            narrow(tagged)
        if live_only:
            narrow(self.is_live_host)
        if filters.exclude_seen and seen:
            if mask is None:
                mask = np.ones(n, dtype=bool)
            mask[[r for r in seen if r < n]] = False
        return mask

    def add(self, item: NewItem) -> int:
        """Append one item and return its row; readers see it once ``row_of`` names it."""
        with self._lock:
            existing = self.row_of.get(item.row["video_id"])
            if existing is not None:
                return existing
            frame = pd.DataFrame([{c: item.row.get(c) for c in (*COLUMNS, *TAG_COLUMNS)}])
            self.items = pd.concat([self.items, frame], ignore_index=True)
            vector = unit_rows(np.asarray(item.embedding, dtype=np.float32).reshape(1, -1))
            self.search_index.add(str(item.row["title"]), item.row.get("tags"), item.row.get("recognised"))
            self.embeddings = np.concatenate([self.embeddings, vector])
            self._index_tags(len(self.items) - 1)
            self._refresh_columns()
            self.index.add(vector)
            row = len(self.items) - 1
            self.row_of[item.row["video_id"]] = row  # published last: the row is complete before anyone sees it
            return row

    def describe(self, row: int) -> dict:
        return self.describe_many([row])[0]

    def describe_many(self, rows: list[int] | np.ndarray) -> list[dict]:
        """``describe`` for many rows (the response's video fields)."""
        ids, titles, categories, creators = self.video_ids, self.titles, self.category, self.creator
        tags = self.recognised
        return [
            {"video_id": ids[r], "title": titles[r], "category": categories[r], "creator_id": creators[r]}
            | {"tags": tags[r]}
            for r in np.asarray(rows, dtype=np.int64).tolist()
        ]

    def search(
        self, content: np.ndarray, text: np.ndarray, words: list[str], k: int, allowed: np.ndarray | None, sentences
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the ``k`` most relevant items (``bentos.search``), their relevance and content cosine.

        ``content``: the query's fused embedding; ``text``: its MiniLM vector; ``words``: its searchable words."""
        n = len(self)
        cosine = self.embeddings[:n] @ unit_rows(np.asarray(content, np.float32).reshape(1, -1))[0]
        words_match, picture = self.search_index.words(words, n), self.search_index.picture(text, sentences, n)
        score = relevance(words_match, picture, cosine, weights_for(words))
        candidates = np.arange(n) if allowed is None else np.flatnonzero(allowed[:n])
        if len(candidates) > k:
            top = np.argpartition(-score[candidates], k - 1)[:k]
            candidates = candidates[top]
        order = candidates[np.lexsort((candidates, -score[candidates]))]
        return order, score[order], cosine[order]
