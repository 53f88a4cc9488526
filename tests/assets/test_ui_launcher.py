"""`make ui`'s launcher stops what it started within its grace period on Ctrl-C or SIGTERM, even a child
that ignores the signal (dagster dev waits up to 60 s per child; its children can be slower still)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
# A child that ignores SIGTERM and SIGINT and has a grandchild, as dagster dev has its webserver and daemon.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "time.sleep(120)\n"
)


def still_running(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after up to ``timeout`` s (a zombie has exited: only its parent,
    here possibly a container's init, has not collected its status yet)."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    running.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_launcher_stops_its_whole_group_within_the_grace_period(signum: int) -> None:
    code = (
        f"import sys; from assets.ui import supervise; sys.exit(supervise([sys.executable, '-c', {STUBBORN!r}], 2.0))"
    )
    launcher = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(launcher.pid).children(recursive=True)) < 2:
            assert time.monotonic() < deadline, "the launcher did not start its child and grandchild"
            time.sleep(0.1)
        started_procs = psutil.Process(launcher.pid).children(recursive=True)
        started = time.monotonic()
        launcher.send_signal(signum)
        launcher.wait(timeout=10)
        alive = still_running(started_procs, timeout=1)
        assert not alive, [p.pid for p in alive]
        assert time.monotonic() - started < 5  # grace 2 s + the kill
        assert launcher.returncode == 128 + signum
        assert "killing its processes" in launcher.stderr.read()
    finally:
        if launcher.poll() is None:
            launcher.kill()
