"""The request guard on its own, around a stand-in app that echoes what reached it."""

import json

import httpx
import pytest

from bentos.guard import RequestGuard


async def echo(scope, receive, send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = json.dumps({"method": scope["method"], "path": scope["path"], "bytes": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


def client(**options) -> httpx.AsyncClient:
    app = RequestGuard(echo, **{"api_key": "s3cret", "max_json_bytes": 1000, "max_upload_bytes": 5000, **options})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
async def test_api_key_is_required_except_for_health_and_docs() -> None:
    async with client() as c:
        assert (await c.post("/recommend", json={})).status_code == 401
        assert (await c.post("/recommend", json={}, headers={"X-API-Key": "wrong"})).status_code == 401
        assert (await c.post("/recommend", json={}, headers={"X-API-Key": "s3cret"})).status_code == 200
        assert (await c.post("/recommend", json={}, headers={"Authorization": "Bearer s3cret"})).status_code == 200
        for path in ("/healthz", "/readyz", "/livez", "/docs.json"):
            assert (await c.get(path)).status_code == 200, path


@pytest.mark.anyio
async def test_oversized_bodies_get_413_whether_declared_or_streamed() -> None:
    auth = {"X-API-Key": "s3cret"}
    async with client() as c:
        reply = await c.post("/recommend", content=b"x" * 1001, headers=auth)
        assert reply.status_code == 413 and "1000-byte limit" in reply.json()["error"]

        async def chunks():  # no Content-Length: the guard counts while reading
            for _ in range(5):
                yield b"y" * 300

        assert (await c.post("/recommend", content=chunks(), headers=auth)).status_code == 413
        assert (await c.post("/recommend", content=b"x" * 1000, headers=auth)).json()["bytes"] == 1000


@pytest.mark.anyio
async def test_upload_must_be_a_multipart_file_never_a_url() -> None:
    auth = {"X-API-Key": "s3cret"}
    async with client() as c:
        url_in_file = await c.post("/videos", headers=auth, files={"file": (None, "http://169.254.169.254/x.mp4"),
                                                                    "title": (None, "t")})
        assert url_in_file.status_code == 400 and "never fetched" in url_in_file.json()["error"]
        as_json = await c.post("/videos", headers=auth, json={"file": "http://example.com/a.mp4"})
        assert as_json.status_code == 415
        wrong_type = await c.post("/videos", headers=auth, files={"file": ("a.png", b"png", "image/png")})
        assert wrong_type.status_code == 415
        ok = await c.post("/videos", headers=auth, files={"file": ("a.mp4", b"\0" * 100, "video/mp4")})
        assert ok.status_code == 200
        big = await c.post("/videos", headers=auth, files={"file": ("a.mp4", b"\0" * 6000, "video/mp4")})
        assert big.status_code == 413


@pytest.mark.anyio
async def test_get_model_reaches_the_post_api() -> None:
    async with client() as c:
        reply = await c.get("/model", headers={"X-API-Key": "s3cret"})
        assert reply.json() == {"method": "POST", "path": "/model", "bytes": 2}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
