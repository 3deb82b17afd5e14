"""Trusted proxies and the client/scheme they report (Forwarded, X-Forwarded-For/-Proto)."""

from __future__ import annotations

import ast
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_http.asgi import proxy
from trio_http.asgi.proxy import (
    ProxyHeaders,
    TrustedProxies,
    client_and_scheme,
    parse_forwarded,
)


def test_is_pure() -> None:
    """Imports only the standard library: no trio, no I/O layers (checked in the source, since
    importing the module runs the package's __init__, which may load trio for other reasons)."""
    tree = ast.parse(Path(proxy.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "collections.abc", "ipaddress", "typing"}


# --- TrustedProxies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1", None, False),
        ("10.0.0.0/8, ::1", "10.200.3.4", True),
        ("10.0.0.0/8, ::1", "11.0.0.1", False),
        ("10.0.0.0/8, ::1", "::1", True),
        ("10.0.0.0/8, ::1", "0:0:0:0:0:0:0:1", True),  # compared as addresses, not text
        ("10.0.0.0/8, ::1", "::ffff:10.0.0.1", True),  # IPv4-mapped, from a dual-stack socket
        ("10.0.0.1", "::ffff:10.0.0.1", True),
        ("::ffff:10.0.0.1", "10.0.0.1", True),
        ("10.0.0.1/8", "10.9.9.9", True),  # host bits set: the network is meant
        ("fd00::/8", "fd12:3456::1", True),
        ("fd00::/8", "fe80::1", False),
        ("fe80::/10", "fe80::1%eth0", True),  # a zone does not hide the address
        ("fe80::1", "fe80::1%eth0", True),
        ("*", "203.0.113.9", True),
        ("*", None, True),
        ("*", "not an address", True),
        ("unix:", None, True),
        ("unix:", "127.0.0.1", False),
        ("127.0.0.1, unix:", None, True),
        ("", "127.0.0.1", False),
        ("", None, False),
        (" 127.0.0.1 , , 10.0.0.2 ", "10.0.0.2", True),
        ("127.0.0.1", "garbage", False),
        ("127.0.0.1", "", False),
        ("127.0.0.1", "[127.0.0.1]", False),  # a bare address is expected
    ],
)
def test_trusts(spec: str, host: str | None, trusted: bool) -> None:
    assert TrustedProxies(spec).trusts(host) is trusted


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "unix", "1.2.3", "10.0.0.1:80"])
def test_invalid_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=f"invalid trusted proxy '{entry}'"):
        TrustedProxies(f"127.0.0.1,{entry}")


# --- Forwarded parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "elements"),
    [
        (
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
        ),
        ('For="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
        ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        ('for="_gazonk"', [{"for": "_gazonk"}]),
        (" ; for = 1.2.3.4 ; ", [{"for": "1.2.3.4"}]),
        ('for="a,b;c"', [{"for": "a,b;c"}]),  # separators inside quotes
        (r'for="a\"b\\c"', [{"for": 'a"b\\c'}]),  # quoted-pair escapes
        ("for=1.2.3.4,, ,for=5.6.7.8", [{"for": "1.2.3.4"}, {"for": "5.6.7.8"}]),
        ("", []),
        ("for", [None]),  # no "="
        ("=1.2.3.4", [None]),  # no name
        ("for=1.2.3.4;for=5.6.7.8", [None]),  # a parameter twice
        ('for="1.2.3.4', [None]),  # no closing quote
        ('for="1.2.3.4"x', [None]),  # text after the closing quote
        ('for=1.2"3', [None]),
        ("for=bad, for=1.2.3.4;x", [{"for": "bad"}, None]),
    ],
)
def test_parse_forwarded(value: str, elements: list[dict[str, str] | None]) -> None:
    assert parse_forwarded(value) == elements


# --- client_and_scheme ------------------------------------------------------------------------

PROXY = ("10.0.0.1", 55000)
STRANGER = ("198.51.100.2", 1)
CLIENT = "203.0.113.7"
H = list[tuple[bytes, bytes]]
Peer = tuple[str, int] | None


def xff(value: str) -> tuple[str, str]:
    return ("x-forwarded-for", value)


def xfp(value: str) -> tuple[str, str]:
    return ("x-forwarded-proto", value)


def fwd(value: str) -> tuple[str, str]:
    return ("forwarded", value)


def headers(*pairs: tuple[str, str]) -> H:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


def case(
    name: str,
    trusted: str,
    pairs: list[tuple[str, str]],
    client: Peer,
    result_scheme: str = "http",
    *,
    peer: Peer = PROXY,
    scheme: str = "http",
    kind: ProxyHeaders = "x-forwarded",
) -> object:
    """A row: from *peer* over *scheme* with *pairs*, proxies that write *kind*, expect
    (*client*, *result_scheme*)."""
    expected = (client, result_scheme)
    return pytest.param(trusted, kind, headers(*pairs), peer, scheme, expected, id=name)


CASES = [
    # Spoofing: an untrusted peer's headers are ignored entirely.
    case("untrusted xff", "10.0.0.1", [xff(CLIENT)], STRANGER, peer=STRANGER),
    case("untrusted proto", "10.0.0.1", [xfp("https")], STRANGER, peer=STRANGER),
    case(
        "untrusted fwd",
        "10.0.0.1",
        [fwd(f"for={CLIENT};proto=https")],
        STRANGER,
        peer=STRANGER,
        kind="forwarded",
    ),
    case("untrusted unix peer", "127.0.0.1", [xff(CLIENT)], None, peer=None),
    case("no headers", "10.0.0.1", [], PROXY),
    case("other headers", "10.0.0.1", [("host", "example.com")], PROXY, "https", scheme="https"),
    # X-Forwarded-For
    case("xff", "10.0.0.1", [xff(CLIENT)], (CLIENT, 0)),
    case("xff name case", "10.0.0.1", [("X-Forwarded-For", CLIENT)], (CLIENT, 0)),
    case("xff spoofed left", "10.0.0.1", [xff(f"1.1.1.1, {CLIENT}")], (CLIENT, 0)),
    case("xff hops", "10.0.0.0/8", [xff(f"1.1.1.1, {CLIENT}, 10.0.0.3, 10.0.0.2")], (CLIENT, 0)),
    case("xff all trusted", "10.0.0.0/8", [xff("10.0.0.3, 10.0.0.2")], ("10.0.0.3", 0)),
    case("xff fields joined", "10.0.0.0/8", [xff(CLIENT), xff("10.0.0.2")], (CLIENT, 0)),
    case("xff later field wins", "10.0.0.1", [xff("1.1.1.1"), xff(CLIENT)], (CLIENT, 0)),
    case("xff port", "10.0.0.1", [xff(f"{CLIENT}:4711")], (CLIENT, 4711)),
    case("xff bracketed v6", "10.0.0.1", [xff("[2001:DB8::1]:4711")], ("2001:db8::1", 4711)),
    case("xff bare v6", "10.0.0.1", [xff("2001:db8::1")], ("2001:db8::1", 0)),
    case("xff bad port", "10.0.0.1", [xff(f"{CLIENT}:99999")], (CLIENT, 0)),
    case("xff unknown", "10.0.0.1", [xff("unknown")], None),
    case("xff garbage", "10.0.0.1", [xff("<script>")], None),
    case("xff garbage behind a trusted hop", "10.0.0.0/8", [xff("x, 10.0.0.2")], None),
    case("xff empty", "10.0.0.1", [xff("")], PROXY),
    case("xff commas", "10.0.0.1", [xff(" , ,")], PROXY),
    case("xff star", "*", [xff(f"{CLIENT}, 198.51.100.9")], (CLIENT, 0), peer=STRANGER),
    case("xff unix peer", "unix:", [xff(CLIENT)], (CLIENT, 0), peer=None),
    case("xff mapped peer", "10.0.0.0/8", [xff(CLIENT)], (CLIENT, 0), peer=("::ffff:10.0.0.1", 1)),
    # X-Forwarded-Proto
    case("xfp https", "10.0.0.1", [xfp("https")], PROXY, "https"),
    case("xfp case", "10.0.0.1", [xfp(" HTTPS ")], PROXY, "https"),
    case("xfp http", "10.0.0.1", [xfp("http")], PROXY, "http", scheme="https"),
    case("xfp other", "10.0.0.1", [xfp("ftp")], PROXY, "http"),
    case("xfp websocket", "10.0.0.1", [xfp("https")], PROXY, "wss", scheme="ws"),
    case("xfp wss on http", "10.0.0.1", [xfp("wss")], PROXY, "https"),
    case("xfp ws on wss", "10.0.0.1", [xfp("ws")], PROXY, "ws", scheme="wss"),
    case(
        "xfp per hop",
        "10.0.0.0/8",
        [xff(f"{CLIENT}, 10.0.0.2"), xfp("https, http")],
        (CLIENT, 0),
        "https",
    ),
    case("xfp rightmost", "10.0.0.1", [xfp("https, http")], PROXY, "http", scheme="https"),
    case("xfp spoofed left", "10.0.0.1", [xff(CLIENT), xfp("https, http")], (CLIENT, 0), "http"),
    # Forwarded
    case(
        "fwd",
        "10.0.0.1",
        [fwd(f"for={CLIENT};proto=https")],
        (CLIENT, 0),
        "https",
        kind="forwarded",
    ),
    case(
        "fwd quoted v6",
        "10.0.0.1",
        [fwd('For="[2001:db8:cafe::17]:4711"')],
        ("2001:db8:cafe::17", 4711),
        kind="forwarded",
    ),
    case(
        "fwd quoted v4 port",
        "10.0.0.1",
        [fwd(f'for="{CLIENT}:80"')],
        (CLIENT, 80),
        kind="forwarded",
    ),
    case(
        "fwd obfuscated",
        "10.0.0.1",
        [fwd("for=_hidden;proto=https")],
        None,
        "https",
        kind="forwarded",
    ),
    case(
        "fwd obfuscated port",
        "10.0.0.1",
        [fwd(f'for="{CLIENT}:_p"')],
        (CLIENT, 0),
        kind="forwarded",
    ),
    case("fwd unknown", "10.0.0.1", [fwd("for=unknown")], None, kind="forwarded"),
    case(
        "fwd spoofed left",
        "10.0.0.0/8",
        [fwd(f"for=10.9.9.9;proto=https, for={CLIENT};proto=http")],
        (CLIENT, 0),
        "http",
        kind="forwarded",
    ),
    case(
        "fwd hops",
        "10.0.0.0/8",
        [fwd(f"for={CLIENT};proto=https, for=10.0.0.2;proto=http")],
        (CLIENT, 0),
        "https",
        kind="forwarded",
    ),
    case(
        "fwd fields joined",
        "10.0.0.0/8",
        [fwd(f"for={CLIENT};proto=https"), fwd("for=10.0.0.2")],
        (CLIENT, 0),
        "https",
        kind="forwarded",
    ),
    case(
        "fwd all trusted",
        "10.0.0.0/8",
        [fwd("for=10.0.0.3, for=10.0.0.2")],
        ("10.0.0.3", 0),
        kind="forwarded",
    ),
    case("fwd no for", "10.0.0.1", [fwd("proto=https")], PROXY, "https", kind="forwarded"),
    case(
        "fwd by and host ignored",
        "10.0.0.1",
        [fwd(f"by=10.0.0.1;for={CLIENT};host=example.com")],
        (CLIENT, 0),
        kind="forwarded",
    ),
    case(
        "fwd bad proto",
        "10.0.0.1",
        [fwd(f"for={CLIENT};proto=gopher")],
        (CLIENT, 0),
        kind="forwarded",
    ),
    case(
        "fwd on websocket",
        "10.0.0.1",
        [fwd("proto=https")],
        PROXY,
        "wss",
        scheme="ws",
        kind="forwarded",
    ),
    case(
        "fwd ignores x-forwarded",  # the client's own, passed on
        "10.0.0.1",
        [xff("198.51.100.9"), xfp("https"), fwd(f"for={CLIENT}")],
        (CLIENT, 0),
        kind="forwarded",
    ),
    case(
        "fwd absent: x-forwarded ignored",
        "10.0.0.1",
        [xff("198.51.100.9"), xfp("https")],
        PROXY,
        kind="forwarded",
    ),
    # The default reads X-Forwarded-*: a Forwarded the client sent (nginx passes it on) is
    # ignored, else the client would choose its own address.
    case(
        "xff ignores a client's forwarded",
        "10.0.0.1",
        [fwd("for=198.51.100.9;proto=https"), xff(CLIENT)],
        (CLIENT, 0),
    ),
    case("forwarded alone ignored", "10.0.0.1", [fwd("for=198.51.100.9;proto=https")], PROXY),
    case("fwd malformed", "10.0.0.1", [fwd('for="1.2.3.4'), xff(CLIENT)], PROXY, kind="forwarded"),
    case(
        "fwd malformed hop",
        "10.0.0.0/8",
        [fwd(f"for={CLIENT}, for, for=10.0.0.2")],
        PROXY,
        kind="forwarded",
    ),
    case("fwd empty", "10.0.0.1", [fwd(" , "), xff(CLIENT)], PROXY, kind="forwarded"),
    case(
        "fwd unix peer",
        "unix:",
        [fwd(f"for={CLIENT};proto=https")],
        (CLIENT, 0),
        "https",
        peer=None,
        kind="forwarded",
    ),
]


@pytest.mark.parametrize(
    ("trusted", "kind", "request_headers", "peer", "scheme", "expected"), CASES
)
def test_client_and_scheme(
    trusted: str,
    kind: ProxyHeaders,
    request_headers: H,
    peer: Peer,
    scheme: str,
    expected: tuple[Peer, str],
) -> None:
    proxies = TrustedProxies(trusted, kind)
    assert client_and_scheme(request_headers, peer, scheme, proxies) == expected


def test_a_long_header_is_walked_only_as_far_as_needed() -> None:
    hops = ", ".join(["garbage"] * 100_000 + [CLIENT])
    result = client_and_scheme(headers(xff(hops)), PROXY, "http", TrustedProxies("10.0.0.1"))
    assert result == ((CLIENT, 0), "http")


HEADER_NAMES = st.sampled_from([b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x"])
HEADER_VALUES = st.one_of(
    st.binary(max_size=60),
    st.text(alphabet='for=proto_unknown[]:;,"\\ 0123456789abcdef.', max_size=60).map(str.encode),
)


@given(
    st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6),
    st.sampled_from(["*", "10.0.0.0/8", "unix:, 0.0.0.0/0, ::/0"]),
    st.sampled_from(["http", "https", "ws", "wss"]),
    st.sampled_from(["x-forwarded", "forwarded"]),
)
def test_garbage_never_raises(
    request_headers: H, trusted: str, scheme: str, kind: ProxyHeaders
) -> None:
    client, result_scheme = client_and_scheme(
        request_headers, PROXY, scheme, TrustedProxies(trusted, kind)
    )
    assert result_scheme in {"http", "https", "ws", "wss"}
    # The scheme stays in its family: a WebSocket connection is never reported as https.
    assert result_scheme.startswith("ws") == scheme.startswith("ws")
    if client is not None and client != PROXY:
        host, port = client
        ip_address(host)  # always an address
        assert 0 <= port <= 65535


def test_answers_are_remembered_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The address is parsed once per peer host, not once per request."""
    import trio_http.asgi.proxy as proxy

    proxies = TrustedProxies("10.0.0.0/8")
    parsed: list[str] = []
    real = proxy._parse_address

    def counting(text: str) -> object:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(proxy, "_parse_address", counting)
    assert [proxies.trusts("10.1.2.3") for _ in range(3)] == [True, True, True]
    assert [proxies.trusts("192.0.2.1") for _ in range(2)] == [False, False]
    assert parsed == ["10.1.2.3", "192.0.2.1"]
