"""Connection behaviour against a scripted peer: reply matching, ack barrier, keepalives, faults.

The peer is a tiny asyncio server whose answers each test scripts frame by frame, so that the
cases the embedded server never produces (mismatched answers, unknown acks, corrupt frames, a peer
that stops reading) can be pinned exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from lnc_client import operations as ops
from lnc_client.config import ConnectionOptions, ProducerConfig
from lnc_client.connection import Connection
from lnc_client.errors import (
    AuthenticationError,
    ConnectionError,
    InvalidFrameError,
    LanceError,
    ProtocolError,
    TimeoutError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
)
from lnc_client.producer import Producer
from lnc_client.protocol import control
from lnc_client.protocol.frame import (
    KEEPALIVE_FRAME,
    ControlCommand,
    Frame,
    FrameDecoder,
    FrameType,
    build_ack_frame,
    build_control_frame,
)

from ..helpers import wait_for

Handler = Callable[["Peer", list[Frame]], Awaitable[None]]


@dataclass
class Peer:
    """A scripted server: `handler` sees each read chunk's frames and writes what it wants."""

    handler: Handler
    writer: asyncio.StreamWriter | None = None
    received: list[Frame] = field(default_factory=list)
    read_enabled: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, *frames: bytes) -> None:
        assert self.writer is not None
        self.writer.write(b"".join(frames))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        decoder = FrameDecoder()
        try:
            while True:
                await self.read_enabled.wait()
                data = await reader.read(65536)
                if not data:
                    break
                frames = decoder.feed(data)
                self.received += frames
                await self.handler(self, frames)
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.close()
            self.finished.set()


@contextlib.asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[tuple[Peer, str]]:
    peer = Peer(handler)
    peer.read_enabled.set()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield peer, f"127.0.0.1:{port}"
    finally:
        server.close()
        if peer.writer is not None:
            peer.writer.transport.abort()
            peer.read_enabled.set()
            await asyncio.wait_for(peer.finished.wait(), 2)
        await server.wait_closed()


def options(**changes: float) -> ConnectionOptions:
    base = {"connect_timeout_s": 2.0, "request_timeout_s": 2.0, "keepalive_interval_s": 0.0}
    base.update(changes)
    return ConnectionOptions(**base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def connected(handler: Handler) -> AsyncIterator[tuple[Peer, Connection]]:
    """A scripted peer and a connection to it (default options), closed afterwards."""
    async with scripted(handler) as (peer, address):
        conn = await Connection.open(address, options())
        try:
            yield peer, conn
        finally:
            await conn.close()


async def real_server_like(peer: Peer, frames: list[Frame]) -> None:
    """Answer as the real server does per chunk: inline replies first, then acks in order."""
    inline: list[bytes] = []
    acks: list[bytes] = []
    for frame in frames:
        kind = frame.frame_type
        if kind is FrameType.KEEPALIVE:
            inline.append(KEEPALIVE_FRAME)
        elif kind is FrameType.INGEST:
            if frame.header.topic_id == 99:
                inline.append(build_control_frame(ControlCommand.ERROR_RESPONSE, b"Unknown topic"))
            else:
                acks.append(build_ack_frame(frame.header.batch_id))
        elif kind is FrameType.CONTROL and frame.command == ControlCommand.LIST_TOPICS:
            body = control.topic_list_json([control.TopicInfo(1, "a", 5)])
            inline.append(build_control_frame(ControlCommand.TOPIC_RESPONSE, body))
        elif kind is FrameType.CONTROL and frame.command == ControlCommand.GET_CLUSTER_STATUS:
            status = control.ClusterStatus(0, True, 0, 0, 1, 1, True, mode="standalone")
            body = control.cluster_status_json(status)
            inline.append(build_control_frame(ControlCommand.CLUSTER_STATUS_RESPONSE, body))
        elif kind is FrameType.CONTROL and frame.command == ControlCommand.UNSUBSCRIBE:
            request = control.parse_unsubscribe_request(frame.payload)
            inline.append(build_ack_frame(request.consumer_id))
    peer.send(*inline, *acks)


def collector() -> tuple[dict[int, LanceError | None], Callable[[int, LanceError | None], None]]:
    results: dict[int, LanceError | None] = {}

    def on_done(batch_id: int, error: LanceError | None) -> None:
        assert batch_id not in results, "on_done called twice"
        results[batch_id] = error

    return results, on_done


RECORD = b"\x01\x01\x00\x00\x00x"


async def test_ping_and_list_topics() -> None:
    async with connected(real_server_like) as (_, conn):
        assert 0 <= await conn.ping() < 1
        assert await ops.list_topics(conn) == [control.TopicInfo(1, "a", 5)]


async def test_error_among_acks_fails_exactly_the_refused_batch() -> None:
    async with connected(real_server_like) as (_, conn):
        results, on_done = collector()
        for batch_id in range(1, 7):
            topic = 99 if batch_id in (3, 5) else 1
            conn.send_ingest(topic, RECORD, batch_id=batch_id, record_count=1, on_done=on_done)
        await wait_for(lambda: len(results) == 6)
        assert [b for b, e in sorted(results.items()) if e is None] == [1, 2, 4, 6]
        for refused in (3, 5):
            error = results[refused]
            assert isinstance(error, TopicNotFoundError)
            assert error.server_text == "Unknown topic"
        assert conn.in_flight == 0
        assert conn.is_open


async def test_error_for_the_only_batch_is_settled_without_later_acks() -> None:
    async with connected(real_server_like) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(99, RECORD, batch_id=1, record_count=1, on_done=on_done)
        await wait_for(lambda: 1 in results)
        assert isinstance(results[1], TopicNotFoundError)


async def test_unsubscribe_ack_is_not_taken_for_an_ingest_ack() -> None:
    async with connected(real_server_like) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(1, RECORD, batch_id=42, record_count=1, on_done=on_done)
        await ops.unsubscribe(conn, 1, 42)
        await wait_for(lambda: 42 in results)
        assert results == {42: None}
        await ops.unsubscribe(conn, 1, 7)


async def test_timed_out_request_keeps_its_place_and_late_answer_is_dropped() -> None:
    async def slow_first(peer: Peer, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.command == ControlCommand.GET_TOPIC:
                await asyncio.sleep(0.3)
                peer.send(build_control_frame(ControlCommand.ERROR_RESPONSE, b"Topic not found"))
            else:
                await real_server_like(peer, [frame])

    async with connected(slow_first) as (_, conn):
        with pytest.raises(TimeoutError):
            await ops.get_topic(conn, 5, timeout=0.05)
        assert await ops.list_topics(conn) == [control.TopicInfo(1, "a", 5)]


async def test_cancelled_request_does_not_shift_answers() -> None:
    async def slow(peer: Peer, frames: list[Frame]) -> None:
        await asyncio.sleep(0.1)
        await real_server_like(peer, frames)

    async with connected(slow) as (_, conn):
        task = asyncio.create_task(ops.cluster_status(conn))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await ops.list_topics(conn) == [control.TopicInfo(1, "a", 5)]


async def test_answer_of_the_wrong_kind_resets_the_connection() -> None:
    async def wrong(peer: Peer, frames: list[Frame]) -> None:
        peer.send(build_control_frame(ControlCommand.COMMIT_ACK, bytes(16)))

    async with connected(wrong) as (_, conn):
        with pytest.raises(ProtocolError, match="cannot answer"):
            await ops.list_topics(conn)
        assert not conn.is_open


async def test_ack_for_unknown_batch_resets_and_fails_in_flight_batches() -> None:
    async def bogus(peer: Peer, frames: list[Frame]) -> None:
        peer.send(build_ack_frame(999))

    async with connected(bogus) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(1, RECORD, batch_id=1, record_count=1, on_done=on_done)
        await wait_for(lambda: 1 in results)
        assert isinstance(results[1], ProtocolError)
        assert not conn.is_open


async def test_corrupt_frame_from_server_closes_with_invalid_frame_error() -> None:
    async def corrupt(peer: Peer, frames: list[Frame]) -> None:
        frame = bytearray(build_control_frame(ControlCommand.TOPIC_RESPONSE, b'{"topics":[]}'))
        frame[-1] ^= 0xFF
        peer.send(bytes(frame))

    async with connected(corrupt) as (_, conn):
        with pytest.raises(InvalidFrameError):
            await ops.list_topics(conn)


async def test_lost_connection_fails_every_waiter_with_retryable_error() -> None:
    async def hang_up(peer: Peer, frames: list[Frame]) -> None:
        assert peer.writer is not None
        peer.writer.transport.abort()

    async with connected(hang_up) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(1, RECORD, batch_id=1, record_count=1, on_done=on_done)
        with pytest.raises(ConnectionError) as caught:
            await ops.list_topics(conn)
        assert caught.value.retryable
        await wait_for(lambda: 1 in results)
        assert isinstance(results[1], ConnectionError)
        with pytest.raises(ConnectionError):
            conn.send_ingest(1, RECORD, batch_id=2, record_count=1, on_done=on_done)


async def test_server_keepalives_are_never_answered() -> None:
    async def flood(peer: Peer, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.frame_type is FrameType.KEEPALIVE:
                peer.send(KEEPALIVE_FRAME)

    async with connected(flood) as (peer, conn):
        await conn.ping()
        peer.send(*[KEEPALIVE_FRAME] * 50)
        await asyncio.sleep(0.2)
        assert sum(f.frame_type is FrameType.KEEPALIVE for f in peer.received) == 1
        assert conn.is_open


async def test_idle_keepalive_is_sent_and_a_silent_peer_is_dropped() -> None:
    async def silent(peer: Peer, frames: list[Frame]) -> None:
        return

    async with scripted(silent) as (peer, address):
        conn = await Connection.open(
            address, options(keepalive_interval_s=0.05, request_timeout_s=0.2)
        )
        await asyncio.wait_for(conn.wait_closed(), 2)
        assert any(f.frame_type is FrameType.KEEPALIVE for f in peer.received)
        assert isinstance(conn.failure, TimeoutError)


async def test_authentication_refused_and_connect_timeout() -> None:
    async def refuse(peer: Peer, frames: list[Frame]) -> None:
        body = control.encode_auth_response(control.AuthResult(False, "Invalid token"))
        peer.send(build_control_frame(ControlCommand.AUTHENTICATE_RESPONSE, body))

    async with scripted(refuse) as (peer, address):
        with pytest.raises(AuthenticationError) as caught:
            await Connection.open(address, ConnectionOptions(auth_token="nope"))
        assert caught.value.server_text == "Invalid token"
        assert bytes(peer.received[0].payload) == b"nope"

    async def mute(peer: Peer, frames: list[Frame]) -> None:
        return

    async with scripted(mute) as (_, address):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await Connection.open(address, ConnectionOptions(auth_token="t", connect_timeout_s=0.2))
        assert loop.time() - started < 1.0


async def test_connect_refused_is_a_retryable_connection_error() -> None:
    async with scripted(real_server_like) as (_, address):
        pass
    with pytest.raises(ConnectionError) as caught:
        await Connection.open(address, options())
    assert caught.value.retryable


async def test_peer_that_stops_reading_bounds_the_wait() -> None:
    async with scripted(real_server_like) as (peer, address):
        peer.read_enabled.clear()
        conn = await Connection.open(address, options())
        results, on_done = collector()
        payload = bytes(1 << 20)
        batch_id = 0
        while conn.writable and batch_id < 500:
            batch_id += 1
            conn.send_ingest(1, payload, batch_id=batch_id, record_count=1, on_done=on_done)
        assert not conn.writable
        with pytest.raises(TimeoutError):
            await conn.wait_writable(timeout=0.1)
        await conn.close()
        assert all(isinstance(e, ConnectionError) for e in results.values())
        assert len(results) == batch_id


def holding_acks(error_text: bytes) -> Handler:
    """A peer that holds every Ack until the next keepalive and refuses each request with
    `error_text`: the request's error arrives while an older ingest is still in flight."""
    held: list[bytes] = []

    async def handler(peer: Peer, frames: list[Frame]) -> None:
        for frame in frames:
            kind = frame.frame_type
            if kind is FrameType.INGEST:
                held.append(build_ack_frame(frame.header.batch_id))
            elif kind is FrameType.KEEPALIVE:
                peer.send(KEEPALIVE_FRAME, *held)
                held.clear()
            elif kind is FrameType.CONTROL:
                peer.send(build_control_frame(ControlCommand.ERROR_RESPONSE, error_text))

    return handler


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"Topic 't' already exists", TopicAlreadyExistsError),
        (b"Topic not found", TopicNotFoundError),
        (b"Configuration error: Topic 5 not found", TopicNotFoundError),
        (b"Invalid client command", LanceError),
        (b"Rate limit exceeded", LanceError),
        (b"FORWARD_FAILED: Leader not ready (apply/metadata catch-up)", LanceError),
        (b"a text no ingest can get", LanceError),
    ],
)
async def test_control_only_error_goes_to_the_newer_request(
    text: bytes, expected: type[LanceError]
) -> None:
    async with connected(holding_acks(text)) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(1, RECORD, batch_id=1, record_count=1, on_done=on_done)
        with pytest.raises(expected) as caught:
            await ops.create_topic(conn, "t")
        assert caught.value.server_text == text.decode()
        assert conn.is_open
        assert results == {}
        await conn.ping()
        await wait_for(lambda: 1 in results)
        assert results == {1: None}


BOTH_SIDES = [b"FORWARD_FAILED: Forward operation timed out", b"NOT_LEADER: leader unknown"]


@pytest.mark.parametrize("text", BOTH_SIDES)
async def test_error_both_can_get_goes_to_the_request_once_the_barrier_sees_the_ack(
    text: bytes,
) -> None:
    """The older batch is acked after the error: the barrier gives the error to the request."""
    async with connected(holding_acks(text)) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(1, RECORD, batch_id=1, record_count=1, on_done=on_done)
        with pytest.raises(LanceError) as caught:
            await ops.create_topic(conn, "t")
        assert caught.value.server_text == text.decode()
        assert caught.value.retryable
        assert results == {1: None}
        assert conn.is_open


def forwarding_follower(text: bytes) -> Handler:
    """A follower as in issue 8: each batch's forward fails at once with `text`, and every
    request is answered after it, in the order received."""

    async def handler(peer: Peer, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.frame_type is FrameType.INGEST:
                peer.send(build_control_frame(ControlCommand.ERROR_RESPONSE, text))
            else:
                await real_server_like(peer, [frame])

    return handler


@pytest.mark.parametrize("text", BOTH_SIDES)
async def test_follower_error_for_a_batch_ahead_of_a_later_reply_is_placed(text: bytes) -> None:
    async with connected(forwarding_follower(text)) as (_, conn):
        results, on_done = collector()
        conn.send_ingest(1, RECORD, batch_id=1, record_count=1, on_done=on_done)
        topics = await ops.list_topics(conn)
        assert topics == [control.TopicInfo(1, "a", 5)]
        await wait_for(lambda: 1 in results)
        error = results[1]
        assert error is not None
        assert error.server_text == text.decode()
        assert error.retryable
        assert conn.is_open


async def test_producer_resends_a_batch_whose_forward_failed_ahead_of_a_name_lookup() -> None:
    """Issue 8 end to end: while batch 1 is in flight, the producer's first send by name asks
    ListTopics; the follower fails the batch's forward (`FORWARD_FAILED: ...`) ahead of the
    topic list. The batch gets the retryable error and is resent, nothing fails."""
    forwarded: list[int] = []
    held: list[Frame] = []

    async def follower(peer: Peer, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.frame_type is FrameType.INGEST and not forwarded:
                forwarded.append(frame.header.batch_id)
                held.append(frame)  # the forward is slow: it fails once the lookup is read
            elif frame.frame_type is FrameType.INGEST:
                forwarded.append(frame.header.batch_id)
                peer.send(build_ack_frame(frame.header.batch_id))
            elif frame.command == ControlCommand.LIST_TOPICS and held:
                body = control.topic_list_json([control.TopicInfo(2, "b", 5)])
                failed = b"FORWARD_FAILED: Failed to receive from leader: eof"
                peer.send(
                    build_control_frame(ControlCommand.ERROR_RESPONSE, failed),
                    build_control_frame(ControlCommand.TOPIC_RESPONSE, body),
                )
                held.clear()
            else:
                await real_server_like(peer, [frame])

    async with scripted(follower) as (_, address):
        config = ProducerConfig(linger_ms=0, keepalive_interval_s=0, request_timeout_s=2)
        async with Producer(address, config) as producer:
            first = await producer.send_async(1, b"a")
            await wait_for(lambda: bool(held))
            await producer.send_async("b", b"x")
            await producer.flush(timeout=5)
            metrics = producer.metrics()
    assert forwarded.count(first) == 2
    assert metrics.records_acked == 2
    assert metrics.batches_failed == 0


async def test_batch_id_of_a_pending_unsubscribe_is_refused() -> None:
    async with connected(real_server_like) as (peer, conn):
        results, on_done = collector()
        unsubscribe = asyncio.ensure_future(ops.unsubscribe(conn, 1, 42))
        await asyncio.sleep(0)  # the Unsubscribe is written and waits for its Ack
        with pytest.raises(ValueError, match="Unsubscribe"):
            conn.send_ingest(99, RECORD, batch_id=42, record_count=1, on_done=on_done)
        await unsubscribe
        conn.send_ingest(99, RECORD, batch_id=42, record_count=1, on_done=on_done)
        await wait_for(lambda: 42 in results)
        assert isinstance(results[42], TopicNotFoundError)
        assert [f.frame_type for f in peer.received].count(FrameType.INGEST) == 1
