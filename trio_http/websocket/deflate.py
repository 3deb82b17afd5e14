"""``permessage-deflate`` (RFC 7692) with the message size limit applied to the *inflated* size.

wsproto's extension inflates whatever a frame holds at once: a few kilobytes on the wire can
become gigabytes in memory (a decompression bomb).  :class:`BoundedDeflate` asks zlib for at
most one byte past the limit per step, and closes the connection with ``1009`` as soon as a
message would exceed it.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["BoundedDeflate", "negotiate_deflate"]


class BoundedDeflate(PerMessageDeflate):
    """``PerMessageDeflate`` that never inflates a message past *max_size* bytes."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self._inflated = 0  # bytes of the current message so far
        self._in_control = False  # the frame being read is a ping, pong or close

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        # A control frame may come between the fragments of a compressed message (RFC 6455
        # §5.4); it must leave the message's compression state alone, which wsproto's resets.
        self._in_control = opcode.iscontrol()
        if self._in_control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        decompressor = self._decompressor
        if self._in_control:
            return data
        if not self._inbound_compressed or not self._inbound_is_compressible or not decompressor:
            return super().frame_inbound_payload_data(proto, data)
        try:
            out = decompressor.decompress(bytes(data), self.max_size - self._inflated + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_size or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._in_control:
            self._in_control = False
            return None
        result = super().frame_inbound_complete(proto, fin)
        if isinstance(result, bytes):
            self._inflated += len(result)
            if self._inflated > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
        if fin:
            self._inflated = 0
        return result


def negotiate_deflate(
    offers: tuple[str, ...], max_size: int
) -> tuple[BoundedDeflate | None, str | None]:
    """The extension to use for the client's ``Sec-WebSocket-Extensions`` *offers* and the
    answer to send (RFC 7692 §5), or ``(None, None)`` if none is acceptable."""
    for offer in offers:
        extension = BoundedDeflate(max_size)
        if offer.split(";")[0].strip() != extension.name:
            continue
        accepted = extension.accept(offer)
        if accepted is None or accepted is False:
            continue
        params = accepted if isinstance(accepted, str) else ""
        return extension, f"{extension.name}; {params}" if params else extension.name
    return None, None
