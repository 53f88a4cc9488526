"""`make ui`: `dagster dev` (webserver + daemon) that stops within seconds on Ctrl-C or SIGTERM.

    python -m assets.ui [dagster dev arguments, e.g. -w workspace.yaml -h 127.0.0.1 -p 3000]

`dagster dev` run directly under make did not stop: make passed SIGTERM to the recipe's shell,
which died and left `dagster dev` running, and `dagster dev` itself waits up to 60 s per child
(webserver, daemon, code servers) before killing it. This launcher starts it in a process group of
its own, passes it the first SIGINT/SIGTERM (it then asks its children to shut down cleanly), and
kills the whole group once ``GRACE_S`` has passed, so no webserver, daemon or code server outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

# Leaves ~3 s of the 10 s an operator waits for the kill and the exit.
GRACE_S = 7.0


def _stop(process: subprocess.Popen, grace_s: float) -> int:
    """Ask ``process`` (a group leader) to stop, then kill its group once ``grace_s`` has passed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # dagster dev maps SIGTERM to its Ctrl-C shutdown
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        print(
            f"assets.ui: dagster dev still running after {grace_s:.0f} s; killing its processes",
            file=sys.stderr,
            flush=True,
        )
    try:  # children left behind (a code server, a daemon still finishing a tick)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.wait()


def supervise(command: list[str], grace_s: float = GRACE_S) -> int:
    """Run ``command`` in a process group of its own until it ends or this process gets SIGINT,
    SIGTERM or SIGHUP; then stop the group within ``grace_s`` (plus the kill)."""
    process = subprocess.Popen(command, start_new_session=True)
    stopping: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    while not stopping and process.poll() is None:
        time.sleep(0.2)
    started = time.monotonic()
    code = _stop(process, grace_s)  # also when it ended by itself: nothing of its group outlives it
    if not stopping:  # an error at start, a port in use
        return code
    print(f"assets.ui: stopped in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return 128 + stopping[0]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return supervise([str(Path(sys.executable).parent / "dagster"), "dev", *args])


if __name__ == "__main__":
    sys.exit(main())
