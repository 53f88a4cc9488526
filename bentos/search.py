"""/search relevance: what the words of a query have to do with each video's title, tags and picture.

``relevance`` = w_words · word match + w_picture · picture match + 0.15 · content match, each in [-1, 1]:

- word match: the share of the query's words found in the title or the uploader's tags (plurals
  folded), so "coffee cup" finds a video titled "my coffee cups" whatever the encoder learnt;
- picture match: how close, in MiniLM space, the query is to the ImageNet labels the backbone
  recognised in the video, weighted by their confidence (labels that together hold less than half of
  the probability are trusted less), so "rocket" finds a video whose frames show a missile, untitled.
  Each label's cosine is taken relative to the query's mean cosine over all 1000 labels: MiniLM puts
  every label at ~0.2 from any query, so a doormat scored 0.2 for "camera" before, as if it were a weak
  camera; now unrelated pictures score ~0 and only labels nearer than average count;
- content match: the cosine of the query and the video's fused content embeddings (the trained
  encoder's view, which also knows the world's behaviour).

The weights depend on what the query names. Words that are words of an ImageNet class name ("cat",
"camera", "clock", "cup") name something a picture can show, and for those the picture is observed
evidence while a title is the uploader's claim: a video titled "camera" whose frames show a doormat
should rank below an untitled clip whose frames show a camera on its tripod. The weights move from
``WEIGHTS`` (words 0.5, picture 0.35) towards ``PICTURE_WEIGHTS`` (words 0.2, picture 0.65) in
proportion to the share of such words in the query: "guitar concert" is half a picture query.

A query with no words (emoji, punctuation, markup, stop words only) matches nothing, and says so:
the text encoder maps any string somewhere, so without this it returned "matches" at 0.95.
"""

from __future__ import annotations

import json
import re
import threading
from functools import lru_cache

import numpy as np
from scipy import sparse

from vidrec.text import normalise_text

WEIGHTS = {"words": 0.5, "picture": 0.35, "content": 0.15}
# For a query of class-name words only: a title-only match (0.2) ranks below a picture whose recognised
# labels are clearly the class (relative picture match above ~0.31).
PICTURE_WEIGHTS = {"words": 0.2, "picture": 0.65, "content": 0.15}
_WORD = re.compile(r"[^\W_]+")
_MARKUP = re.compile(r"<[^>]*>|&#?\w+;")
_STOP = frozenset("a an and are as at be by for from in is it its of on or the to with".split())
NO_WORDS = "the query has no words to search for (only emoji, punctuation, markup or stop words): nothing matched"
# Recognised labels holding less than this much probability in total count for proportionally less.
_TRUSTED_MASS = 0.5


def _fold(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def query_words(query: str) -> list[str]:
    """The searchable words of a query: markup removed, letters and digits only, stop words dropped."""
    text = _MARKUP.sub(" ", normalise_text(query))
    return [_fold(w) for w in _WORD.findall(text) if w not in _STOP]


def text_words(*parts: object) -> set[str]:
    words: set[str] = set()
    for part in parts:
        if isinstance(part, str):
            words.update(_fold(w) for w in _WORD.findall(normalise_text(part.replace("|", " "))) if w not in _STOP)
    return words


@lru_cache(maxsize=1)
def label_words() -> frozenset[str]:
    """Every word of the 1000 ImageNet class names and synonyms, folded as query words are."""
    from vidrec.media.backbone import imagenet_labels

    return frozenset(text_words(*imagenet_labels()))


def weights_for(words: list[str]) -> dict[str, float]:
    """The relevance weights for a query's words: ``WEIGHTS`` moved towards ``PICTURE_WEIGHTS`` by the
    share of its distinct words that name something the backbone can recognise."""
    distinct = set(words)
    share = sum(w in label_words() for w in distinct) / max(len(distinct), 1)
    return {k: WEIGHTS[k] + share * (PICTURE_WEIGHTS[k] - WEIGHTS[k]) for k in WEIGHTS}


def relative_cosines(cosines: np.ndarray) -> np.ndarray:
    """Cosines of the query with each label, relative to its mean cosine over all labels: 0 for an
    average (unrelated) label, 1 for the query itself, clipped to [-1, 1]."""
    mean = float(cosines.mean())
    return np.clip((cosines - mean) / max(1.0 - mean, 1e-6), -1.0, 1.0).astype(np.float32)


def parse_recognised(cell: object) -> list[dict]:
    """The ``recognised`` JSON cell of an item (``vidrec.media.recognition.tags_json``); [] when absent."""
    return json.loads(cell) if isinstance(cell, str) and cell else []


class LabelSpace:
    """MiniLM vectors of the 1000 ImageNet labels, embedded once per process on first use (~2 s)."""

    _lock = threading.Lock()
    _vectors: np.ndarray | None = None

    @classmethod
    def vectors(cls, sentences) -> np.ndarray:
        with cls._lock:
            if cls._vectors is None:
                from vidrec.media.backbone import imagenet_labels

                cls._vectors = sentences.encode(list(imagenet_labels()))
            return cls._vectors


class SearchIndex:
    """Row-aligned with the catalogue: an inverted index of words and a sparse (items x labels) matrix."""

    def __init__(self, titles: list[str], tags: list[object], recognised: list[object]) -> None:
        self._lock = threading.Lock()
        self.rows = 0
        self.postings: dict[str, list[int]] = {}
        self._label_rows: list[int] = []
        self._label_cols: list[int] = []
        self._label_vals: list[float] = []
        self._matrix: sparse.csr_matrix | None = None
        for title, tag_cell, cell in zip(titles, tags, recognised):
            self.add(title, tag_cell, cell)

    def add(self, title: str, tags: object, recognised: object) -> None:
        with self._lock:
            row = self.rows
            for word in text_words(title, tags):
                self.postings.setdefault(word, []).append(row)
            labels = parse_recognised(recognised)
            mass = max(sum(t["confidence"] for t in labels), _TRUSTED_MASS)
            for t in labels:
                self._label_rows.append(row)
                self._label_cols.append(int(t["label_index"]))
                self._label_vals.append(float(t["confidence"]) / mass)
            self.rows += 1
            self._matrix = None

    def _labels(self) -> sparse.csr_matrix:
        with self._lock:
            if self._matrix is None or self._matrix.shape[0] != self.rows:
                self._matrix = sparse.csr_matrix(
                    (self._label_vals, (self._label_rows, self._label_cols)), shape=(self.rows, 1000), dtype=np.float32
                )
            return self._matrix

    def words(self, words: list[str], n: int) -> np.ndarray:
        """(n,) share of the query's distinct words each row contains."""
        distinct = set(words)
        score = np.zeros(n, np.float32)
        for word in distinct:
            rows = [r for r in self.postings.get(word, ()) if r < n]
            score[rows] += 1.0
        return score / max(len(distinct), 1)

    def picture(self, query_vector: np.ndarray, sentences, n: int) -> np.ndarray:
        """(n,) confidence-weighted relative cosine of the query with each row's recognised labels."""
        labels = self._labels()
        if labels.nnz == 0:
            return np.zeros(n, np.float32)
        cosines = LabelSpace.vectors(sentences) @ np.asarray(query_vector, np.float32)
        return np.asarray(labels @ relative_cosines(cosines), np.float32)[:n]


def relevance(
    words: np.ndarray, picture: np.ndarray, content: np.ndarray, weights: dict[str, float] = WEIGHTS
) -> np.ndarray:
    """The weighted sum of the three matches; each lies in [-1, 1] and the weights sum to 1, so the result
    does too."""
    return weights["words"] * words + weights["picture"] * picture + weights["content"] * content
