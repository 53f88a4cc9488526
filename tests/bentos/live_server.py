"""The real HTTP service for tests that need one: started on a free 127.0.0.1 port, stopped by its PID."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bentos import server


@contextmanager
def served(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """The real service (``bentos.server``) on a free 127.0.0.1 port with ``env``; yields its base URL and
    stops it by the PID it started, checking that it is gone."""
    port = server.free_port()
    process = server.start(port, env, log_path=log_path)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(process)
    assert process.poll() is not None
