"""The building blocks of the data contract: a `Rule` (one Great Expectations 1.x expectation with the
sentence a person reads when a row is quarantined), a `Suite` (a table's rules) and the rule builders the
suites in `expectations.suites` are declared with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """One expectation: GX class name, its kwargs, a description, and the rows it applies to.

    `when` restricts the rule to rows where every named column equals the given value
    (becomes a GX row_condition); empty means every row.
    """

    expectation: str
    kwargs: Mapping[str, object]
    description: str
    when: Mapping[str, object] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the rule checks (empty for table-level rules)."""
        if "column" in self.kwargs:
            return (str(self.kwargs["column"]),)
        if "column_list" in self.kwargs:
            return tuple(str(c) for c in self.kwargs["column_list"])  # type: ignore[union-attr]
        return ()


@dataclass(frozen=True)
class Suite:
    """A named list of rules for one table of the data contract."""

    name: str
    columns: tuple[str, ...]
    rules: tuple[Rule, ...]


def columns_present(columns: tuple[str, ...]) -> Rule:
    return Rule(
        "ExpectTableColumnsToMatchSet",
        {"column_set": list(columns), "exact_match": False},
        f"table has the contract columns {', '.join(columns)}",
    )


def not_null(column: str, when: Mapping[str, object] | None = None) -> Rule:
    return Rule(
        "ExpectColumnValuesToNotBeNull",
        {"column": column},
        f"{column} is present",
        dict(when or {}),
    )


def between(
    column: str,
    low: float | None,
    high: float | None,
    description: str,
    when: Mapping[str, object] | None = None,
    **extra: object,
) -> Rule:
    kwargs: dict[str, object] = {"column": column, "min_value": low, "max_value": high, **extra}
    return Rule("ExpectColumnValuesToBeBetween", kwargs, description, dict(when or {}))


def in_set(column: str, values: list[object], description: str, when: Mapping[str, object] | None = None) -> Rule:
    return Rule(
        "ExpectColumnValuesToBeInSet",
        {"column": column, "value_set": values},
        description,
        dict(when or {}),
    )


def unique(column: str) -> Rule:
    return Rule("ExpectColumnValuesToBeUnique", {"column": column}, f"{column} is unique")
