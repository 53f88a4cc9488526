"""ASGI middleware in front of every endpoint: API-key check, request-size limit, upload shape check.

It runs before BentoML parses anything, so an oversized or unauthenticated body is refused without
being read, and a text value in the upload's file field (BentoML would fetch it as a URL) never
reaches the parser.
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
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """``api_key`` None means authentication is off (the service logs a warning at start)."""

    def __init__(self, app: Callable, api_key: str | None = None, max_json_bytes: int = MAX_JSON_BYTES,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.app = app
        self.api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV_VAR) or None)
        if self.api_key is None:
            log.warning("%s is not set: the API is open to anyone who can reach it", API_KEY_ENV_VAR)
        self.max_json_bytes, self.max_upload_bytes = max_json_bytes, max_upload_bytes

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
        if path in OPEN_PATHS or (path in DOC_PATHS and scope.get("method") == "GET"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._authorised(headers):
            await _reply(send, 401, f"missing or wrong API key: send it in the X-API-Key header "
                                    f"(the server reads it from {API_KEY_ENV_VAR})",
                         [(b"www-authenticate", b"Bearer")])
            return
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
                await _reply(send, 413, f"request body of {int(declared)} bytes exceeds the {limit}-byte limit for {path}")
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
        await self.app(scope, self._replay(body), send)

    @staticmethod
    def _as_post(scope: Scope) -> Scope:
        """GET /model is answered by the POST /model API (BentoML APIs are POST-only)."""
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
        return {**scope, "method": "POST", "headers": [*headers, (b"content-type", b"application/json"),
                                                          (b"content-length", b"2")]}

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
                return (f"the '{UPLOAD_FILE_FIELD}' field must be an uploaded file, not text; URLs and paths "
                        "are never fetched")
            if value.content_type != "video/mp4":
                return f"Content-Type of the file part must be video/mp4, got {value.content_type}"
        finally:
            await form.close()
        return None
