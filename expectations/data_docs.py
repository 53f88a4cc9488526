"""Great Expectations Data Docs for every validation run, kept under one folder across runs.

Each call stores one validation result in a filesystem results store and renders its page
plus the site index, so the index lists every run that has ever been validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import great_expectations as gx
from filelock import FileLock
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    FilesystemStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from expectations.validate import ValidationReport

SITE = "local_site"  # the site FilesystemStoreBackendDefaults declares
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class DataDocsPages:
    """Where one validation run's Data Docs landed."""

    index: Path  # the site index, listing every stored run
    page: Path  # this run's validation page

    @property
    def url(self) -> str:
        return self.page.as_uri()


def build_data_docs(
    report: ValidationReport, docs_root: Path, asset: str, run_name: str, run_time: datetime | None = None
) -> DataDocsPages:
    """Store ``report``'s GX result as run ``run_name`` of ``asset`` and render Data Docs.

    ``docs_root`` holds the results store and the rendered site (``Paths.reports /
    "data_docs"`` in a pipeline run); the site index is returned with this run's page.
    """
    result = report.gx_result
    if not isinstance(result, ExpectationSuiteValidationResult):
        raise ValueError(
            f"the {report.suite!r} report for {asset!r} carries no Great Expectations result; "
            "build it with expectations.validate.validate_frame"
        )
    run_id = RunIdentifier(run_name=_SAFE.sub("_", run_name), run_time=run_time or datetime.now(UTC))
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=report.suite),
        run_id=run_id,
        batch_identifier=_SAFE.sub("_", asset),
    )
    # Shown on the page and in the index instead of the in-memory frame's placeholder name.
    result.meta["run_id"] = run_id
    batch = dict(result.meta.get("active_batch_definition") or {})
    result.meta["active_batch_definition"] = {**batch, "data_asset_name": asset}

    docs_root.mkdir(parents=True, exist_ok=True)
    # Steps of a multiprocess run validate in parallel; the index is rewritten on each build.
    with FileLock(str(docs_root / ".build.lock"), timeout=120):
        context = _context(docs_root)
        context.validation_results_store.set(key, result)
        urls = context.build_data_docs(site_names=[SITE], resource_identifiers=[key])
    index = Path(urls[SITE].removeprefix("file://"))
    page = index.parent.joinpath("validations", *_page_parts(key))
    if not page.exists():
        raise FileNotFoundError(f"Great Expectations did not write the Data Docs page {page}")
    return DataDocsPages(index=index, page=page)


def _page_parts(key: ValidationResultIdentifier) -> tuple[str, ...]:
    """Path of a validation page under the site, as GX's HtmlSiteStore lays it out."""
    suite, run_name, run_time, batch = key.to_tuple()
    return (*suite.split("."), run_name, run_time, f"{batch}.html")


def _context(docs_root: Path) -> gx.data_context.AbstractDataContext:
    """An ephemeral context whose stores and docs site live on disk under ``docs_root``."""
    config = DataContextConfig(
        store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(docs_root)),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


__all__ = ["DataDocsPages", "build_data_docs"]
