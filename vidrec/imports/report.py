"""What an import did with every input row: read, accepted, or skipped with a counted reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

REJECTED_COLUMNS = ("table", "source_row", "reason", "raw")


@dataclass
class TableReport:
    """Counts for one input table; ``rows_read == accepted + sum(skipped.values())`` always."""

    name: str
    rows_read: int = 0
    accepted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return self.rows_read == self.accepted + sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "skipped": dict(self.skipped),
            "reconciles": self.reconciles(),
        }


@dataclass
class ImportReport:
    """Per-table counts, the rejected rows themselves, and notes a person must read (e.g. absent signals)."""

    source: str
    format: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REJECTED_COLUMNS)))

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport(name))

    def reject(self, table: str, rows: pd.DataFrame, reason: str) -> None:
        """Record ``rows`` (with a ``source_row`` column) as skipped for ``reason``."""
        if rows.empty:
            return
        values = rows.drop(columns=["source_row"], errors="ignore")
        raw = pd.Series("", index=rows.index)
        for i, column in enumerate(values.columns):  # vectorised concatenation; row-wise join is slow at 1M rows
            raw = raw + ("" if i == 0 else " | ") + values[column].astype(str)
        frame = pd.DataFrame(
            {"table": table, "source_row": rows["source_row"].to_numpy(), "reason": reason, "raw": raw.to_numpy()}
        )
        self.rejected = frame if self.rejected.empty else pd.concat([self.rejected, frame], ignore_index=True)
        counts = self.table(table).skipped
        counts[reason] = counts.get(reason, 0) + len(rows)

    def check(self) -> None:
        """Raise if any table's counts do not reconcile (a row went missing without a reason)."""
        for report in self.tables.values():
            if not report.reconciles():
                raise AssertionError(
                    f"import of {self.source}: table {report.name} read {report.rows_read} rows but accepted "
                    f"{report.accepted} and skipped {sum(report.skipped.values())}; this is a bug in the importer"
                )
        by_table = Counter(self.rejected["table"])
        for name, report in self.tables.items():
            if by_table.get(name, 0) != sum(report.skipped.values()):
                raise AssertionError(f"import of {self.source}: rejected rows of {name} do not match its counts")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "notes": list(self.notes),
            "tables": {name: t.to_dict() for name, t in self.tables.items()},
        }

    def summary(self) -> str:
        """A few readable lines for logs and the CLI."""
        lines = [f"import {self.format} from {self.source}"]
        for name, t in self.tables.items():
            skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(t.skipped.items())) or "none"
            lines.append(f"  {name}: read {t.rows_read}, accepted {t.accepted}, skipped {skipped}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)
