"""``permessage-deflate`` (RFC 7692) with the message size limit applied to the *inflated* size.

wsproto's extension inflates whatever a frame holds at once: a few kilobytes on the wire can
become gigabytes in memory (a decompression bomb).  :class:`BoundedDeflate` asks zlib for at
most one byte past the limit per step, and closes the connection with ``1009`` as soon as a
message would exceed it.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

__all__ = ["BoundedDeflate"]


class BoundedDeflate(PerMessageDeflate):
    """``PerMessageDeflate`` that never inflates a message past *max_size* bytes."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self._inflated = 0  # bytes of the current message so far

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        decompressor = self._decompressor
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
        result = super().frame_inbound_complete(proto, fin)
        if isinstance(result, bytes):
            self._inflated += len(result)
            if self._inflated > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
        if fin:
            self._inflated = 0
        return result
