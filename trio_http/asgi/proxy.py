"""Who the client is behind a reverse proxy: ``Forwarded`` (RFC 7239) and ``X-Forwarded-*``.

Behind a proxy, the TCP peer is the proxy; the client's address and the scheme it used are in
headers the proxy adds.  Anyone can send those headers, so they are believed only from a peer
listed in ``--forwarded-allow-ips`` (:class:`TrustedProxies`); from any other peer they are
ignored entirely.  :func:`client_and_scheme` turns a request's headers into the ASGI scope's
``client`` and ``scheme``.

Rules, where the RFCs and uvicorn leave room:

* One kind of header is read, the kind the trusted proxies write (:data:`ProxyHeaders`):
  ``X-Forwarded-For`` and ``X-Forwarded-Proto`` (the default, as uvicorn) or ``Forwarded``.
  The other kind is the client's own, passed on by proxies that do not write it (nginx
  passes a client's ``Forwarded`` on as it is): believing it would let the client choose its
  address.
* Each proxy appends one entry on the right.  Walking from the right, entries whose address is
  itself a trusted proxy are skipped; the first other entry names the client (if all are
  trusted, the leftmost does, as in uvicorn).  In ``Forwarded`` that entry is a whole element:
  its ``for=`` gives the client and its ``proto=`` the scheme, both as seen by the proxy that
  wrote it.  An element without ``for=`` leaves the client as the peer, as an absent
  ``X-Forwarded-For`` does.
* The client is an IP address, as the ASGI spec's ``client`` is.  ``unknown``, an RFC 7239
  obfuscated identifier (``_hidden``) or anything that is not an address gives a client of
  ``None``: the proxy could not or would not say, and its own address would be wrong.  The port
  is the one given (``"[2001:db8::1]:4711"``, ``"192.0.2.1:80"``), else 0.
* ``X-Forwarded-Proto`` may list one scheme per hop, like ``X-Forwarded-For``: if both list the
  same number, the entry beside the client's is used, else the rightmost.  Only http, https,
  ws and wss count, case-insensitively; they set whether the scheme is secure, and the result
  keeps the connection's family (``https`` on a WebSocket connection gives ``wss``).
* Malformed values are ignored, never raised.

Pure: no I/O, and no trio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal, TypeAlias

__all__ = ["ProxyHeaders", "TrustedProxies", "client_and_scheme", "parse_forwarded"]

#: Which headers the trusted proxies write: ``X-Forwarded-For`` / ``X-Forwarded-Proto``, or
#: RFC 7239 ``Forwarded``.
ProxyHeaders: TypeAlias = Literal["x-forwarded", "forwarded"]

_Address = IPv4Address | IPv6Address
_Node = tuple[_Address, int]
_NodeAt = Callable[[int], _Node | None]
_SCHEMES = frozenset({"http", "https", "ws", "wss"})


class TrustedProxies:
    """The peers whose forwarding headers are believed, from ``--forwarded-allow-ips``.

    *spec* is a comma-separated list of IP addresses (``127.0.0.1``, ``::1``), networks
    (``10.0.0.0/8``, ``fd00::/8``; host bits may be set), ``*`` for every peer, and ``unix:``
    for peers on a Unix socket (whose address is ``None``).  Blank entries are ignored.
    Raises ValueError, naming the entry, for anything else: a typo must not silently trust
    nobody (or, with a hostname, be mistaken for one).  *headers*: the kind they write (only
    that kind is read).
    """

    def __init__(self, spec: str, headers: ProxyHeaders = "x-forwarded") -> None:
        self.spec = spec
        self.headers = headers
        self.any = False
        self.unix = False
        self._addresses: set[_Address] = set()
        self._networks: list[IPv4Network | IPv6Network] = []
        # Answers per peer host: parsing the address on every request cost 4.8 % of an ASGI
        # request's CPU (docs/performance.md).  Bounded: cleared when full.
        self._answers: dict[str | None, bool] = {}
        for raw in spec.split(","):
            entry = raw.strip()
            try:
                if not entry:
                    continue
                if entry == "*":
                    self.any = True
                elif entry == "unix:":
                    self.unix = True
                elif "/" in entry:
                    self._networks.append(ip_network(entry, strict=False))
                else:
                    self._addresses.add(_comparable(ip_address(entry)))
            except ValueError:
                raise ValueError(
                    f"invalid trusted proxy {entry!r}: expected an IP address, a network"
                    " such as 10.0.0.0/8, '*' or 'unix:'"
                ) from None

    def __repr__(self) -> str:
        return f"TrustedProxies({self.spec!r}, {self.headers!r})"

    def trusts(self, host: str | None) -> bool:
        """Whether a peer at *host* (a bare IP address; ``None`` for a Unix socket) is trusted.

        An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, what a dual-stack socket reports)
        counts as the IPv4 address.  Never raises: a host that is not an address is untrusted
        (unless ``*`` was given).
        """
        if self.any:
            return True
        if host is None:
            return self.unix
        answer = self._answers.get(host)
        if answer is None:
            address = _parse_address(host)
            answer = address is not None and self._trusts_address(address)
            if len(self._answers) >= 4096:
                self._answers.clear()
            self._answers[host] = answer
        return answer

    def _trusts_address(self, address: _Address) -> bool:
        if self.any:
            return True
        address = _comparable(address)
        if address in self._addresses:
            return True
        return any(address in network for network in self._networks)


def client_and_scheme(
    headers: list[tuple[bytes, bytes]],
    peer: tuple[str, int] | None,
    scheme: str,
    proxies: TrustedProxies,
) -> tuple[tuple[str, int] | None, str]:
    """The ASGI ``client`` and ``scheme`` for a request from *peer* over *scheme*.

    *headers* are the request's (any case); *peer* is the socket's remote address (``None``
    for a Unix socket) and *scheme* the connection's (http, https, ws or wss).  Returns them
    unchanged unless *peer* is trusted and the headers say otherwise; see the module docstring.
    Never raises for header content.
    """
    if not proxies.trusts(peer[0] if peer is not None else None):
        return peer, scheme
    forwarded: list[str] = []
    forwarded_for: list[str] = []
    forwarded_proto: list[str] = []
    read_forwarded = proxies.headers == "forwarded"
    for name, value in headers:
        name = name.lower()
        if read_forwarded:
            if name == b"forwarded":
                forwarded.append(value.decode("latin-1"))
        elif name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
        elif name == b"x-forwarded-proto":
            forwarded_proto.append(value.decode("latin-1"))
    if forwarded:
        elements = parse_forwarded(",".join(forwarded))
        return _from_forwarded(elements, peer, scheme, proxies) if elements else (peer, scheme)
    if not (forwarded_for or forwarded_proto):
        return peer, scheme  # the usual case: nothing to parse (2 % of an ASGI GET /)
    return _from_x_forwarded(forwarded_for, forwarded_proto, peer, scheme, proxies)


def _from_forwarded(
    elements: Sequence[dict[str, str] | None],
    peer: tuple[str, int] | None,
    scheme: str,
    proxies: TrustedProxies,
) -> tuple[tuple[str, int] | None, str]:
    def node(index: int) -> _Node | None:
        element = elements[index]
        return _parse_node(element["for"]) if element and "for" in element else None

    index, client_node = _walk(len(elements), node, proxies)
    element = elements[index]
    if element is None:  # malformed: nothing in it can be believed
        return peer, scheme
    client = peer if "for" not in element else _client(client_node)
    return client, _scheme(element.get("proto"), scheme)


def _from_x_forwarded(
    forwarded_for: Iterable[str],
    forwarded_proto: Iterable[str],
    peer: tuple[str, int] | None,
    scheme: str,
    proxies: TrustedProxies,
) -> tuple[tuple[str, int] | None, str]:
    hops = _list_items(forwarded_for)
    client = peer
    from_right = 0
    if hops:
        index, client_node = _walk(len(hops), lambda i: _parse_node(hops[i]), proxies)
        client = _client(client_node)
        from_right = len(hops) - 1 - index
    protos = _list_items(forwarded_proto)
    if protos:
        # One scheme per hop lines up with X-Forwarded-For; otherwise the rightmost is the one
        # our (trusted) peer wrote.
        proto = protos[-1 - from_right] if len(protos) == len(hops) else protos[-1]
        scheme = _scheme(proto, scheme)
    return client, scheme


def _walk(count: int, node: _NodeAt, proxies: TrustedProxies) -> tuple[int, _Node | None]:
    """Index and node of the entry naming the client, among *count* entries (count > 0).

    The rightmost entry whose node is not a trusted proxy; the leftmost if all are.  Nodes are
    parsed only as far as the walk goes, so a long header costs little.
    """
    for index in range(count - 1, 0, -1):
        found = node(index)
        if found is None or not proxies._trusts_address(found[0]):
            return index, found
    return 0, node(0)


def _client(node: _Node | None) -> tuple[str, int] | None:
    return None if node is None else (str(node[0]), node[1])


def _scheme(proto: str | None, scheme: str) -> str:
    if proto is None or proto.strip().lower() not in _SCHEMES:
        return scheme
    secure = proto.strip().lower() in ("https", "wss")
    if scheme in ("ws", "wss"):
        return "wss" if secure else "ws"
    return "https" if secure else "http"


def _list_items(fields: Iterable[str]) -> list[str]:
    """The non-empty members of comma-separated header fields, in order."""
    return [item.strip() for field in fields for item in field.split(",") if item.strip()]


def parse_forwarded(value: str) -> list[dict[str, str] | None]:
    """The elements of a ``Forwarded`` field value, left to right (RFC 7239 §4).

    Each element maps its lower-cased parameter names to unquoted values; ``None`` stands for
    an element that does not parse (a pair without ``=``, a repeated parameter, a bad quoted
    string).  Empty elements are dropped.
    """
    elements: list[dict[str, str] | None] = []
    for raw in _split_outside_quotes(value, ","):
        if not raw.strip():
            continue
        element: dict[str, str] = {}
        for pair in _split_outside_quotes(raw, ";"):
            if not pair.strip():
                continue
            name, equals, text = pair.partition("=")
            name = name.strip().lower()
            unquoted = _unquote(text.strip())
            if not equals or not name or unquoted is None or name in element:
                elements.append(None)
                break
            element[name] = unquoted
        else:
            elements.append(element)
    return elements


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _unquote(text: str) -> str | None:
    """A token as it is, a quoted-string without its quotes and escapes; None if malformed."""
    if not text.startswith('"'):
        return None if '"' in text else text
    result: list[str] = []
    escaped = False
    for index, char in enumerate(text[1:], start=1):
        if escaped:
            result.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return "".join(result) if index == len(text) - 1 else None
        else:
            result.append(char)
    return None  # no closing quote


def _parse_node(text: str) -> _Node | None:
    """``(address, port)`` from ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``[::1]`` or ``::1``.

    None for ``unknown``, an obfuscated identifier or anything else that names no address.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # an IPv4 address, or an IPv6 one without brackets (seen in X-Forwarded-For)
        host, port_text = text, ""
    address = _parse_address(host)
    if address is None:
        return None
    # (The length check also keeps int() from refusing a thousands-of-digits "port".)
    valid = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    port = int(port_text) if valid else 0
    return address, port if 0 < port <= 65535 else 0


def _parse_address(text: str) -> _Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _comparable(address: _Address) -> _Address:
    """*address* as trust lists compare it: without a zone, IPv4-mapped IPv6 as IPv4."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return IPv6Address(str(address).partition("%")[0])
    return address
