"""The URLs a server bound to a wildcard address (``0.0.0.0``, ``::``) can be reached at.

The standard library has no call that lists a machine's addresses.  On Linux they are read
from the kernel (``SIOCGIFADDR`` per interface for IPv4, ``/proc/net/if_inet6`` for IPv6);
elsewhere the host name's addresses stand in.  What is printed is a convenience for the
person starting the server, so any failure here just gives a shorter list.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable

__all__ = ["format_url", "reachable_urls"]

_SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address
_WILDCARDS = {"0.0.0.0": socket.AF_INET, "::": socket.AF_INET6}


def format_url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def reachable_urls(scheme: str, addresses: Iterable[tuple[str, int]]) -> list[str]:
    """For each bound ``(host, port)``, its URL, or for a wildcard host one URL per address.

    Loopback first, then the others in the order found; link-local IPv6 addresses (which
    need a zone in a URL) are left out.
    """
    urls: list[str] = []
    for host, port in addresses:
        family = _WILDCARDS.get(host)
        hosts = [host] if family is None else _local_addresses(family)
        for address in hosts or [host]:
            url = format_url(scheme, address, port)
            if url not in urls:
                urls.append(url)
    return urls


def _local_addresses(family: int) -> list[str]:
    found = _ipv4_addresses() if family == socket.AF_INET else _ipv6_addresses()
    if not found:
        found = _host_name_addresses(family)
    usable = []
    for text in dict.fromkeys(found):
        address = ipaddress.ip_address(text)
        if address.version == 6 and address.is_link_local:
            continue
        usable.append(address)
    usable.sort(key=lambda a: not a.is_loopback)  # stable: otherwise in the order found
    return [str(a) for a in usable]


def _ipv4_addresses() -> list[str]:
    addresses = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # down, or no IPv4 address
            addresses.append(socket.inet_ntoa(answer[20:24]))
    return addresses


def _ipv6_addresses() -> list[str]:
    addresses = []
    with contextlib.suppress(OSError), open("/proc/net/if_inet6", encoding="ascii") as table:
        for line in table:
            digits = line.split()[0]
            addresses.append(str(ipaddress.IPv6Address(bytes.fromhex(digits))))
    return addresses


def _host_name_addresses(family: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]
