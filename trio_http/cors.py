"""Cross-origin resource sharing (the Fetch standard's CORS protocol) for the route layer.

:class:`CorsPolicy` holds the rules and computes fields from plain values (pure);
:func:`with_cors` wraps a handler so that

- a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an
  allowed origin is answered ``204`` before routing, with the methods and headers allowed;
- every other response to an allowed origin, errors raised as :class:`HTTPError` included,
  carries ``Access-Control-Allow-Origin`` and exposes the fields a script needs to read
  (``ETag``, ``Content-Range``, ``Content-Length``, ``Accept-Ranges``, the tus and digest
  fields).

It is in the route layer, not the response finalizer, because a preflight has to be answered
*instead of* the route; responses the connection makes itself (a malformed request's ``400``,
``408``, ``503``) are unreadable to a script anyway and carry no CORS fields.

``--cors`` (any origin) answers ``*``, lets scripts read but not write (its preflights allow
``GET`` and ``HEAD`` only) and never allows credentials; ``--cors-origin`` lists trusted
origins, which are echoed (with ``Vary: Origin``), may write, and may send credentials (HTTP
Basic for the access rules), since the operator named them.

:func:`cross_site_write` is the other half: a browser sends some writes without a preflight (a
form's ``POST``, a ``no-cors`` fetch), with the visitor's credentials; the file server refuses
those unless they come from the page's own origin or a trusted one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import HTTPError
from .request import Handler, Request
from .response import BaseResponse, Response

__all__ = ["CorsPolicy", "cross_site_write", "with_cors"]

#: What any origin may do with ``--cors``: read.
READ_METHODS = ("GET", "HEAD", "OPTIONS")
#: What a trusted origin (``--cors-origin``) may do: the file server's writes, its tus
#: endpoint's and WebDAV's MKCOL too.
DEFAULT_METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "MKCOL", "OPTIONS")
#: Response fields a script may read besides the CORS-safelisted ones.
DEFAULT_EXPOSE = (
    "ETag",
    "Content-Range",
    "Content-Length",
    "Accept-Ranges",
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Upload-Metadata",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Repr-Digest",
    "Content-Digest",
)
#: How long a browser may cache a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = 600


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins may read responses; ``origins=None`` means any origin (``*``)."""

    origins: frozenset[str] | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    expose: tuple[str, ...] = DEFAULT_EXPOSE

    @classmethod
    def for_origins(cls, origins: Iterable[str]) -> CorsPolicy:
        """A policy for the listed origins (``https://example.com``, no path, no slash)."""
        cleaned = set()
        for origin in origins:
            origin = origin.strip().rstrip("/")
            scheme, sep, host = origin.partition("://")
            if not sep or scheme not in ("http", "https") or not host or "/" in host:
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
            cleaned.add(origin.lower())
        return cls(origins=frozenset(cleaned))

    def allows(self, origin: str) -> bool:
        return self.origins is None or origin.lower() in self.origins

    def response_fields(self, origin: str) -> dict[str, str]:
        """The fields of an actual (not preflight) response to an allowed *origin*."""
        fields = {"access-control-expose-headers": ", ".join(self.expose)}
        fields.update(self._origin_fields(origin))
        return fields

    def non_cors_fields(self) -> dict[str, str]:
        """The fields of a response to a request without an allowed ``Origin``.

        The Fetch standard's "CORS protocol and HTTP caches": a cache may hand this response
        to a later CORS request, so with ``*`` it carries ``*`` (as every response does), and
        with listed origins ``Vary: Origin`` (the answer depends on it).
        """
        if self.origins is None:
            return self.response_fields("*")
        return {"vary": "Origin"}

    def preflight_fields(self, origin: str, requested_headers: str | None) -> dict[str, str]:
        """The fields of the ``204`` that answers a preflight from an allowed *origin*.

        The requested headers are allowed as asked: the origin is trusted, and the handler
        still decides what a header means.
        """
        fields = {
            "access-control-allow-methods": ", ".join(
                READ_METHODS if self.origins is None else self.methods
            ),
            "access-control-max-age": str(PREFLIGHT_MAX_AGE),
        }
        if requested_headers:
            fields["access-control-allow-headers"] = requested_headers
        fields.update(self._origin_fields(origin))
        return fields

    def _origin_fields(self, origin: str) -> dict[str, str]:
        if self.origins is None:
            return {"access-control-allow-origin": "*"}
        # The answer depends on Origin: caches must keep the variants apart.
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "vary": "Origin",
        }


def cross_site_write(
    origin: str | None, fetch_site: str | None, host: str | None, trusted: frozenset[str]
) -> bool:
    """Whether a request that changes something comes from another site's page.

    *origin*, *fetch_site* and *host* are the request's ``Origin``, ``Sec-Fetch-Site`` and
    ``Host``; *trusted* the origins allowed to write (``--cors-origin``).  Browsers send
    ``Origin`` with every ``POST``, ``PUT``, ``DELETE`` and ``MKCOL`` and ``Sec-Fetch-Site`` with
    every request (Fetch standard); clients that are not browsers send neither, and are not
    affected.  ``Origin: null`` (a sandboxed frame, a file) is never trusted.
    """
    if fetch_site in ("same-origin", "none"):
        return False
    if origin is None:
        # Sec-Fetch-Site says cross-site but no Origin came with it: nothing vouches for it.
        return fetch_site is not None
    if origin.lower() in trusted:
        return False
    _, sep, authority = origin.partition("://")
    same_host = bool(sep) and host is not None and authority.lower() == host.strip().lower()
    return fetch_site is not None or not same_host


def with_cors(handler: Handler, policy: CorsPolicy) -> Handler:
    """*handler*, with CORS preflights answered and CORS fields on its responses."""

    async def cors_handler(request: Request) -> BaseResponse:
        headers = request.headers
        origin = headers.get("origin")
        if origin is not None and policy.allows(origin):
            requested = headers.get("access-control-request-method")
            if request.method == "OPTIONS" and requested is not None:  # a preflight
                requested_headers = headers.get("access-control-request-headers")
                fields = policy.preflight_fields(origin, requested_headers)
                return Response(status=204, headers=_with_vary(fields))
            fields = policy.response_fields(origin)
        else:  # (a cache may hand this response to a CORS request later)
            fields = policy.non_cors_fields()
        try:
            response = await handler(request)
        except HTTPError as exc:
            _merge(exc.headers, fields)
            raise
        for name, value in fields.items():
            if name == "vary":
                vary = response.headers.get_comma_list("vary")
                if "*" not in vary and "origin" not in (v.lower() for v in vary):
                    response.headers.set("vary", ", ".join([*vary, value]))
            else:
                response.headers.set(name, value)
        return response

    return cors_handler


def _with_vary(fields: dict[str, str]) -> dict[str, str]:
    # The allowed headers echo the request's, so the answer varies with them too.
    vary = "Access-Control-Request-Headers"
    if "vary" in fields:
        vary = f"{fields['vary']}, {vary}"
    return {**fields, "vary": vary}


def _merge(headers: dict[str, str], fields: dict[str, str]) -> None:
    for name, value in fields.items():
        if name == "vary" and headers.get("vary"):
            headers["vary"] = f"{headers['vary']}, {value}"
        else:
            headers[name] = value
