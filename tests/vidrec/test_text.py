"""Text normalisation: encodings, Unicode forms, empty and missing values."""

from __future__ import annotations

from vidrec.text import item_text, normalise_text


def test_normalise_none_and_empty() -> None:
    assert normalise_text(None) == ""
    assert normalise_text("") == ""
    assert normalise_text(b"") == ""
    assert normalise_text(" \t\n ") == ""


def test_normalise_lowercases_and_collapses_whitespace() -> None:
    assert normalise_text("  Hello\tWORLD \n\n again ") == "hello world again"


def test_normalise_nfkc_folds_compatibility_forms() -> None:
    # Full-width letters and the "fi" ligature fold to their plain forms.
    assert normalise_text("ＣＡＴ ﬁsh") == "cat fish"
    # Decomposed e + combining acute composes to one code point.
    assert normalise_text("Cafe\u0301") == "caf\u00e9"


def test_normalise_strips_control_characters() -> None:
    assert normalise_text("a\x00b\x07c\u200bd\ufeff") == "abcd"


def test_normalise_bytes_utf8_and_invalid() -> None:
    assert normalise_text("Crème Brûlée".encode()) == "crème brûlée"
    # Latin-1 bytes are not valid UTF-8: replaced, not raised.
    assert normalise_text("Crème".encode("latin-1")) == "cr\ufffdme"
    assert normalise_text(b"\xff\xfe\x00A") == "\ufffd\ufffda"


def test_item_text_joins_parts() -> None:
    text = item_text("Red Car", ["Fast", " cars "], "A  car\nthat is red.")
    assert text == "red car. tags: fast, cars. a car that is red."


def test_item_text_skips_empty_parts() -> None:
    assert item_text(None, None, None) == ""
    assert item_text("Title", [], "") == "title"
    assert item_text(None, ["a", "", None], None) == "tags: a"
    assert item_text("", None, b"Only description") == "only description"


def test_item_text_accepts_comma_separated_tags() -> None:
    assert item_text("T", "x, Y,,z", None) == "t. tags: x, y, z"
    assert item_text("T", b"x,\xff", None) == "t. tags: x, \ufffd"
