"""The WebSocket opening handshake (RFC 6455 §4.2), as pure functions of the request.

:func:`check_handshake` decides whether a request may become a WebSocket and answers those
that may not with the status the RFC names: ``426`` with ``Sec-WebSocket-Version: 13`` for a
missing or other version, ``400`` for a missing or malformed key, ``405`` for another method,
``403`` for an ``Origin`` outside the allow-list.  :func:`accept_fields` builds the ``101``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from wsproto.utilities import generate_accept_token

from ..errors import HTTPError
from ..headers import Headers

__all__ = ["Offer", "accept_fields", "check_handshake"]


@dataclass(frozen=True)
class Offer:
    """What a valid opening handshake asks for."""

    key: bytes
    #: ``Sec-WebSocket-Protocol`` values, in the client's order of preference.
    subprotocols: tuple[str, ...]
    #: ``Sec-WebSocket-Extensions`` offers, each as sent (``permessage-deflate; ...``).
    extensions: tuple[str, ...]
    origin: str | None


def _tokens(headers: Headers, name: str) -> list[str]:
    return [t.strip() for value in headers.get_list(name) for t in value.split(",") if t.strip()]


def check_handshake(
    method: str, http_version: str, headers: Headers, *, allowed_origins: Iterable[str] | None
) -> Offer | HTTPError:
    """The client's offer, or the :class:`HTTPError` to answer the request with."""
    upgrade = [token.lower() for token in _tokens(headers, "upgrade")]
    connection = [token.lower() for token in _tokens(headers, "connection")]
    if "websocket" not in upgrade or "upgrade" not in connection:
        return HTTPError(
            426,
            "this resource speaks WebSocket only",
            headers={"upgrade": "websocket", "connection": "Upgrade"},
        )
    if method != "GET":
        return HTTPError(405, "a WebSocket handshake is a GET", headers={"allow": "GET"})
    if headers.get("transfer-encoding") is not None or headers.get("content-length", "0") != "0":
        return HTTPError(400, "a WebSocket handshake has no body")
    if http_version != "1.1":
        return HTTPError(400, "a WebSocket handshake needs HTTP/1.1")
    if headers.get("sec-websocket-version") != "13":
        return HTTPError(426, "WebSocket version 13 only", headers={"sec-websocket-version": "13"})
    key = (headers.get("sec-websocket-key") or "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return HTTPError(400, "missing or malformed Sec-WebSocket-Key")
    origin = headers.get("origin")
    if allowed_origins is not None and origin not in set(allowed_origins):
        return HTTPError(403, "this Origin may not open a WebSocket here")
    return Offer(
        key=key.encode("ascii"),
        subprotocols=tuple(_tokens(headers, "sec-websocket-protocol")),
        extensions=tuple(
            offer.strip()
            for value in headers.get_list("sec-websocket-extensions")
            for offer in value.split(",")
            if offer.strip()
        ),
        origin=origin,
    )


def accept_fields(
    offer: Offer, *, subprotocol: str | None, extension: str | None
) -> list[tuple[bytes, bytes]]:
    """The fields of the ``101`` that accepts *offer* (without the caller's extra fields).

    Raises ``ValueError`` for a *subprotocol* the client did not offer (RFC 6455 §4.2.2).
    """
    fields = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", generate_accept_token(offer.key)),
    ]
    if subprotocol is not None:
        if subprotocol not in offer.subprotocols:
            raise ValueError(f"the client did not offer the subprotocol {subprotocol!r}")
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    if extension:
        fields.append((b"sec-websocket-extensions", extension.encode("latin-1")))
    return fields
