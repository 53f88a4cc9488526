"""The OpenAPI page at /docs (and /): Swagger UI from the files BentoML ships, with no third-party script.

BentoML's own index page embeds Google Tag Manager (telemetry, and a request to the internet from every
visitor's browser) and answers only at /. This page loads the same Swagger UI bundle from the server's
``/static_content/`` (so it works offline), reads ``/docs.json``, and sends the API key typed into its
box as ``X-API-Key`` with "Try it out" requests.
"""

from __future__ import annotations

from collections.abc import Callable

from bentos.guard import Receive, Scope, Send

PAGE_PATHS = frozenset({"/", "/docs"})

PAGE = b"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>vidrec API</title>
    <link rel="stylesheet" type="text/css" href="/static_content/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="/static_content/index.css" />
  </head>
  <body>
    <div style="padding: 8px 20px; font-family: sans-serif">
      <label>API key (sent as X-API-Key): <input id="api-key" type="password" size="40" autocomplete="off"></label>
    </div>
    <div id="swagger-ui"></div>
    <script src="/static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script>
      window.onload = function () {
        window.ui = SwaggerUIBundle({
          url: "/docs.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          validatorUrl: null,  // the default asks validator.swagger.io: no request leaves for the internet
          presets: [SwaggerUIBundle.presets.apis],
          layout: "BaseLayout",
          requestInterceptor: function (request) {
            var key = document.getElementById("api-key").value;
            if (key) { request.headers["X-API-Key"] = key; }
            return request;
          },
        });
      };
    </script>
  </body>
</html>
"""


class OpenApiPage:
    """ASGI middleware that answers ``GET /docs`` and ``GET /`` with the page and passes everything else on."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and scope.get("path") in PAGE_PATHS:
            headers = [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(PAGE)).encode()),
                (b"cache-control", b"no-cache"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": PAGE if scope["method"] == "GET" else b""})
            return
        await self.app(scope, receive, send)
