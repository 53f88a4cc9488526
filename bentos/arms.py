"""Both arms of a live A/B experiment in one worker: production (a ``ModelHolder``) and the registry's
challenger, each hot-swapped when the pointer file moves, and ``pick`` assigning a user to one of them.

How the service uses it (one object per worker, in place of a bare ``ModelHolder``)::

    self.arms = ArmHolder(ProductionPointer(paths.registry), self._load, poll_s=..., catch_up=self._apply_uploads)
    self.holder = self.arms.production          # endpoints without arms keep using holder.current
    self.arms.start()                           # one watcher thread for both (do not call holder.start())
    ...
    arm, model = self.arms.pick(pseudonymise(request.user_id, self.key))   # in /recommend
    # answer with ``model`` and log ``arm`` and ``model.tag`` with every impression
    ...
    info = model.model_info(self.holder.last_error).model_copy(update={"experiment": self.arms.experiment_info()})

When the experiment ends in a promotion, the production holder takes the challenger's loaded model instead
of loading the same tag again. A challenger that fails to load (or is still loading) serves nobody: its users
get production and are logged as ``production``, which the experiment's sample-ratio check will notice if it
lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, NamedTuple

from bentos import schemas as s
from bentos.model_watch import M, ModelHolder
from vidrec.experiment import CHALLENGER, PRODUCTION, Arm, arm_for
from vidrec.registry import Challenger, ProductionPointer

log = logging.getLogger(__name__)


class Assignment(NamedTuple, Generic[M]):
    arm: Arm
    model: M


class _Active(NamedTuple, Generic[M]):
    experiment: Challenger
    model: M


class ArmHolder(Generic[M]):
    """``production`` follows the pointer's tag exactly as before; the challenger slot follows its challenger."""

    def __init__(
        self,
        pointer: ProductionPointer,
        load: Callable[[str], M],
        poll_s: float = 2.0,
        catch_up: Callable[[M], None] | None = None,
        retry_s: float = 300.0,
    ) -> None:
        self.pointer, self._load, self.poll_s, self.catch_up, self.retry_s = pointer, load, poll_s, catch_up, retry_s
        # One (experiment, model) pair, replaced as a whole: pick() never mixes one experiment's salt with
        # another's model.
        self._active: _Active[M] | None = None
        self.challenger_error: str | None = None
        self._failed: tuple[str, float] | None = None  # (experiment id, when) of the last failed challenger load
        self.production: ModelHolder[M] = ModelHolder(pointer, self._load_reusing, poll_s, catch_up, retry_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_challenger()

    def _load_reusing(self, tag: str) -> M:
        active = self._active
        if active is not None and active.model.tag == tag:  # the challenger was promoted: it is already loaded
            return active.model
        return self._load(tag)

    def pick(self, user_key: str) -> Assignment[M]:
        """The arm and model that answer this user: ``user_key`` is the pseudonymised id
        (``vidrec.privacy.pseudonymise(user_id, key)``), the one the impression log records. Without a loaded
        challenger everyone gets ``("production", production model)``."""
        active, production = self._active, self.production.current
        if active is not None and arm_for(user_key, active.experiment.salt, active.experiment.share) == CHALLENGER:
            return Assignment(CHALLENGER, active.model)
        return Assignment(PRODUCTION, production)

    def models(self) -> list[M]:
        """Every loaded model (production, and the challenger while one serves): uploads go to all of them."""
        active = self._active
        return [self.production.current] + ([active.model] if active is not None else [])

    def refresh_challenger(self) -> bool:
        """Follow the pointer's challenger; True when the serving challenger changed."""
        with self._lock:
            try:
                experiment = self.pointer.challenger
            except (OSError, RuntimeError) as error:  # being replaced or hand-edited: keep what serves
                self.challenger_error = f"cannot read the registry pointer {self.pointer.path}: {error}"
                log.error(self.challenger_error)
                return False
            active = self._active
            if experiment is None or active is None or active.experiment.experiment_id != experiment.experiment_id:
                self._active = None  # an ended or replaced experiment stops serving before its successor loads
            if experiment is None:
                changed, self.challenger_error = active is not None, None
                return changed
            if active is not None and active.experiment.experiment_id == experiment.experiment_id:
                return False
            failed = self._failed
            if failed and failed[0] == experiment.experiment_id and time.monotonic() - failed[1] < self.retry_s:
                return active is not None
            try:
                model = active.model if active and active.model.tag == experiment.tag else self._load(experiment.tag)
            except Exception as error:  # the experiment waits; production serves everyone meanwhile
                self._failed = (experiment.experiment_id, time.monotonic())
                self.challenger_error = f"loading challenger {experiment.tag} failed: {type(error).__name__}: {error}"
                log.exception(self.challenger_error)
                return active is not None
            self._active, self._failed, self.challenger_error = _Active(experiment, model), None, None
            log.info(
                "experiment %s: challenger %s serves %.0f%%",
                experiment.experiment_id,
                model.tag,
                100 * experiment.share,
            )
            return True

    def refresh(self) -> None:
        """One poll: production first (so a promoted challenger is reused before its slot empties), then the
        challenger, then catch-up of every model (uploads landed by other workers)."""
        swapped = self.production.refresh()
        self.refresh_challenger()
        if self.catch_up is None:
            return
        for model in self.models()[1 if swapped else 0 :]:  # a swap already caught the new production up
            try:
                self.catch_up(model)
            except Exception:  # a bad landed upload must not stop the watcher; it is logged each poll
                log.exception("catching up %s failed", model.tag)

    def experiment_info(self) -> s.ExperimentInfo | None:
        """What /model reports about the running experiment (None when there is none)."""
        try:
            experiment = self.pointer.challenger
        except (OSError, RuntimeError):
            experiment = None
        active = self._active
        if experiment is None:
            return None
        serving = active is not None and active.experiment.experiment_id == experiment.experiment_id
        return s.ExperimentInfo(
            experiment_id=experiment.experiment_id,
            started_at=experiment.started_at,
            arms=[
                s.ArmInfo(arm=PRODUCTION, tag=self.production.current.tag, share=1.0 - experiment.share),
                s.ArmInfo(arm=CHALLENGER, tag=experiment.tag, share=experiment.share),
            ],
            challenger_serving=serving,
            challenger_error=self.challenger_error,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vidrec-arm-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5)
