"""The limits and timers of WebSockets (pure: shared by the route layer and ASGI)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WebSocketSettings"]


@dataclass(frozen=True)
class WebSocketSettings:
    """Limits and timers of the WebSockets of a server or an app (times in seconds)."""

    #: Largest message accepted (after decompression); larger closes with 1009.
    max_size: int = 16 * 1024 * 1024
    #: Ping the peer this often (``None``: never).
    ping_interval: float | None = 20.0
    #: Close with 1011 a peer that has not answered a ping within this time.
    ping_timeout: float | None = 20.0
    #: ``Origin`` values allowed to open a WebSocket (``None``: any); others get 403.
    allowed_origins: tuple[str, ...] | None = None
    #: Offer ``permessage-deflate`` when the client asks for it.
    compression: bool = True
    #: Whole messages received and not yet taken by ``receive()`` before reading stops.
    queue_size: int = 16
    #: How long a closing side waits for the peer's close frame.
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        # Each of these would leave a WebSocket that can never work (queue_size 0: nobody
        # would ever read), so they are refused at once rather than found by a client.
        if self.max_size < 1:
            raise ValueError(f"max_size must be at least 1 byte, not {self.max_size}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {self.queue_size}")
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, not {value}")
        if self.close_timeout <= 0:
            raise ValueError(f"close_timeout must be positive, not {self.close_timeout}")
