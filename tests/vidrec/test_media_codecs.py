"""Seeking gives distinct true frames for every video encoder the installed decoder offers (issue 19)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from tests.vidrec.media_fixtures import (
    write_video,
)
from vidrec.media.frames import sample_frames

# --- seeking on every codec the decoder has ---------------------------------------------------

HARDWARE = ("_amf", "_qsv", "_v4l2m2m", "_vaapi", "_nvenc", "_cuvid", "_videotoolbox", "_mf", "_vulkan")


def _video_encoders() -> list[str]:
    """Every video encoder of this PyAV build whose codec its decoder reads (hardware ones left out:
    this machine has none), so a codec added to the build is tested without editing this list."""
    found = set()
    for name in av.codecs_available:
        try:
            codec = av.Codec(name, "w")
        except Exception:
            continue
        if codec.type != "video" or codec.name.endswith(HARDWARE):
            continue
        # The decoder is looked up by the codec's name ("libx264" writes what "h264" reads).
        if any(_readable(n) for n in (codec.name, name)):
            found.add(codec.name)
    return sorted(found)


def _readable(name: str) -> bool:
    try:
        av.Codec(name, "r")
        return True
    except Exception:
        return False


def _write_any(tmp_path: Path, codec: str, gop: int | None) -> Path:
    """The clip in the first container that takes the codec: MP4 as shops deliver it, else NUT
    (FFmpeg's own, which takes nearly any codec), else Matroska or AVI."""
    formats = [f.name for f in av.Codec(codec, "w").video_formats or []]
    pix_fmts = [f for f in ("yuv420p", "yuvj420p") if not formats or f in formats] + formats[:1]
    for container_format, suffix in (("mp4", "mp4"), ("nut", "nut"), ("mov", "mov"), ("matroska", "mkv")):
        for pix_fmt in pix_fmts:
            path = tmp_path / f"clip.{suffix}"
            try:
                return write_video(
                    path,
                    codec=codec,
                    n_frames=40,
                    fps=8,
                    width=64,
                    height=64,
                    gop=gop,
                    container_format=container_format,
                    pix_fmt=pix_fmt,
                )
            except (av.FFmpegError, ValueError):
                path.unlink(missing_ok=True)
    pytest.skip(f"{codec} cannot write a 64x64 clip in any test container (size or format constraints)")


def _decoded_in_full(path: Path, size: int) -> dict[float, np.ndarray]:
    """Every frame by its time, scaled as the sampler scales it, from one decode without seeking."""
    with av.open(str(path)) as container:
        return {
            round(float(f.time), 6): f.reformat(width=size, height=size, format="rgb24").to_ndarray()
            for f in container.decode(video=0)
        }


@pytest.mark.parametrize("gop", [8, None], ids=["gop8", "default_gop"])
@pytest.mark.parametrize("codec", _video_encoders())
def test_seeks_give_distinct_true_frames_for_every_codec(tmp_path: Path, codec: str, gop: int | None) -> None:
    # libdav1d kept skipping non-key frames after keyframe mode asked it once, so AV1 returned the
    # 0 s frame for 7 of 8 samples; any codec or container whose seeks go wrong must fall back.
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner otherwise
    path = _write_any(tmp_path, codec, gop)
    truth = _decoded_in_full(path, size=8)
    times = sorted(truth)
    for seek in ("keyframe", "exact"):
        frames, plan = sample_frames(str(path), size=8, seek=seek)  # type: ignore[arg-type]
        taken = plan.frame_times
        assert not plan.repeated and all(b > a for a, b in zip(taken, taken[1:])), (seek, plan)
        for target, time, pixels in zip(plan.timestamps, taken, frames):
            assert time in truth, (seek, time)
            # The pixels are those of the frame the plan names ...
            assert np.array_equal(pixels.transpose(1, 2, 0), truth[time]), (seek, time)
            # ... and that frame is the one the mode promises: in exact mode the first at or after
            # the moment (the last one for a moment past it), in keyframe mode one at or before it.
            exact = next((t for t in times if t >= target - 1e-6), times[-1])
            assert time == exact or (seek == "keyframe" and time <= target), (seek, target, time)


# --- links, names, accounting -----------------------------------------------------------------
