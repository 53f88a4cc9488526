"""Following the production pointer: load a newly promoted model beside the serving one, then swap.

Requests take ``holder.current`` once and use that object to the end, so a swap never disturbs a
request in flight (the old version stays alive until its last request drops it). A tag that fails
to load is remembered and retried only every ``retry_s`` (a load takes seconds of a worker's CPU);
the old model keeps serving meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from vidrec.registry import ProductionPointer

log = logging.getLogger(__name__)


class Tagged(Protocol):
    tag: str


M = TypeVar("M", bound=Tagged)


class ModelHolder(Generic[M]):
    """``catch_up(model)`` runs right after a swap (the service re-applies uploads that landed while the
    new version was loading)."""

    MAX_FALLBACKS = 3  # earlier champions tried at start (each load takes seconds)

    def __init__(
        self,
        pointer: ProductionPointer,
        load: Callable[[str], M],
        poll_s: float = 2.0,
        catch_up: Callable[[M], None] | None = None,
        retry_s: float = 300.0,
    ) -> None:
        # catch_up also runs on every poll: with several workers, an upload one worker took must reach the others.
        self.pointer, self.load, self.poll_s, self.catch_up, self.retry_s = pointer, load, poll_s, catch_up, retry_s
        self.failed_tag: str | None = None
        self.last_error: str | None = None
        self._failed_at = 0.0
        self.current: M = self._load_at_start()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load_at_start(self) -> M:
        """The production tag's model; if it cannot be loaded, the newest earlier champion that can (as a
        failed swap keeps the old model, a failed start serves the previous champion rather than nothing),
        with the failure in ``last_error``. Raises the production tag's error when none loads."""
        pointer = self.pointer.read()
        if pointer.tag is None:
            raise RuntimeError(
                f"no production model recorded in {self.pointer.path}; materialise the pipeline "
                "(`make demo` or `dagster job execute -m assets.definitions -j main`) first"
            )
        try:
            return self.load(pointer.tag)
        except Exception as error:
            first = error
            log.exception("loading the production model %s failed", pointer.tag)
        earlier = list(dict.fromkeys(t for t in reversed(pointer.history) if t != pointer.tag))
        for previous in earlier[: self.MAX_FALLBACKS]:
            try:
                model = self.load(previous)
            except Exception:
                log.exception("loading the earlier champion %s failed too", previous)
                continue
            self._remember_failure(
                pointer.tag,
                f"loading {pointer.tag} failed at start, serving the earlier "
                f"champion {previous}: {type(first).__name__}: {first}",
            )
            return model
        raise first

    def _remember_failure(self, tag: str, message: str) -> None:
        self.failed_tag, self.last_error, self._failed_at = tag, message, time.monotonic()
        log.error(message)

    def _retry_due(self) -> bool:
        return time.monotonic() - self._failed_at >= self.retry_s

    def refresh(self) -> bool:
        """Load and swap in the pointer's tag if it moved; True when a new model now serves."""
        with self._refresh_lock:
            try:
                tag = self.pointer.tag
            except (OSError, ValueError) as error:  # a pointer being replaced or hand-edited badly
                self.last_error = f"cannot read the production pointer {self.pointer.path}: {error}"
                log.error(self.last_error)
                return False
            if tag == self.current.tag and self.failed_tag is not None:
                # the pointer came back to what serves (a rollback after a failed load): nothing is wrong now
                self.failed_tag = self.last_error = None
            if tag is None or tag == self.current.tag or (tag == self.failed_tag and not self._retry_due()):
                return False
            log.info("production pointer moved %s -> %s; loading", self.current.tag, tag)
            try:
                candidate = self.load(tag)
            except Exception as error:  # any failure to load keeps the serving model; the reason is reported
                log.exception("loading %s failed", tag)
                self._remember_failure(
                    tag, f"loading {tag} failed, still serving {self.current.tag}: {type(error).__name__}: {error}"
                )
                return False
            self.current, self.failed_tag, self.last_error = candidate, None, None
            if self.catch_up is not None:
                self.catch_up(candidate)
            log.info("now serving %s", tag)
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.refresh() or self.catch_up is None:
                continue
            try:
                self.catch_up(self.current)
            except Exception:  # a bad landed upload must not stop the watcher; it is logged each poll
                log.exception("catching up %s failed", self.current.tag)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vidrec-model-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5)
