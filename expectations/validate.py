"""Validate a pandas frame against a declared suite with Great Expectations 1.x.

Returns plain dataclasses, so callers can quarantine rows with a reason and show counts in
the orchestrator without touching GX result objects.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.row_conditions import AndCondition, Column, Condition

from expectations.rules import Rule, Suite
from expectations.suites import get_suite

MAX_EXAMPLES = 5
_RULE_KEY = "vidrec_rule"  # meta key that maps a GX result back to its declared Rule


@dataclass(frozen=True)
class FailedExpectation:
    """One rule that did not hold, with counts and a few examples."""

    expectation: str
    columns: tuple[str, ...]
    description: str
    unexpected_count: int
    unexpected_percent: float
    example_values: tuple[object, ...] = ()
    example_ids: tuple[str, ...] = ()
    error: str | None = None  # set when GX raised instead of evaluating the rule


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one frame against one suite.

    `evaluated` counts expectations evaluated; `row_failures` maps a row id (the id column's
    value, or the frame's index label) to descriptions of every rule that row broke.
    """

    suite: str
    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    row_failures: dict[str, list[str]]
    rows: int = 0
    # The GX result itself, so Data Docs (expectations/data_docs.py) render without re-validating.
    gx_result: Any = field(default=None, repr=False, compare=False)

    def as_metadata(self) -> dict[str, object]:
        """JSON-serialisable summary for an orchestrator UI."""
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "expectations_evaluated": self.evaluated,
            "expectations_failed": len(self.failed),
            "rows_failed": len(self.row_failures),
            "failed": [
                {
                    "expectation": f.expectation,
                    "columns": list(f.columns),
                    "description": f.description,
                    "unexpected_count": f.unexpected_count,
                    "unexpected_percent": round(f.unexpected_percent, 4),
                    "example_values": [_plain(v) for v in f.example_values],
                    "example_ids": list(f.example_ids),
                    **({"error": f.error} if f.error else {}),
                }
                for f in self.failed
            ],
        }


def validate_frame(df: pd.DataFrame, suite_name: str, id_column: str | None = None) -> ValidationReport:
    """Run suite `suite_name` over the whole of `df` and summarise what failed.

    With `id_column`, rows are identified by that column's values; otherwise by index label.
    """
    suite = get_suite(suite_name)
    if id_column is not None and id_column not in df.columns:
        raise ValueError(
            f"id_column {id_column!r} is not a column of the {suite_name!r} frame "
            f"(columns: {list(df.columns)}); pass one of them or None to use the index."
        )
    if not df.index.is_unique:
        if id_column is None:
            raise ValueError(
                f"The {suite_name!r} frame has a non-unique index, so failing rows cannot be "
                "named; pass id_column or call df.reset_index(drop=True) first."
            )
        df = df.reset_index(drop=True)  # GX locates unexpected rows by index label

    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if id_column is not None:
        result_format["unexpected_index_column_names"] = [id_column]
    with _GX_LOCK:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": _prepared(df, suite)})
        result = batch.validate(_gx_suite(suite_name), result_format=result_format)

    failed: list[FailedExpectation] = []
    row_failures: dict[str, list[str]] = {}
    for outcome in result.results:
        if outcome.success:
            continue
        rule = suite.rules[int(outcome.expectation_config.meta[_RULE_KEY])]
        failure, rows = _summarise(rule, outcome.result or {}, outcome.exception_info, id_column)
        failed.append(failure)
        for row_id, reason in rows:
            reasons = row_failures.setdefault(row_id, [])
            if reason not in reasons:
                reasons.append(reason)
    return ValidationReport(
        suite=suite_name,
        success=bool(result.success),
        evaluated=int(result.statistics["evaluated_expectations"]),
        failed=failed,
        row_failures=row_failures,
        rows=len(df),
        gx_result=result,
    )


# One in-memory ephemeral context per process: building it costs ~10 ms (measured), a few
# percent of a 10k-row call but most of a small one. GX does not document its contexts as
# thread-safe, so calls that share it are serialised.
_GX_LOCK = threading.Lock()


@functools.cache
def _batch_definition() -> BatchDefinition:
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("vidrec").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


@functools.cache
def _gx_suite(name: str) -> gx.ExpectationSuite:
    suite = get_suite(name)
    return gx.ExpectationSuite(name=name, expectations=[_expectation(rule, i) for i, rule in enumerate(suite.rules)])


def _expectation(rule: Rule, index: int) -> gxe.Expectation:
    cls = getattr(gxe, rule.expectation, None)
    if not (isinstance(cls, type) and issubclass(cls, gxe.Expectation)):
        raise ValueError(
            f"Rule {rule.description!r} names {rule.expectation!r}, which is not an expectation "
            "class in great_expectations.expectations; fix expectations/suites.py."
        )
    kwargs = dict(rule.kwargs)
    if rule.when:
        kwargs["row_condition"] = _condition(rule.when)
    return cls(**kwargs, description=rule.description, meta={_RULE_KEY: index})


def _condition(when: Mapping[str, object]) -> Condition:
    parts: list[Condition] = [Column(name) == value for name, value in when.items()]
    return parts[0] if len(parts) == 1 else AndCondition(conditions=parts)


def _prepared(df: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Render datetimes as ISO text for dateutil rules.

    GX's pandas metric for ExpectColumnValuesToBeDateutilParseable raises on anything that is
    not a str, yet a timestamp column is parseable by construction.
    """
    columns = {
        c
        for r in suite.rules
        if r.expectation == "ExpectColumnValuesToBeDateutilParseable"
        for c in r.columns
        if c in df.columns and not pd.api.types.is_string_dtype(df[c])
    }
    if not columns:
        return df
    return df.assign(**{c: df[c].map(_iso_or_value) for c in columns})


def _iso_or_value(value: object) -> object:
    if value is pd.NaT:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _summarise(
    rule: Rule,
    result: Mapping[str, Any],
    exception_info: Mapping[str, Any] | None,
    id_column: str | None,
) -> tuple[FailedExpectation, list[tuple[str, str]]]:
    """Turn one failed GX result into a FailedExpectation and (row id, reason) pairs."""
    error = _error_message(exception_info)
    values = list(result.get("unexpected_list") or [])
    indexes = list(result.get("unexpected_index_list") or [])
    rows: list[tuple[str, str]] = []
    for position, entry in enumerate(indexes):
        row_id = entry.get(id_column) if isinstance(entry, dict) and id_column else entry
        value = values[position] if position < len(values) else None
        # _plain: a nullable column yields NumPy scalars, whose repr ("np.float64(1.5)") is not for people.
        reason = rule.description if _is_null(value) else f"{rule.description} (got {_plain(value)!r})"
        rows.append((_id_text(row_id), reason))

    examples = values[:MAX_EXAMPLES]
    if not examples:  # table-level rules report what is missing instead of row values
        examples = list(result.get("details", {}).get("mismatched", {}).get("missing", []))
    failure = FailedExpectation(
        expectation=rule.expectation,
        columns=rule.columns,
        description=rule.description,
        unexpected_count=int(result.get("unexpected_count") or 0),
        unexpected_percent=float(result.get("unexpected_percent") or 0.0),
        example_values=tuple(_plain(v) for v in examples[:MAX_EXAMPLES]),
        example_ids=tuple(dict.fromkeys(row_id for row_id, _ in rows))[:MAX_EXAMPLES],
        error=error,
    )
    return failure, rows


def _error_message(exception_info: Mapping[str, Any] | None) -> str | None:
    if not exception_info:
        return None
    # GX gives either one flat record or one record per metric that raised.
    records = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    messages = [
        str(r.get("exception_message")) for r in records if isinstance(r, Mapping) and r.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _is_null(value: object) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _id_text(row_id: object) -> str:
    plain = _plain(row_id)
    return "<null id>" if plain is None else str(plain)


def _plain(value: object) -> object:
    """Numpy/pandas scalars and timestamps as JSON-serialisable Python values."""
    if _is_null(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


__all__ = ["FailedExpectation", "ValidationReport", "validate_frame"]
