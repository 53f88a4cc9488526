"""The request guard on its own, around a stand-in app that echoes what reached it."""

import asyncio
import json

import httpx
import pytest

from bentos.docs_page import OpenApiPage
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
        for path in ("/healthz", "/readyz", "/livez", "/docs.json", "/docs", "/static_content/swagger-ui.css"):
            assert (await c.get(path)).status_code == 200, path
        assert (await c.post("/static_content/x", json={})).status_code == 401  # only GETs of the page are open


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
async def test_json_endpoints_refuse_form_and_text_bodies_with_415() -> None:
    auth = {"X-API-Key": "s3cret"}
    async with client() as c:
        form = await c.post("/recommend", data={"user_id": "u"}, headers=auth)
        assert form.status_code == 415 and "application/json" in form.json()["error"]
        text = await c.post("/events", content=b'{"events": []}', headers={**auth, "content-type": "text/plain"})
        assert text.status_code == 415 and "text/plain" in text.json()["error"]
        multipart = await c.post("/recommend", files={"user_id": (None, "u")}, headers=auth)
        assert multipart.status_code == 415
        for content_type in ("application/json", "application/json; charset=utf-8", "application/merge+json"):
            ok = await c.post("/recommend", content=b"{}", headers={**auth, "content-type": content_type})
            assert ok.status_code == 200, content_type
        assert (await c.post("/recommend", content=b"{}", headers=auth)).status_code == 200  # none declared: JSON
        assert (await c.post("/model", headers={**auth, "content-type": "text/plain"})).status_code == 200  # no body


@pytest.mark.anyio
async def test_a_full_worker_sheds_with_503_retry_after_and_says_overloaded() -> None:
    release = asyncio.Event()
    entered = 0

    async def slow(scope, receive, send) -> None:
        nonlocal entered
        if scope["path"] == "/recommend":
            entered += 1
            await release.wait()
        await echo(scope, receive, send)

    guard = RequestGuard(slow, api_key="s3cret", max_in_flight=2)
    auth = {"X-API-Key": "s3cret"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://test") as c:
        held = [asyncio.create_task(c.post("/recommend", json={}, headers=auth)) for _ in range(2)]
        while entered < 2:
            await asyncio.sleep(0.01)
        shed = await c.post("/recommend", json={}, headers=auth)
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert "overloaded" in shed.json()["error"] and "limit 2" in shed.json()["error"]
        assert (await c.get("/healthz")).status_code == 200  # probes are never shed
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert guard.in_flight == 0 and (await c.post("/recommend", json={}, headers=auth)).status_code == 200


@pytest.mark.anyio
async def test_a_503_from_inside_the_app_becomes_the_overloaded_reply() -> None:
    async def batcher_sheds(scope, receive, send) -> None:  # what BentoML sends when its batcher sheds
        body = b'{"error": "An unexpected error has occurred, please check the server log."}'
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    guard = RequestGuard(batcher_sheds, api_key="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://test") as c:
        reply = await c.post("/rank", json={}, headers={"X-API-Key": "s3cret"})
    assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
    assert "overloaded" in reply.json()["error"] and "unexpected" not in reply.text


@pytest.mark.anyio
async def test_the_apps_own_503_with_retry_after_passes_unchanged() -> None:
    from bentos.user_state import unavailable
    from vidrec.state import StateUnavailable

    async def store_down(scope, receive, send) -> None:  # what an endpoint answers when the state store is down
        reply = unavailable(StateUnavailable("the state store redis://127.0.0.1:1/0 failed reading"))
        await reply(scope, receive, send)

    guard = RequestGuard(store_down, api_key="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://test") as c:
        reply = await c.post("/recommend", json={}, headers={"X-API-Key": "s3cret"})
    assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
    assert "user state store is unavailable" in reply.json()["error"] and "overloaded" not in reply.text


@pytest.mark.anyio
async def test_docs_page_has_no_third_party_script() -> None:
    app = OpenApiPage(RequestGuard(echo, api_key="s3cret"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        for path in ("/docs", "/"):
            page = await c.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "swagger-ui-bundle.js" in page.text and "/docs.json" in page.text
            assert "googletagmanager" not in page.text and "http://" not in page.text and "https://" not in page.text
        assert (await c.get("/docs.json")).json()["path"] == "/docs.json"  # passed on to the app


@pytest.mark.anyio
async def test_upload_must_be_a_multipart_file_never_a_url() -> None:
    auth = {"X-API-Key": "s3cret"}
    async with client() as c:
        url_in_file = await c.post(
            "/videos", headers=auth, files={"file": (None, "http://169.254.169.254/x.mp4"), "title": (None, "t")}
        )
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
