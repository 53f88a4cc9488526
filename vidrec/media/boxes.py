"""Truncation of MP4/MOV files (ISO base media), read from their top-level box sizes.

Every top-level box states its size, so a file cut short has a last box that claims more bytes
than are left. Decoders do not say so: a fragmented MP4 cut in half plays as a shorter, valid
video (its duration comes from the fragments that remain), and a plain MP4 cut before its index
fails with FFmpeg's "Invalid data found when processing input". Reading the box sizes costs a
few seeks, whatever the file size.
"""

from __future__ import annotations

import os
import struct

_ISO_BRANDS = (b"ftyp", b"styp")  # the first box of an MP4/MOV/3GP file or fragment
_MAX_BOXES = 1_000_000  # a fragmented file has two boxes per fragment; this bounds a hostile loop


def looks_iso_bmff(path: str) -> bool:
    """Whether the file starts like an MP4/MOV (a ``ftyp`` box), whatever its name says."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] in _ISO_BRANDS


def truncation(path: str) -> str | None:
    """Why an MP4/MOV file is cut short or lacks its index, or None when its boxes add up.

    Only meaningful for files for which ``looks_iso_bmff`` holds.
    """
    size = os.path.getsize(path)
    kinds: list[bytes] = []
    position = 0
    with open(path, "rb") as handle:
        while position + 8 <= size and len(kinds) < _MAX_BOXES:
            handle.seek(position)
            header = handle.read(16)
            box_size, kind = struct.unpack(">I4s", header[:8])
            if box_size == 1:  # a 64-bit size follows the type
                if len(header) < 16:
                    return _cut(kind, position, None, size)
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # the box runs to the end of the file (e.g. an mdat being written)
                box_size = size - position
            if box_size < 8:
                return f"damaged MP4 structure: box {_name(kind)} at byte {position} states {box_size} bytes"
            kinds.append(kind)
            if position + box_size > size:
                return _cut(kind, position, box_size, size, has_index=b"moov" in kinds)
            position += box_size
    if b"moov" not in kinds:
        return (
            f"MP4 without its index (no moov box among {', '.join(_name(k) for k in kinds[:6])}): the file "
            "was cut short or its recording never finished"
        )
    return None


def _cut(kind: bytes, position: int, box_size: int | None, size: int, has_index: bool = False) -> str:
    claims = f"claims {box_size} bytes" if box_size else "is incomplete"
    lost = "" if has_index else "; the index (moov box) is missing too"
    return f"MP4 cut short: box {_name(kind)} at byte {position} {claims} but the file ends at byte {size}{lost}"


def _name(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))
