"""The route layer: map a method and a path to a handler.

Patterns are paths with ``{name}`` placeholders, which match one non-empty segment, and
``{name:path}``, which matches the rest of the path including slashes (and may be empty).
Matching works on the percent-encoded path, so an encoded ``%2F`` inside a ``{name}``
parameter never splits it; parameters are decoded once matched.

An :class:`App` is itself a handler (``await app(request)`` returns a response), which is the
only thing the connection needs from it.  ``HEAD`` is served by every ``GET`` route; a path that
exists with other methods gives ``405`` with ``Allow``; an unknown path gives ``404``; a method
the app has no route for at all gives ``501`` (RFC 9110 §15.6.2), except GET and HEAD, which
every server supports (§9.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .errors import HTTPError
from .request import Handler, Request
from .response import BaseResponse

if TYPE_CHECKING:
    from .websocket import WebSocketHandler, WebSocketSettings

__all__ = ["App", "Handler", "Route"]

_PLACEHOLDER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::(path|str))?}")


def _compile(pattern: str) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """Return a regex for *pattern* (``None`` when it has no placeholders) and its names."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    regex, names, position = ["^"], [], 0
    for match in _PLACEHOLDER.finditer(pattern):
        name, kind = match.group(1), match.group(2) or "str"
        if name in names:
            raise ValueError(f"placeholder {name!r} appears twice in {pattern!r}")
        regex.append(re.escape(pattern[position : match.start()]))
        regex.append(f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)")
        names.append(name)
        position = match.end()
    if not names:
        return None, ()
    regex.append(re.escape(pattern[position:]) + "$")
    return re.compile("".join(regex), re.DOTALL), tuple(names)


@dataclass
class Route:
    """One pattern with the handler for each of its methods."""

    pattern: str
    regex: re.Pattern[str] | None
    handlers: dict[str, Handler] = field(default_factory=dict)

    def match(self, path: str) -> dict[str, str] | None:
        if self.regex is None:
            return {} if path == self.pattern else None
        found = self.regex.match(path)
        if found is None:
            return None
        return {name: unquote(value, errors="strict") for name, value in found.groupdict().items()}

    @property
    def allowed(self) -> list[str]:
        methods = set(self.handlers)
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


class App:
    """A collection of routes; call it with a request to get a response.

    Register handlers with the decorators::

        app = trio_http.App()

        @app.get("/hello/{name}")
        async def hello(request: Request) -> Response:
            return Response(f"hello {request.path_params['name']}")

    Routes are tried in the order they were added; the first whose pattern matches the path
    decides.  Errors are answered here only for routing (404, 405, 501); exceptions from
    handlers propagate to the connection, which turns :class:`~trio_http.HTTPError` into its
    response and anything else into ``500``.
    """

    def __init__(self, *, websocket_settings: WebSocketSettings | None = None) -> None:
        #: Limits and timers of the WebSockets of :meth:`websocket` routes.
        self.websocket_settings = websocket_settings
        self._routes: list[Route] = []
        # Exact paths are looked up in a dict before the patterns are tried: most requests hit
        # a fixed path, and a dict lookup costs the same however many routes there are.
        self._static: dict[str, Route] = {}
        self._methods: set[str] = set()

    def route(self, pattern: str, methods: Iterable[str]) -> Callable[[Handler], Handler]:
        """Register the decorated handler for *pattern* and each of *methods*."""

        def register(handler: Handler) -> Handler:
            self.add_route(pattern, handler, methods)
            return handler

        return register

    def add_route(self, pattern: str, handler: Handler, methods: Iterable[str]) -> None:
        """Register *handler* for *pattern* and each of *methods* (the decorators call this)."""
        route = next((r for r in self._routes if r.pattern == pattern), None)
        if route is None:
            regex, _ = _compile(pattern)
            route = Route(pattern, regex)
            self._routes.append(route)
            if regex is None:
                self._static[pattern] = route
        for method in (m.upper() for m in methods):
            if method in route.handlers:
                raise ValueError(f"{method} {pattern} is already registered")
            route.handlers[method] = handler
            self._methods.add(method)

    def get(self, pattern: str) -> Callable[[Handler], Handler]:
        """Register for ``GET`` (and so ``HEAD``)."""
        return self.route(pattern, ["GET"])

    def post(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["POST"])

    def put(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["PUT"])

    def delete(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["DELETE"])

    def websocket(self, pattern: str) -> Callable[[WebSocketHandler], WebSocketHandler]:
        """Register the decorated function as the WebSocket endpoint at *pattern*::

            @app.websocket("/chat/{room}")
            async def chat(ws: WebSocket) -> None:
                await ws.accept()
                async for message in ws:
                    await ws.send(message)

        It gets a :class:`~trio_http.websocket.WebSocket` to accept (or it returns a response
        to refuse); a plain GET without the handshake gets ``426``.
        """
        from .websocket import WebSocketSettings, serve_websocket

        settings = self.websocket_settings or WebSocketSettings()

        def register(handler: WebSocketHandler) -> WebSocketHandler:
            async def endpoint(request: Request) -> BaseResponse:
                return await serve_websocket(request, handler, settings)

            self.add_route(pattern, endpoint, ["GET"])
            return handler

        return register

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """Find the handler for *method* and *path* and the decoded path parameters.

        Raises :class:`~trio_http.HTTPError` with 404, 405 (with ``Allow``) or 501.
        """
        lookup = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        static = self._static.get(path)
        if static is not None:
            handler = static.handlers.get(lookup)
            if handler is not None:
                return handler, {}
            allowed.extend(static.allowed)
        for route in self._routes:
            if route.regex is None:
                continue  # exact paths were looked up above
            try:
                params = route.match(path)
            except UnicodeDecodeError:
                raise HTTPError(400, "path is not valid UTF-8 after percent-decoding") from None
            if params is None:
                continue
            handler = route.handlers.get(lookup)
            if handler is not None:
                return handler, params
            allowed.extend(m for m in route.allowed if m not in allowed)
        if lookup not in self._methods and lookup != "GET":  # GET, HEAD: never 501 (§9.1)
            raise HTTPError(501, f"method {method} is not implemented")
        if allowed:
            raise HTTPError(
                405,
                f"{method} is not allowed here",
                headers={"allow": ", ".join(sorted(set(allowed)))},
            )
        raise HTTPError(404, "no such resource")

    async def __call__(self, request: Request) -> BaseResponse:
        handler, request.path_params = self.resolve(request.method, request.path)
        return await handler(request)
