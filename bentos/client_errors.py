"""Client errors in the server log: one INFO line each instead of BentoML's ERROR with a full traceback.

BentoML's API wrapper logs every exception it turns into a response with ``logger.error(..., exc_info=True)``,
a 400 for a missing field as loudly as a crash (2,133 tracebacks in one malformed-input run). This filter
rewrites the records whose exception is a client error (validation, a 4xx ``BentoMLException``) and the
batcher's load shedding (503) into one line; real server errors keep their level and traceback.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

# The logger BentoML's API wrapper writes "Exception on <path> [<method>]" to (bentoml/_internal/server/http_app.py).
BENTOML_API_LOGGER = "bentoml._internal.server.http_app"
MAX_DETAIL = 300


def _status(error: BaseException) -> int | None:
    """The HTTP status BentoML answers ``error`` with, when it is not a server fault (else None)."""
    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, BentoMLException):
        status = int(error.error_code)
        return status if status < 500 or status == 503 else None
    return None


def _detail(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()]
        text = f"{error.error_count()} validation error(s): " + "; ".join(parts)
    else:
        text = str(error)
    text = " ".join(text.split())  # one line whatever the message held
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


class ClientErrorFilter(logging.Filter):
    """Demotes client errors to one INFO line (load shedding to one WARNING line); passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        status = _status(error) if error is not None else None
        if status is None:
            return True
        where = record.getMessage().removeprefix("Exception on ")
        record.levelno = logging.WARNING if status == 503 else logging.INFO
        record.levelname = logging.getLevelName(record.levelno)
        record.msg, record.args = "%d on %s: %s", (status, where, _detail(error))
        record.exc_info, record.exc_text = None, None
        return True


def install(logger_name: str = BENTOML_API_LOGGER) -> ClientErrorFilter:
    """Attach the filter once to BentoML's API logger (idempotent: every worker's service calls it)."""
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, ClientErrorFilter):
            return existing
    added = ClientErrorFilter()
    logger.addFilter(added)
    return added
