"""The production pointer: which stored model serves, moved atomically, with history for rollback.

BentoML's store has no movable aliases, so the pointer is a small JSON file replaced with
``os.replace`` (atomic on POSIX): readers see the old or the new tag, never a mix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Pointer:
    tag: str | None = None
    history: list[str] = field(default_factory=list)
    updated_at: str | None = None


class ProductionPointer:
    def __init__(self, registry_dir: Path) -> None:
        self.path = registry_dir / "production.json"

    def read(self) -> Pointer:
        if not self.path.exists():
            return Pointer()
        try:
            return Pointer(**json.loads(self.path.read_text()))
        except (json.JSONDecodeError, TypeError) as error:
            raise RuntimeError(
                f"the production pointer {self.path} is unreadable ({error}); it is only ever "
                "replaced atomically, so it was edited by hand — restore it from history"
            ) from error

    @property
    def tag(self) -> str | None:
        return self.read().tag

    def _write(self, pointer: Pointer) -> None:
        pointer.updated_at = datetime.now(UTC).isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tmp.open("w") as handle:
                handle.write(json.dumps(pointer.__dict__, indent=2))
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
        """Make ``tag`` production; the previous production tag goes onto the history for rollback."""
        current = self.read()
        if current.tag == tag:
            return current
        history = current.history + ([current.tag] if current.tag else [])
        pointer = Pointer(tag=tag, history=history)
        self._write(pointer)
        return pointer

    def rollback(self) -> Pointer:
        """Make the previous production tag production again (the rolled-back tag stays in the store)."""
        current = self.read()
        if not current.history:
            raise RuntimeError(f"no previous production model recorded in {self.path}; nothing to roll back to")
        pointer = Pointer(tag=current.history[-1], history=current.history[:-1])
        self._write(pointer)
        return pointer


def main() -> None:
    """``python -m vidrec.registry [show|rollback]``: inspect or roll back the production pointer."""
    import argparse

    from vidrec.config import Paths, resolve_root

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["show", "rollback"], nargs="?", default="show")
    args = parser.parse_args()
    pointer = ProductionPointer(Paths(resolve_root()).registry)
    result = pointer.rollback() if args.action == "rollback" else pointer.read()
    print(json.dumps(result.__dict__, indent=2))


if __name__ == "__main__":
    main()
