"""The local server launcher: its environment, and why it failed when it fails (serving itself is covered
by test_served.py)."""

import socket
from pathlib import Path

import pytest

from bentos import server


def test_child_env_turns_tracing_off_unless_someone_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(server.OTEL_SDK_DISABLED, raising=False)
    env = server.child_env({"VIDREC_API_KEY": "k"})
    assert env[server.OTEL_SDK_DISABLED] == "true" and env["VIDREC_API_KEY"] == "k"
    assert server.child_env({server.OTEL_SDK_DISABLED: "false"})[server.OTEL_SDK_DISABLED] == "false"
    monkeypatch.setenv(server.OTEL_SDK_DISABLED, "false")
    assert server.child_env({})[server.OTEL_SDK_DISABLED] == "false"


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start(port, {}, timeout_s=60, log_path=tmp_path / "server.log")
