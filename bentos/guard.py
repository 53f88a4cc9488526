"""ASGI middleware in front of every endpoint: API-key check, request-size limit, content type, upload
shape check and load shedding.

It runs before BentoML parses anything, so an oversized, unauthenticated or non-JSON body is refused
without being read, and a text value in the upload's file field (BentoML would fetch it as a URL) never
reaches the parser. When a worker already holds ``max_in_flight`` requests, or BentoML answers 503 from
inside (a batchable API's batcher shedding a call), the client gets 503 with ``Retry-After`` and a body
that says the server is overloaded.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

log = logging.getLogger(__name__)

API_KEY_ENV_VAR = "VIDREC_API_KEY"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
DOC_PATHS = frozenset({"/", "/docs", "/docs.json"})
STATIC_PREFIX = "/static_content/"  # the Swagger UI files BentoML ships (the docs page needs them without a key)
MAX_IN_FLIGHT_ENV_VAR = "VIDREC_MAX_IN_FLIGHT"
# Requests one worker holds at once before it sheds. A worker owns one core and answers a /recommend in
# a few ms, so 64 queued requests are ~0.1-0.3 s of work: enough for concurrency 16 even when every
# connection lands on one worker, and far below the 60 s request timeout.
MAX_IN_FLIGHT = 64
RETRY_AFTER_S = 1
JSON_TYPES = ("application/json",)
MAX_JSON_BYTES = 1 << 20  # 1 MiB: 1,000 rank candidates or 1,000 events fit with room to spare
MAX_UPLOAD_BYTES = 64 << 20
UPLOAD_PATH = "/videos"
MODEL_PATH = "/model"
UPLOAD_FILE_FIELD = "file"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _reply(send: Send, status: int, message: str, extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_json(content_type: str | None) -> bool:
    """No Content-Type is read as JSON (BentoML's default); a declared one must be JSON."""
    if content_type is None:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def _overloaded(send: Send, why: str) -> None:
    await _reply(
        send,
        503,
        f"server overloaded: {why}; retry after {RETRY_AFTER_S} s",
        [(b"retry-after", str(RETRY_AFTER_S).encode())],
    )


def _shedding_aware(send: Send) -> Send:
    """``send`` with any 503 from inside the app (BentoML's batcher shedding a call: "process is overloaded",
    sent as "An unexpected error has occurred" without Retry-After) replaced by the overloaded reply."""
    replaced = False

    async def wrapped(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and message.get("status") == 503:
            if any(k.lower() == b"retry-after" for k, _ in message.get("headers", [])):
                await send(message)  # the app's own 503 with Retry-After (the user-state store is down): kept
                return
            replaced = True
            await _overloaded(send, "BentoML reported this worker overloaded")
            return
        if replaced:  # the app's own body of the replaced response
            return
        await send(message)

    return wrapped


class RequestGuard:
    """``api_key`` None means authentication is off (the service logs a warning at start)."""

    def __init__(
        self,
        app: Callable,
        api_key: str | None = None,
        max_json_bytes: int = MAX_JSON_BYTES,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_in_flight: int | None = None,
    ) -> None:
        self.app = app
        self.api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV_VAR) or None)
        if self.api_key is None:
            log.warning("%s is not set: the API is open to anyone who can reach it", API_KEY_ENV_VAR)
        self.max_json_bytes, self.max_upload_bytes = max_json_bytes, max_upload_bytes
        self.max_in_flight = max_in_flight or int(os.environ.get(MAX_IN_FLIGHT_ENV_VAR) or MAX_IN_FLIGHT)
        self.in_flight = 0  # one guard per worker process, on its one event loop: a plain counter is safe

    def _authorised(self, headers: Headers) -> bool:
        if self.api_key is None:
            return True
        given = headers.get("x-api-key") or ""
        auth = headers.get("authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in OPEN_PATHS or (
            scope.get("method") == "GET" and (path in DOC_PATHS or path.startswith(STATIC_PREFIX))
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._authorised(headers):
            await _reply(
                send,
                401,
                f"missing or wrong API key: send it in the X-API-Key header "
                f"(the server reads it from {API_KEY_ENV_VAR})",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if self.in_flight >= self.max_in_flight:
            log.warning(
                "shed %s: %d requests in flight on this worker (limit %d)", path, self.in_flight, self.max_in_flight
            )
            await _overloaded(send, f"{self.in_flight} requests in flight on this worker (limit {self.max_in_flight})")
            return
        self.in_flight += 1
        try:
            await self._admitted(scope, receive, _shedding_aware(send), headers, path)
        finally:
            self.in_flight -= 1

    async def _admitted(self, scope: Scope, receive: Receive, send: Send, headers: Headers, path: str) -> None:
        if path == MODEL_PATH and scope.get("method") == "GET":
            await self.app(self._as_post(scope), self._replay(b"{}"), send)
            return
        limit = self.max_upload_bytes if path == UPLOAD_PATH else self.max_json_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, "invalid Content-Length header")
                return
            if int(declared) > limit:
                await _reply(
                    send, 413, f"request body of {int(declared)} bytes exceeds the {limit}-byte limit for {path}"
                )
                return
        body = await self._read(receive, limit)
        if body is None:
            await _reply(send, 413, f"request body exceeds the {limit}-byte limit for {path}")
            return
        if path == UPLOAD_PATH:
            problem = await self._upload_problem(headers, body)
            if problem:
                await _reply(send, 415 if problem.startswith("Content-Type") else 400, problem)
                return
        elif body and not _is_json(headers.get("content-type")):
            # BentoML would parse a form or text body into the same fields and answer 200: a client that sent
            # the wrong format must hear so, not get results for a request it did not mean.
            await _reply(
                send, 415, f"Content-Type must be application/json for {path}, got {headers.get('content-type')}"
            )
            return
        await self.app(scope, self._replay(body), send)

    @staticmethod
    def _as_post(scope: Scope) -> Scope:
        """GET /model is answered by the POST /model API (BentoML APIs are POST-only)."""
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
        return {
            **scope,
            "method": "POST",
            "headers": [*headers, (b"content-type", b"application/json"), (b"content-length", b"2")],
        }

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None once it passes ``limit`` (chunked bodies declare no length)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes) -> Receive:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        return receive

    @staticmethod
    async def _upload_problem(headers: Headers, body: bytes) -> str | None:
        """Why this is not a multipart form with an uploaded file in ``file`` (None when it is)."""
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return f"Content-Type must be multipart/form-data with the video in the '{UPLOAD_FILE_FIELD}' field"

        async def stream():
            yield body

        try:
            form = await MultiPartParser(headers, stream(), max_files=1, max_fields=32).parse()
        except MultiPartException as error:
            return f"malformed multipart body: {error.message}"
        try:
            value = form.get(UPLOAD_FILE_FIELD)
            if value is None:
                return f"no '{UPLOAD_FILE_FIELD}' field in the form"
            if not isinstance(value, UploadFile):
                return (
                    f"the '{UPLOAD_FILE_FIELD}' field must be an uploaded file, not text; URLs and paths "
                    "are never fetched"
                )
            if value.content_type != "video/mp4":
                return f"Content-Type of the file part must be video/mp4, got {value.content_type}"
        finally:
            await form.close()
        return None
