"""The local server launcher's environment (starting a server is covered by test_served.py)."""

import pytest

from bentos import server


def test_child_env_turns_tracing_off_unless_someone_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(server.OTEL_SDK_DISABLED, raising=False)
    env = server.child_env({"VIDREC_API_KEY": "k"})
    assert env[server.OTEL_SDK_DISABLED] == "true" and env["VIDREC_API_KEY"] == "k"
    assert server.child_env({server.OTEL_SDK_DISABLED: "false"})[server.OTEL_SDK_DISABLED] == "false"
    monkeypatch.setenv(server.OTEL_SDK_DISABLED, "false")
    assert server.child_env({})[server.OTEL_SDK_DISABLED] == "false"
