"""Per-connection limits against untrusted peers: receive memory, slow frames, pre-auth size.

A `ReceiveGuard` owns a session's `FrameDecoder` and sits on its receive path:
`get_buffer` -> (transport reads) -> `decode` -> `after_read`. It keeps three promises:

* Memory follows the data. The decoder grows its buffer only with bytes actually received
  (a 44-byte header declaring 16 MiB pins 8 KiB), and gives it back after a small read that
  ended on a frame boundary, so an idle connection holds almost nothing. Every session's buffer
  is counted in `ServerState.buffered_bytes`; the session whose buffer grows past
  `max_buffered_bytes_total` is closed.
* A frame begun must finish. One that stays incomplete for `frame_timeout_secs` while the
  session reads (and completes no other frame meanwhile) closes the connection.
* Before Authenticate (auth on, `write_only` off) a frame payload is at most
  `max_unauthenticated_payload`; `authenticated()` lifts it to `max_payload_size`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from lnc_client.protocol.frame import Frame, FrameDecoder
from lnc_client.server.commands import ServerState

__all__ = ["ReceiveGuard"]

_log = logging.getLogger(__name__)
_MIN_BUFFER: Final = 8 * 1024


class ReceiveGuard:
    """The receive side of one session, with its limits.

    Args:
        state: The server state (configuration and the server-wide buffer count).
        gated: Whether the connection starts unauthenticated with auth enforced.
        abort: Drops the connection (called from the event loop).
        reading: Whether the session is currently reading its socket.
    """

    __slots__ = (
        "_abort",
        "_counted",
        "_decoded",
        "_decoded_at_timer",
        "_loop",
        "_reading",
        "_state",
        "_timer",
        "decoder",
    )

    def __init__(
        self,
        state: ServerState,
        *,
        gated: bool,
        abort: Callable[[], None],
        reading: Callable[[], bool],
    ) -> None:
        config = state.config
        limit = config.max_payload_size
        if gated:
            limit = min(limit, config.max_unauthenticated_payload)
        self.decoder = FrameDecoder(
            max_payload_size=limit,
            buffer_size=config.read_buffer_bytes,
            min_buffer_size=min(_MIN_BUFFER, config.read_buffer_bytes),
        )
        self._state = state
        self._abort = abort
        self._reading = reading
        self._loop = asyncio.get_running_loop()
        self._counted = 0
        self._decoded = 0
        self._decoded_at_timer = 0
        self._timer: asyncio.TimerHandle | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        """The decoder's free space; schedules a close if all buffers together are too big."""
        buffer = self.decoder.get_buffer(sizehint)
        if self._count() > 0 and (
            self._state.buffered_bytes > self._state.config.max_buffered_bytes_total
        ):
            _log.warning("closing a connection: receive buffers over max_buffered_bytes_total")
            self._loop.call_soon(self._abort)
        return buffer

    def decode(self, nbytes: int) -> list[Frame]:
        """Decode the bytes of a read (see `FrameDecoder.buffer_updated`)."""
        frames = self.decoder.buffer_updated(nbytes)
        self._decoded += len(frames)
        return frames

    def after_read(self, nbytes: int) -> None:
        """Time a frame left incomplete by this read; give memory back after a small read."""
        if not self.decoder.buffered:
            self._cancel_timer()
            if nbytes < _MIN_BUFFER:
                self.decoder.shrink()
                self._count()
            return
        if self._timer is None and self._state.config.frame_timeout_secs:
            self._arm()

    def authenticated(self) -> None:
        """Lift the frame size limit to `max_payload_size`."""
        self.decoder.max_payload_size = self._state.config.max_payload_size

    def close(self) -> None:
        """Stop the timer and take this buffer out of the server-wide count."""
        self._cancel_timer()
        self._state.buffered_bytes -= self._counted
        self._counted = 0

    def _count(self) -> int:
        delta = self.decoder.capacity - self._counted
        self._counted += delta
        self._state.buffered_bytes += delta
        return delta

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._decoded_at_timer = self._decoded
        self._timer = self._loop.call_later(self._state.config.frame_timeout_secs, self._expired)

    def _expired(self) -> None:
        """Close on a frame still incomplete; time the next one if frames completed meanwhile.

        Time while the session was not reading does not count either: it is timed again.
        """
        self._timer = None
        if not self.decoder.buffered:
            return
        if not self._reading() or self._decoded != self._decoded_at_timer:
            self._arm()
            return
        _log.warning(
            "closing a connection: a frame stayed incomplete for %s s",
            self._state.config.frame_timeout_secs,
        )
        self._abort()
