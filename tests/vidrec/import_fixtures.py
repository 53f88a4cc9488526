"""Tiny media files and report helpers for the importer tests."""

from pathlib import Path

import av
import numpy as np

SIZE = 64


def _picture() -> np.ndarray:
    """Four flat colour blocks: survives yuv420 video compression almost unchanged."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:32, :32], image[:32, 32:], image[32:, :32], image[32:, 32:] = (
        (200, 40, 40),
        (40, 200, 40),
        (40, 40, 200),
        (220, 220, 60),
    )
    return image


def write_png(path: Path) -> Path:
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(_picture(), format="rgb24")
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_one_frame_mp4(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "1"}
        frame = av.VideoFrame.from_ndarray(_picture(), format="rgb24")
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _reasons(result, table: str) -> dict[str, int]:
    return dict(result.report.tables[table].skipped)


# --- an implicit-feedback log and its items, for test_import_logs.py and test_import_native.py

LOG = """user_id,video_id,ts,rating
u1,i1,100,5
u1,i2,90,4
u2,i1,100,abc
u2,i3,110,2
u2,,120,5
u3,i9,130,5
u1,i1,100,5
u3,i2,notatime,5
u3,i3,140,4.5
"""
ITEMS = """video_id,title,tags,description
i1,First item,a|b,
i2,Second,,a calm video
i3,Third,c,
i3,Duplicate row,,
,Nameless,,
"""
