"""A still picture as a short video with a slow pan and zoom (the "Ken Burns" move of product clips).

Used to check recognition on real photographs: each frame is a different crop of the picture, so
the frames a sampler picks differ as in a filmed clip, and the codec's compression applies.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def pan_zoom_video(
    image: np.ndarray,
    out: Path,
    seconds: float = 2.0,
    fps: int = 12,
    size: tuple[int, int] = (320, 240),
    zoom: float = 1.25,
) -> Path:
    """Write ``image`` ((H, W) grey or (H, W, 3) RGB uint8) as an H.264 MP4 of ``size`` (width, height):
    the view zooms in from the whole picture (cropped to the output aspect) to 1/``zoom`` of it while
    drifting from left to right."""
    picture = np.asarray(image)
    if picture.ndim == 2:
        picture = np.repeat(picture[:, :, None], 3, axis=2)
    if picture.ndim != 3 or picture.shape[2] < 3:
        raise ValueError(f"pan_zoom_video takes an (H, W) or (H, W, 3) picture, got {picture.shape}")
    picture = np.ascontiguousarray(picture[:, :, :3].astype(np.uint8))
    height, width = picture.shape[:2]
    out_w, out_h = size
    aspect = out_w / out_h
    base_w = min(width, height * aspect)
    frames = max(2, round(seconds * fps))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
        for i in range(frames):
            progress = i / (frames - 1)
            crop_w = base_w / (1 + (zoom - 1) * progress)
            crop_h = crop_w / aspect
            left = (width - crop_w) * (0.25 + 0.5 * progress)  # drift left to right, never past the edges
            top = (height - crop_h) / 2
            x0, y0 = int(left), int(top)
            crop = picture[y0 : y0 + int(crop_h), x0 : x0 + int(crop_w)]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")
            frame = frame.reformat(width=out_w, height=out_h, format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(out)
