"""What a WebSocket delivers and raises (pure): messages, their size, the closed error."""

from __future__ import annotations

__all__ = ["Data", "WebSocketClosed", "join_message", "message_size"]

#: A message: ``str`` for text, ``bytes`` for binary.
Data = str | bytes


class WebSocketClosed(Exception):
    """The WebSocket is closed: by the peer, by us, or because the connection was lost
    (``1006``).  Raised by :meth:`WebSocket.receive` and :meth:`WebSocket.send`."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed ({self.code}{': ' + self.reason if self.reason else ''})"


def message_size(data: str | bytes | bytearray) -> int:
    """Bytes on the wire (UTF-8 for text): what max_size and the access log count."""
    if not isinstance(data, str):
        return len(data)
    return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))


def join_message(parts: list[str | bytes | bytearray]) -> Data:
    """One message from the payloads of its frames (wsproto gives text frames as ``str``),
    copied once whatever the number of frames."""
    first = parts[0]
    if isinstance(first, str):
        return first if len(parts) == 1 else "".join(p for p in parts if isinstance(p, str))
    return bytes(first) if len(parts) == 1 else b"".join(parts)  # type: ignore[arg-type]
