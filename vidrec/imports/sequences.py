"""Sequence files: one line per user, ``user_id<TAB>item item item ...`` with items in time order.

The file carries order but no clock, so each interaction's ``ts`` is its position in the user's
sequence (seconds after the epoch) and the result says ``clock_time: False``: leave-one-out and
random splits work, the global temporal split refuses.
"""

from __future__ import annotations

import logging
import time

import fsspec
import numpy as np
import pandas as pd

from vidrec.imports.logs import read_text_items
from vidrec.imports.report import ImportReport
from vidrec.imports.tables import ImportResult, clean_events, clean_items, signal_notes

log = logging.getLogger(__name__)


def _parse_lines(path: str, report: ImportReport) -> pd.DataFrame:
    """One row per item token: ``source_row`` (line number, 0-based), user_id, video_id, position in line."""
    users, items, lines, positions = [], [], [], []
    bad: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    with fsspec.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            line = line.rstrip("\r\n")
            if not line.strip():
                bad.append((number, line, "empty line"))
                continue
            user, tab, rest = line.partition("\t")
            tokens = rest.split()
            if not tab:
                bad.append((number, line[:80], "malformed line (no tab between user id and items)"))
            elif not user.strip():
                bad.append((number, line[:80], "missing user_id"))
            elif not tokens:
                bad.append((number, line[:80], "user with an empty item sequence"))
            elif user.strip() in seen:  # two sequences for one user have no defined relative order
                bad.append((number, line[:80], "user_id already has a sequence on an earlier line"))
            else:
                seen.add(user.strip())
                users += [user.strip()] * len(tokens)
                items += tokens
                lines += [number] * len(tokens)
                positions += range(len(tokens))
    # A bad line counts once (it yields no interactions); a good line counts once per item token.
    report.table("events").rows_read = len(items) + len(bad)
    for reason in sorted({r for _, _, r in bad}):
        rows = pd.DataFrame([(n, text) for n, text, r in bad if r == reason], columns=["source_row", "line"])
        report.reject("events", rows, reason)
    return pd.DataFrame(
        {
            "source_row": np.asarray(lines, dtype=np.int64),
            "user_id": users,
            "video_id": items,
            "position": np.asarray(positions, dtype=np.int64),
        }
    )


def import_sequences(path: str, items_path: str | None = None) -> ImportResult:
    """Import a sequence file and optionally a text-only item table (see ``logs.read_text_items``).

    Repeats of an item in one sequence are kept: they are separate consumptions at different positions.
    """
    started = time.perf_counter()
    report = ImportReport(source=path, format="sequences")
    tokens = _parse_lines(path, report)
    if items_path is not None:
        items = clean_items(read_text_items(items_path), report, f"item table {items_path}")
    else:
        items = clean_items(
            pd.DataFrame({"video_id": tokens["video_id"].drop_duplicates()}), report, "item ids in the sequences"
        )
        report.notes.append("no item table given: items are the distinct ids in the sequences, without text")
    items["media_kind"], items["has_visual"], items["has_audio"] = "none", False, False
    # Position inside the sequence is the only order there is; ties across users do not matter.
    tokens["event_id"] = tokens["source_row"].astype(str) + ":" + tokens["position"].astype(str)
    tokens["ts"] = pd.to_datetime(tokens.pop("position"), unit="s", utc=True)
    tokens["surface"] = "sequence"
    events, _ = clean_events(
        tokens, report, set(items["video_id"]), ts_unit=None, dedupe_on=["event_id"], surface="sequence"
    )
    signals = {
        "position": False,
        "propensity": False,
        "watch_s": False,
        "converted": False,
        "impressions": False,
        "clock_time": False,
    }
    report.notes += signal_notes(signals)
    report.check()
    log.info("imported %d sequence events in %.1f s", len(events), time.perf_counter() - started)
    return ImportResult(items=items, events=events, report=report, signals=signals)
