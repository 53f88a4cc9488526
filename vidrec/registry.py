"""The production pointer: which stored model serves, moved atomically, with history for rollback.

BentoML's store has no movable aliases, so the pointer is a small JSON file replaced with
``os.replace`` (atomic on POSIX): readers see the old or the new tag, never a mix.

A live A/B experiment puts a ``challenger`` beside production in the same file (so ending an
experiment by promoting the challenger is one atomic replace, never production moved with the
experiment still running). Without a challenger the file and its behaviour are as before.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ENDINGS = ("promoted", "rolled_back", "superseded")


@dataclass
class Challenger:
    """A running experiment: ``tag`` serves ``share`` of users (``vidrec.experiment.arm_for`` with ``salt``)
    against ``production_tag``, the production model when it started."""

    tag: str
    share: float
    salt: str
    experiment_id: str
    started_at: str
    production_tag: str


@dataclass
class Pointer:
    tag: str | None = None
    history: list[str] = field(default_factory=list)
    updated_at: str | None = None
    challenger: Challenger | None = None
    # Ended experiments, oldest first: the Challenger's fields plus ended_at, outcome (ENDINGS) and reason.
    experiments: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> Pointer:
        challenger = data.get("challenger")
        return cls(**{**data, "challenger": Challenger(**challenger) if challenger else None})


class ProductionPointer:
    def __init__(self, registry_dir: Path) -> None:
        self.path = registry_dir / "production.json"

    def read(self) -> Pointer:
        if not self.path.exists():
            return Pointer()
        try:
            return Pointer.from_json(json.loads(self.path.read_text()))
        except (json.JSONDecodeError, TypeError) as error:
            raise RuntimeError(
                f"the production pointer {self.path} is unreadable ({error}); it is only ever "
                "replaced atomically, so it was edited by hand — restore it from history"
            ) from error

    @property
    def tag(self) -> str | None:
        return self.read().tag

    @property
    def challenger(self) -> Challenger | None:
        return self.read().challenger

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write across processes (the pipeline and an operator's CLI); readers never
        take it, they rely on the atomic replace."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / "production.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, pointer: Pointer) -> None:
        pointer.updated_at = datetime.now(UTC).isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tmp.open("w") as handle:
                handle.write(json.dumps(asdict(pointer), indent=2))
                handle.flush()
                os.fsync(handle.fileno())  # the new content is on disk before the rename makes it visible
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # and the rename itself survives a crash
        finally:
            os.close(directory)

    def promote(self, tag: str) -> Pointer:
        """Make ``tag`` production; the previous production tag goes onto the history for rollback. A running
        experiment ends with it: promoting its challenger counts as ``promoted``, any other tag as
        ``superseded`` (the production arm it was measured against is gone)."""
        with self._locked():
            current = self.read()
            if current.tag == tag:
                return current
            outcome = "promoted" if current.challenger and current.challenger.tag == tag else "superseded"
            pointer = self._moved(current, tag, current.history + ([current.tag] if current.tag else []))
            self._end(pointer, current.challenger, outcome, f"production moved to {tag}")
            self._write(pointer)
            return pointer

    def rollback(self) -> Pointer:
        """Make the previous production tag production again (the rolled-back tag stays in the store); a running
        experiment ends as ``superseded``."""
        with self._locked():
            current = self.read()
            if not current.history:
                raise RuntimeError(f"no previous production model recorded in {self.path}; nothing to roll back to")
            pointer = self._moved(current, current.history[-1], current.history[:-1])
            self._end(pointer, current.challenger, "superseded", "production rolled back")
            self._write(pointer)
            return pointer

    @staticmethod
    def _moved(current: Pointer, tag: str, history: list[str]) -> Pointer:
        return Pointer(tag=tag, history=history, experiments=list(current.experiments))

    @staticmethod
    def _end(pointer: Pointer, challenger: Challenger | None, outcome: str, reason: str) -> None:
        if challenger is not None:
            ended = datetime.now(UTC).isoformat()
            pointer.experiments.append({**asdict(challenger), "ended_at": ended, "outcome": outcome, "reason": reason})

    def start_challenger(self, tag: str, share: float, salt: str | None = None) -> Pointer:
        """Serve ``tag`` to ``share`` of users (0 < share < 1) beside production, under a new experiment id and
        salt (random unless given). A challenger already running is ended as ``superseded``: the newest gated
        candidate is the one worth measuring, and the new salt reshuffles users."""
        if not 0.0 < share < 1.0:
            raise ValueError(f"challenger share {share!r} must be strictly between 0 and 1 (e.g. 0.1 for 10%)")
        with self._locked():
            current = self.read()
            if current.tag is None:
                raise RuntimeError(f"no production model in {self.path}: an experiment needs one to compare against")
            if tag == current.tag:
                raise ValueError(f"{tag} is already production; a challenger must be another model")
            started = datetime.now(UTC)
            challenger = Challenger(
                tag=tag,
                share=float(share),
                salt=salt or secrets.token_hex(16),
                experiment_id=f"{started:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
                started_at=started.isoformat(),
                production_tag=current.tag,
            )
            pointer = Pointer(tag=current.tag, history=list(current.history), experiments=list(current.experiments))
            self._end(pointer, current.challenger, "superseded", f"challenger {tag} started")
            pointer.challenger = challenger
            self._write(pointer)
            return pointer

    def end_challenger(self, promote: bool, reason: str, experiment_id: str | None = None) -> Pointer:
        """End the running experiment: its challenger becomes production (``promote``) or stops serving. With
        ``experiment_id``, refuse if another experiment is running (a decision made on stale results)."""
        with self._locked():
            current = self.read()
            challenger = current.challenger
            if challenger is None:
                raise RuntimeError(f"no challenger in {self.path}; there is no experiment to end")
            if experiment_id is not None and challenger.experiment_id != experiment_id:
                raise RuntimeError(
                    f"the decision is about experiment {experiment_id} but {challenger.experiment_id} is running; "
                    "re-run online_experiment for the running one"
                )
            if promote:
                pointer = self._moved(current, challenger.tag, current.history + [current.tag])
            else:
                pointer = Pointer(tag=current.tag, history=list(current.history), experiments=list(current.experiments))
            self._end(pointer, challenger, "promoted" if promote else "rolled_back", reason)
            self._write(pointer)
            return pointer


def main() -> None:
    """``python -m vidrec.registry [show|rollback|challenger TAG --share S|promote-challenger|rollback-challenger]``:
    inspect or roll back the production pointer, start or end a live A/B experiment by hand."""
    import argparse

    from vidrec.config import Paths, resolve_root

    parser = argparse.ArgumentParser(description=main.__doc__)
    actions = ["show", "rollback", "challenger", "promote-challenger", "rollback-challenger"]
    parser.add_argument("action", choices=actions, nargs="?", default="show")
    parser.add_argument("tag", nargs="?", help="the stored model to serve as challenger (action challenger)")
    parser.add_argument("--share", type=float, default=0.1, help="the challenger's share of users, 0 < share < 1")
    parser.add_argument("--reason", default="by hand", help="recorded in the experiment history")
    args = parser.parse_args()
    pointer = ProductionPointer(Paths(resolve_root()).registry)
    if args.action == "challenger" and not args.tag:
        parser.error("challenger needs the TAG of a stored model")
    result = {
        "show": pointer.read,
        "rollback": pointer.rollback,
        "challenger": lambda: pointer.start_challenger(args.tag, args.share),
        "promote-challenger": lambda: pointer.end_challenger(True, args.reason),
        "rollback-challenger": lambda: pointer.end_challenger(False, args.reason),
    }[args.action]()
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
