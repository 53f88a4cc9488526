"""Top-k retrieval over L2-normalised item embeddings: exact for small catalogues, an inverted-file (IVF)
index (faiss) above a threshold.

Every index answers the same question, inner-product top-k restricted to an optional boolean mask of
allowed rows, so the service's filters (category, product only, exclude seen) apply inside the search
rather than by over-fetching and dropping. Rows are the item rows of the serving catalogue; items are
only ever appended (uploads), never removed, so row numbers stay stable for the life of an index.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

ANN_THRESHOLD = 20_000
"""Catalogue size above which the IVF index is used; below it exact search costs well under a millisecond."""


@dataclass(frozen=True)
class IvfSettings:
    """Inverted-file parameters: ``items_per_list`` sets the number of k-means lists (catalogue size ÷ it),
    ``probe_share`` the share of lists each query scans (the recall/latency knob).

    Measured on the serving benchmark's 100k catalogue (benchmarks/serve.py; effective rank ~7 of 64, the
    10th and 11th neighbours a median 8e-4 apart in cosine, so neighbourhoods are full of near-ties):
    125 lists probing a quarter of them gives recall@10 0.985 at ~0.2 ms a query, filtered top-100 recall
    0.999 under a random 1-in-8 mask; HNSW (M 32, efConstruction 128) reached 0.92 at efSearch 512
    (~0.5 ms) and 0.93 at 1024 (~1.1 ms), and M 64 / efConstruction 400 only 0.956 at efSearch 1024
    (~1.1 ms, 29 s to build). Exact search costs ~0.8 ms there.
    """

    items_per_list: int = 800
    probe_share: float = 0.25

    def lists(self, n_items: int) -> int:
        return max(1, n_items // self.items_per_list)

    def probes(self, n_lists: int) -> int:
        return max(1, min(n_lists, math.ceil(n_lists * self.probe_share)))


@dataclass(frozen=True)
class HnswSettings:
    """HNSW graph parameters; ``ef_search`` is the recall/latency knob (see ``IvfSettings`` for why the
    service uses IVF above the threshold: on catalogues with many near-tied neighbours HNSW recall stalls)."""

    m: int = 32
    ef_construction: int = 128
    ef_search: int = 512


def _as_matrix(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {matrix.shape}")
    if dim is not None and matrix.shape[1] != dim:
        raise ValueError(f"vectors have dimension {matrix.shape[1]}, the index holds dimension {dim}")
    return matrix


class ExactIndex:
    """Brute-force inner product: one matrix-vector product and a partial sort."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = _as_matrix(vectors)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    @property
    def dim(self) -> int:
        return self._vectors.shape[1]

    def add(self, vectors: np.ndarray) -> None:
        with self._lock:
            self._vectors = np.concatenate([self._vectors, _as_matrix(vectors, self.dim)])

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of the best ``k`` allowed rows, best first (fewer when fewer are allowed)."""
        vectors = self._vectors  # a consistent snapshot even if an upload appends meanwhile
        scores = vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[: min(len(scores), len(allowed))] = allowed[: len(scores)]
            scores = np.where(mask, scores, -np.inf)
            k = min(k, int(mask.sum()))
        k = min(k, len(scores))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return top.astype(np.int64), scores[top].astype(np.float32)


class _FaissIndex:
    """What the faiss-backed indexes share: size, dimension and appends under the index's lock
    (faiss may not be searched while it is being added to; searches are short, so one lock is enough)."""

    _index: faiss.Index  # noqa: F821 (faiss is imported lazily)
    _lock: threading.Lock

    def __len__(self) -> int:
        return self._index.ntotal

    @property
    def dim(self) -> int:
        return self._index.d

    def add(self, vectors: np.ndarray) -> None:
        matrix = _as_matrix(vectors, self.dim)
        with self._lock:
            self._index.add(matrix)


class HnswIndex(_FaissIndex):
    """faiss ``IndexHNSWFlat`` (inner product) with bitmap-filtered search.

    faiss over hnswlib/usearch: filters run inside the graph walk as a C++ ``IDSelectorBitmap``
    (hnswlib's filter is a Python callback per visited node, which holds the GIL), items can be
    appended to a built graph, and searches release the GIL.
    """

    kind = "hnsw"

    def __init__(self, vectors: np.ndarray, settings: HnswSettings = HnswSettings()) -> None:
        import faiss  # imported here: the exact path (tests, small catalogues) never needs it

        self._faiss = faiss
        matrix = _as_matrix(vectors)
        self.settings = settings
        self._index = faiss.IndexHNSWFlat(matrix.shape[1], settings.m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = settings.ef_construction
        # faiss may not be searched while it is being added to; searches are short, so one lock is enough.
        self._lock = threading.Lock()
        self._index.add(matrix)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        faiss = self._faiss
        q = _as_matrix(np.asarray(query, dtype=np.float32).reshape(1, -1), self.dim)
        ef = max(self.settings.ef_search, k)
        selector = None
        with self._lock:
            n = self._index.ntotal
            if allowed is not None:
                mask = np.zeros(n, dtype=bool)
                mask[: min(n, len(allowed))] = allowed[:n]
                k = min(k, int(mask.sum()))
                selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
            k = min(k, n)
            if k <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            params = (
                faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
                if selector is not None
                else faiss.SearchParametersHNSW(efSearch=ef)
            )
            scores, rows = self._index.search(q, k, params=params)
        keep = rows[0] >= 0  # faiss pads with -1 when the filtered graph walk finds fewer than k
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


class IvfIndex(_FaissIndex):
    """faiss ``IndexIVFFlat`` (inner product, k-means lists over the catalogue) with bitmap-filtered search.

    faiss over hnswlib/usearch: filters run inside the scan as a C++ ``IDSelectorBitmap`` (hnswlib's
    filter is a Python callback per visited node, which holds the GIL), items can be appended after
    training (uploads go to their nearest list), and searches release the GIL. An inverted file over a
    graph because a filtered scan of the probed lists stays exhaustive within them, where a filtered
    graph walk loses its way, and because near-tied neighbourhoods stall HNSW recall (``IvfSettings``).
    """

    kind = "ivf"

    def __init__(self, vectors: np.ndarray, settings: IvfSettings = IvfSettings()) -> None:
        import faiss  # imported here: the exact path (tests, small catalogues) never needs it

        self._faiss = faiss
        matrix = _as_matrix(vectors)
        self.settings = settings
        n_lists = settings.lists(len(matrix))
        self._quantizer = faiss.IndexFlatIP(matrix.shape[1])  # kept: the IVF index points into it
        self._index = faiss.IndexIVFFlat(self._quantizer, matrix.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
        self._index.train(matrix)  # k-means (fixed seed): the same catalogue gives the same lists
        self._index.add(matrix)
        self.n_probe = settings.probes(n_lists)
        # faiss may not be searched while it is being added to; searches are short, so one lock is enough.
        self._lock = threading.Lock()

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        faiss = self._faiss
        q = _as_matrix(np.asarray(query, dtype=np.float32).reshape(1, -1), self.dim)
        with self._lock:
            n = self._index.ntotal
            params = faiss.SearchParametersIVF(nprobe=self.n_probe)
            if allowed is not None:
                if len(allowed) == n and allowed.dtype == np.bool_:
                    mask = allowed  # the usual case: no copy of a 100k-row mask per query
                else:
                    mask = np.zeros(n, dtype=bool)
                    mask[: min(n, len(allowed))] = allowed[:n]
                k = min(k, int(np.count_nonzero(mask)))
                params = faiss.SearchParametersIVF(
                    nprobe=self.n_probe, sel=faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
                )
            k = min(k, n)
            if k <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            scores, rows = self._index.search(q, k, params=params)
        keep = rows[0] >= 0  # faiss pads with -1 when the probed lists hold fewer than k allowed rows
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


def build_index(
    vectors: np.ndarray, threshold: int = ANN_THRESHOLD, settings: IvfSettings = IvfSettings()
) -> ExactIndex | IvfIndex:
    """Exact search up to ``threshold`` items, IVF above it."""
    return IvfIndex(vectors, settings) if len(vectors) > threshold else ExactIndex(vectors)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k rows the approximate search also returned (rows: queries)."""
    if len(exact) == 0:
        raise ValueError("recall_at_k needs at least one query")
    hits = [len(set(a.tolist()) & set(e.tolist())) / max(len(e), 1) for a, e in zip(approximate, exact)]
    return float(np.mean(hits))
