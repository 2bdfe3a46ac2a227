"""One client connection: bytes in, frames dispatched, replies and Acks out in the real order.

Data flow. The transport reads straight into the `FrameDecoder`'s buffer (`get_buffer` /
`buffer_updated`). Each read is one *chunk*, handled as the real server handles a `read()`
(PROTOCOL.md §2.7): every frame in it is dispatched in order; keepalive and control replies are
written during dispatch; the ingest payloads go to the group-commit writer (zero-copy views into
the receive buffer), and the chunk's Acks are written together, in FIFO order, once the writer
reports them durable. A framing fault ends the connection after the frames before it in the same
chunk were dispatched, with no reply and without that chunk's Acks (§1.4).

Write failures. When the disk refuses a write (`ENOSPC`, `EIO`, ...), each ingest of that write
gets an ErrorResponse with the server's text (`I/O error: No space left on device (os error
28)`) in the place of its Ack, and the connection stays open: the writer cut the failed bytes
back, so the next write (once there is space again) goes on from the last durable byte. The
real server closes the connection without a frame instead (PROTOCOL.md §2.9); a producer then
sees only a timeout.

Pipelining. The real server stops reading until a chunk's Acks are out. We keep reading up to
`inflight_bytes_per_connection` un-acked bytes, but keep the wire order the real server would
produce for the same chunks: the replies of a later chunk are held until every earlier chunk's
Acks are written, and a later chunk's control command is not even run before then (a Fetch
answered after an Ack always sees that batch). With the limit at 0 the behaviour is exactly
the real one.

Flow control. Reading pauses while a disk-bound command runs, while too many bytes are un-acked,
while the writer's queue is full, while the transport's send buffer is over its high-water
mark (a peer that does not read its replies), and while the replies held for ordering are over
that same mark (`write_buffer_high_bytes`). In the last two cases dispatch of the current chunk
also stops until the bytes are out, as the real server's blocking `write_all` does. Memory per
connection is therefore bounded by the limits plus one reply.

Untrusted peers. The receive path goes through a `ReceiveGuard` (server/guard.py): memory
grows with the bytes received and is bounded in total, a frame that does not complete times
out, and frames before Authenticate are small. Beyond `max_connections` a new connection is
closed at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from functools import partial
from typing import Final, cast

from lnc_client.errors import InvalidFrameError
from lnc_client.protocol import error_texts as texts
from lnc_client.protocol.frame import (
    KEEPALIVE_FRAME,
    Frame,
    FrameType,
    build_ack_frame,
    build_backpressure_frame,
    classify,
)
from lnc_client.server.commands import (
    AUTH_REQUIRED,
    Commands,
    ConnectionAuth,
    Reply,
    ServerState,
    error_frame,
    io_error_text,
)
from lnc_client.server.guard import ReceiveGuard
from lnc_client.server.storage.segments import Buffer, TopicLog
from lnc_client.server.storage.writer import WriterUnavailableError

__all__ = ["Session"]

_log = logging.getLogger(__name__)
_UNKNOWN_TOPIC: Final = error_frame(texts.UNKNOWN_TOPIC.text)
_INGEST: Final = FrameType.INGEST
_CONTROL: Final = FrameType.CONTROL
_KEEPALIVE: Final = FrameType.KEEPALIVE


def _close_coroutine(coroutine: Coroutine[None, None, Reply], _: asyncio.Task[None]) -> None:
    coroutine.close()


def _waits_for_acks(chunks: deque[_Chunk], chunk: _Chunk, kind: FrameType) -> bool:
    """Whether a control command must wait for the Acks of earlier reads.

    Real Lance reads nothing more until a read's Acks are out, so it answers a later read's
    command only then: a Fetch never misses a batch whose Ack came before it.
    """
    return kind is _CONTROL and chunks[0] is not chunk


class _Chunk:
    """The frames of one read and what is owed for them."""

    __slots__ = (
        "acks",
        "close",
        "dispatched",
        "errors",
        "failed",
        "held",
        "outstanding",
        "replies",
        "submitted",
    )

    def __init__(self) -> None:
        self.replies: list[Buffer] = []
        self.acks: list[int] = []
        self.submitted = 0
        self.errors: dict[int, bytes] = {}
        self.outstanding = 0
        self.dispatched = False
        self.close = False
        self.failed = False
        self.held = False


class Session(asyncio.BufferedProtocol):
    """The protocol object of one accepted connection.

    Args:
        state: What all sessions share.
        commands: The control-command dispatcher.
        live: The server's set of open sessions; a session is in it from `connection_made`
            (after the TLS handshake, if any) to `connection_lost`.
    """

    def __init__(self, state: ServerState, commands: Commands, live: set[Session]) -> None:
        config = state.config
        self._state = state
        self._commands = commands
        self._live = live
        self._auth = ConnectionAuth(authenticated=not config.auth.enabled)
        self._guard = ReceiveGuard(
            state,
            gated=not self._auth.authenticated and not config.auth.write_only,
            abort=self.abort,
            reading=lambda: self._reading,
        )
        self._inflight_limit = config.inflight_bytes_per_connection
        self._held_limit = config.write_buffer_high_bytes
        self._held_bytes = 0
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[_Chunk] = deque()
        self._entries: list[tuple[TopicLog, Buffer]] = []
        self._entry_bytes = 0
        self._inflight = 0
        self._frames_seen = 0
        self._acks_sent = 0
        self._busy = False
        self._closing = False
        self._eof = False
        self._write_paused = False
        self._reading = True
        self._waiting_for_room = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._stalled: tuple[_Chunk, list[Frame], int, bool] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self.closed = self._loop.create_future()

    @property
    def held_reply_bytes(self) -> int:
        """Reply bytes held back until an earlier read's Acks are out."""
        return self._held_bytes

    # --- asyncio protocol callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start reading; set the send buffer's high-water mark and the idle timer.

        A connection accepted before the server began to stop but made only after (a TLS
        handshake, or just a later loop turn) is dropped at once: `stop()` no longer sees it.
        """
        # a stream transport (uvloop's are not subclasses of asyncio.Transport)
        self._transport = transport = cast("asyncio.Transport", transport)
        if self._state.stopping:
            transport.abort()
            return
        if len(self._live) >= self._state.config.max_connections:
            _log.warning(
                "closing a new connection: max_connections (%d) reached",
                self._state.config.max_connections,
            )
            transport.abort()
            return
        self._live.add(self)
        self._state.stats.connections_accepted += 1
        transport.set_write_buffer_limits(high=self._state.config.write_buffer_high_bytes)
        self._last_activity = self._loop.time()
        if self._state.config.idle_timeout_secs:
            self._arm_idle_timer(self._state.config.idle_timeout_secs)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Hand the transport the decoder's free space (`ReceiveGuard.get_buffer`)."""
        return self._guard.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        """Decode the new bytes and dispatch them as one chunk."""
        self._last_activity = self._loop.time()
        try:
            self._decode(nbytes)
        finally:
            self._guard.after_read(nbytes)

    def _decode(self, nbytes: int) -> None:
        fault = False
        try:
            frames = self._guard.decode(nbytes)
        except InvalidFrameError as error:
            frames = list(error.frames)
            fault = True
            self._closing = True
            self._update_reading()
        if not frames and not fault:
            return
        chunk = _Chunk()
        self._chunks.append(chunk)
        self._run(chunk, frames, 0, fault=fault)

    def eof_received(self) -> bool:
        """Finish what is owed for earlier chunks, then close."""
        self._eof = True
        return bool(self._chunks) or self._busy

    def pause_writing(self) -> None:
        """The peer is not reading: stop reading its requests."""
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        """The send buffer drained: dispatch and read again."""
        self._write_paused = False
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the transport; pending disk-bound commands are cancelled."""
        self._transport = None
        self._stalled = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._guard.close()
        for task in list(self._tasks):
            task.cancel()
        self._chunks.clear()
        self._held_bytes = 0
        self._entries.clear()
        if not self.closed.done():
            self.closed.set_result(None)
        self._live.discard(self)

    # --- control from the server ----------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop reading; close once every chunk read so far is answered."""
        self._closing = True
        self._update_reading()
        self._flush()

    def abort(self) -> None:
        """Drop the connection at once (TCP reset, nothing more is sent)."""
        if self._transport is not None:
            self._transport.abort()

    # --- dispatch ---------------------------------------------------------------------------------

    def _run(self, chunk: _Chunk, frames: list[Frame], start: int, *, fault: bool) -> None:
        drop_after = self._state.faults.drop_after_frames
        for index in range(start, len(frames)):
            frame = frames[index]
            header = frame.header
            kind = classify(header.flags, header.payload_length)
            paused = self._write_paused or self._held_bytes > self._held_limit
            if paused or _waits_for_acks(self._chunks, chunk, kind):
                self._submit(chunk)
                self._stalled = (chunk, frames, index, fault)
                self._busy = True
                self._update_reading()
                return
            if drop_after:
                self._frames_seen += 1
                if self._frames_seen >= drop_after:
                    self.abort()
                    return
            if kind is _INGEST:
                self._ingest(chunk, frame)
            elif kind is _CONTROL:
                result = self._commands.handle(header.batch_id & 0xFF, frame.payload, self._auth)
                if self._auth.authenticated:
                    self._guard.authenticated()
                elif self._auth.failures >= self._state.config.auth.max_failures:
                    assert isinstance(result, list)  # Authenticate is answered from memory
                    self._reply(chunk, result)
                    _log.warning(
                        "closing a connection after %d failed Authenticate", self._auth.failures
                    )
                    self._closing = True
                    fault = True
                    break
                if isinstance(result, list):
                    self._reply(chunk, result)
                    continue
                self._submit(chunk)
                self._busy = True
                self._update_reading()
                task = self._loop.create_task(self._resume(chunk, frames, index + 1, fault, result))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                # a task cancelled before its first step never awaits `result`: close it
                task.add_done_callback(partial(_close_coroutine, result))
                return
            elif kind is _KEEPALIVE:
                self._reply(chunk, [KEEPALIVE_FRAME])
        self._submit(chunk)
        chunk.dispatched = True
        chunk.close = fault
        self._flush()

    async def _resume(
        self,
        chunk: _Chunk,
        frames: list[Frame],
        start: int,
        fault: bool,
        pending: Coroutine[None, None, Reply],
    ) -> None:
        try:
            reply = await pending
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bug; nobody awaits this task, so it is logged here
            _log.exception("a control command failed unexpectedly; aborting the connection")
            self.abort()
            return
        if self._transport is None:
            return
        self._busy = False
        self._reply(chunk, reply)
        self._run(chunk, frames, start, fault=fault)

    def _ingest(self, chunk: _Chunk, frame: Frame) -> None:
        header = frame.header
        if not self._auth.authenticated and not self._state.config.auth.write_only:
            self._reply(chunk, AUTH_REQUIRED)
            return
        log = self._state.registry.log_for_ingest(header.topic_id)
        if log is None:
            self._reply(chunk, _UNKNOWN_TOPIC)
            return
        if not header.payload_length:
            return
        self._entries.append((log, frame.payload))
        self._entry_bytes += header.payload_length
        chunk.acks.append(header.batch_id)

    def _submit(self, chunk: _Chunk) -> None:
        if not self._entries:
            return
        entries, nbytes = self._entries, self._entry_bytes
        self._entries, self._entry_bytes = [], 0
        chunk.outstanding += 1
        self._inflight += nbytes
        acks = range(chunk.submitted, len(chunk.acks))
        chunk.submitted = len(chunk.acks)
        try:
            self._state.writer.submit(
                entries, nbytes, lambda e: self._written(chunk, nbytes, acks, e)
            )
        except WriterUnavailableError:
            chunk.outstanding -= 1
            chunk.failed = True
            self._inflight -= nbytes

    def _written(self, chunk: _Chunk, nbytes: int, acks: range, error: OSError | None) -> None:
        self._inflight -= nbytes
        chunk.outstanding -= 1
        if self._transport is None:
            return
        if isinstance(error, WriterUnavailableError):
            chunk.failed = True
        elif error is not None:
            _log.warning("write failed, %d ingest(s) get an ErrorResponse: %s", len(acks), error)
            reply = b"".join(error_frame(io_error_text(error)))
            chunk.errors.update(dict.fromkeys(acks, reply))
        delay = self._state.faults.ack_delay_ms
        if delay and chunk.outstanding == 0 and not chunk.failed:
            chunk.held = True
            self._loop.call_later(delay / 1000, self._release_held, chunk)
        self._flush()
        self._update_reading()

    def _release_held(self, chunk: _Chunk) -> None:
        chunk.held = False
        self._flush()

    # --- output -----------------------------------------------------------------------------------

    def _reply(self, chunk: _Chunk, parts: Reply) -> None:
        if self._chunks and self._chunks[0] is chunk and self._transport is not None:
            self._transport.writelines(parts)
        else:
            chunk.replies.extend(parts)
            self._held_bytes += sum(map(len, parts))

    def _flush(self) -> None:
        """Write what is owed, in order; then go on with a stalled dispatch, or update reading."""
        transport = self._transport
        if transport is None:
            return
        self._write_owed(transport)
        stalled = self._stalled
        if stalled is not None and not self._write_paused and self._held_bytes <= self._held_limit:
            self._stalled = None
            self._busy = False
            chunk, frames, index, fault = stalled
            self._run(chunk, frames, index, fault=fault)
            return
        self._update_reading()

    def _write_owed(self, transport: asyncio.Transport) -> None:
        chunks = self._chunks
        while chunks:
            head = chunks[0]
            if head.replies:
                self._held_bytes -= sum(map(len, head.replies))
                transport.writelines(head.replies)
                head.replies = []
            if not head.dispatched:
                return
            if head.close or head.failed:
                chunks.clear()
                self._held_bytes = 0
                self._stalled = None
                transport.close()
                return
            if head.outstanding or head.held:
                return
            if head.acks:
                transport.write(self._ack_bytes(head.acks, head.errors))
            chunks.popleft()
            self._last_activity = self._loop.time()
            if not chunks and self._idle_timer is None and self._state.config.idle_timeout_secs:
                self._arm_idle_timer(self._state.config.idle_timeout_secs)
        if (self._eof or self._closing) and not self._busy:
            transport.close()

    def _ack_bytes(self, acks: list[int], errors: dict[int, bytes]) -> bytes:
        every = self._state.faults.backpressure_every_n_acks
        if not every and not errors:
            self._acks_sent += len(acks)
            return b"".join([build_ack_frame(batch_id) for batch_id in acks])
        parts = []
        for index, batch_id in enumerate(acks):
            refused = errors.get(index)
            if refused is not None:
                parts.append(refused)
                continue
            parts.append(build_ack_frame(batch_id))
            if not every:
                continue
            self._acks_sent += 1
            if self._acks_sent % every == 0:
                parts.append(build_backpressure_frame())
        return b"".join(parts)

    # --- flow control -----------------------------------------------------------------------------

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        writer = self._state.writer
        paused = (
            self._busy
            or self._closing
            or self._eof
            or self._write_paused
            or self._inflight > self._inflight_limit
            or not writer.has_room
        )
        if not writer.has_room and not self._waiting_for_room:
            self._waiting_for_room = True
            writer.wait_for_room(self._room_available)
        if paused and self._reading:
            self._reading = False
            transport.pause_reading()
        elif not paused and not self._reading:
            self._reading = True
            transport.resume_reading()

    def _room_available(self) -> None:
        self._waiting_for_room = False
        self._update_reading()

    def _arm_idle_timer(self, delay: float) -> None:
        self._idle_timer = self._loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        """Close after `idle_timeout_secs` without input or anything owed; else wait again.

        Time owed to the peer does not count: while something is owed the timer is off, and
        `_write_owed` arms it again once the last Ack is out.
        """
        timeout = self._state.config.idle_timeout_secs
        if self._chunks or self._busy:
            self._idle_timer = None
            return
        idle = self._loop.time() - self._last_activity
        if idle >= timeout:
            if self._transport is not None:
                self._transport.close()
            return
        self._arm_idle_timer(timeout - idle)
