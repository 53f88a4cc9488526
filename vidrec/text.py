"""Text normalisation for video metadata: one canonical string per item for the text encoder.

Titles, tags and descriptions arrive from uploads and imports in any encoding and casing;
normalising them here keeps features stable across sources.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WHITESPACE = re.compile(r"\s+")


def normalise_text(value: str | bytes | None) -> str:
    """NFKC, lowercase, control characters dropped, whitespace collapsed; ``None`` gives ``""``.

    Bytes are decoded as UTF-8 with invalid sequences replaced (U+FFFD), so a mis-encoded
    upload degrades to a readable string instead of failing the batch.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = unicodedata.normalize("NFKC", str(value)).lower()
    # Whitespace controls (tab, newline) become spaces; other controls and format marks
    # (category C*: NUL, zero-width joiners, BOM) carry no meaning for a text encoder.
    chars = (" " if ch.isspace() else ch for ch in text)
    text = "".join(ch for ch in chars if not unicodedata.category(ch).startswith("C"))
    return _WHITESPACE.sub(" ", text).strip()


def item_text(
    title: str | bytes | None,
    tags: Iterable[str | bytes | None] | str | bytes | None,
    description: str | bytes | None,
) -> str:
    """``"title. tags: a, b. description"`` from normalised parts, skipping empty ones.

    ``tags`` may be a list or one comma-separated string.
    """
    if tags is None:
        tag_list: list[str] = []
    elif isinstance(tags, (str, bytes)):
        raw = tags.decode("utf-8", errors="replace") if isinstance(tags, bytes) else tags
        tag_list = [normalise_text(tag) for tag in raw.split(",")]
    else:
        tag_list = [normalise_text(tag) for tag in tags]
    tag_list = [tag for tag in tag_list if tag]

    parts = [normalise_text(title)]
    if tag_list:
        parts.append("tags: " + ", ".join(tag_list))
    parts.append(normalise_text(description))
    return ". ".join(part for part in parts if part)
