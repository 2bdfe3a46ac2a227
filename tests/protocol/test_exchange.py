"""The client exchange without a socket: bytes out, byte vectors in, events out.

Each test writes requests and batches into a `ClientExchange`, feeds it the server's bytes (the
frame vectors of PROTOCOL.md where one exists) and checks the events, and the keepalives the ack
barrier writes on its own. A small pure model of the real server (inline replies per read, acks
at the end of the read) drives the hypothesis tests.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnc_client.errors import (
    ConnectionError,
    ForwardFailedError,
    InvalidFrameError,
    ProtocolError,
    ServerIOError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
)
from lnc_client.protocol.exchange import (
    BackpressureSeen,
    BatchAcked,
    BatchRefused,
    ClientExchange,
    Event,
    ExchangeBroken,
    KeepaliveSeen,
    RequestAnswered,
    RequestFailed,
)
from lnc_client.protocol.frame import (
    KEEPALIVE_FRAME,
    ControlCommand,
    Frame,
    FrameDecoder,
    FrameType,
    build_ack_frame,
    build_control_frame,
)

HELLO = b"\x01\x05\x00\x00\x00hello"
RECORD = b"\x01\x01\x00\x00\x00x"
TOPICS = build_control_frame(ControlCommand.TOPIC_RESPONSE, b'{"topics":[]}')


def error(text: str) -> bytes:
    return build_control_frame(ControlCommand.ERROR_RESPONSE, text.encode())


def batches(exchange: ClientExchange, *batch_ids: int) -> None:
    for batch_id in batch_ids:
        exchange.send_batch(1, RECORD, batch_id=batch_id, record_count=1)


def barrier(exchange: ClientExchange, between: bytes = b"") -> list[Event]:
    """Answer the ack barrier: echo its first keepalive, then `between`, then the second."""
    assert exchange.data_to_send() == [KEEPALIVE_FRAME]
    events = exchange.receive_data(KEEPALIVE_FRAME + between)
    assert exchange.data_to_send() == [KEEPALIVE_FRAME]
    return events + exchange.receive_data(KEEPALIVE_FRAME)


# --- bytes out ------------------------------------------------------------------------------


def test_a_batch_and_a_request_are_the_vector_bytes(frame_vectors: dict[str, bytes]) -> None:
    exchange = ClientExchange()
    parts = exchange.send_batch(1, HELLO, batch_id=1, record_count=1)
    assert b"".join(parts) == frame_vectors["ingest_topic1_hello"]
    _, frame = exchange.send_request(ControlCommand.LIST_TOPICS)
    assert frame == frame_vectors["list_topics_request"]
    _, frame = exchange.send_request(ControlCommand.CREATE_TOPIC, b"my-events")
    assert frame == frame_vectors["create_topic_request"]
    _, frame = exchange.send_keepalive()
    assert frame == frame_vectors["keepalive"]
    assert exchange.data_to_send() == []


def test_a_large_payload_is_not_copied_into_its_frame() -> None:
    payload = bytes(70_000)
    parts = ClientExchange().send_batch(1, payload, batch_id=1, record_count=1)
    assert len(parts) == 2
    assert parts[1] is payload


# --- acks and replies -----------------------------------------------------------------------


def test_acks_settle_their_batches_in_order(frame_vectors: dict[str, bytes]) -> None:
    exchange = ClientExchange()
    batches(exchange, 6, 7)
    assert exchange.receive_data(build_ack_frame(6) + frame_vectors["ack_batch_7"]) == [
        BatchAcked(6),
        BatchAcked(7),
    ]
    assert exchange.in_flight == 0
    assert exchange.data_to_send() == []


def test_replies_answer_requests_in_the_order_sent(frame_vectors: dict[str, bytes]) -> None:
    exchange = ClientExchange()
    first, _ = exchange.send_request(ControlCommand.CREATE_TOPIC, b"my-events")
    second, _ = exchange.send_request(ControlCommand.SUBSCRIBE, bytes(24))
    events = exchange.receive_data(
        frame_vectors["topic_response_create"] + frame_vectors["subscribe_ack"]
    )
    assert [type(e) for e in events] == [RequestAnswered, RequestAnswered]
    assert [e.request_id for e in events] == [first, second]  # type: ignore[union-attr]


def test_a_reply_of_the_wrong_kind_breaks_the_exchange(frame_vectors: dict[str, bytes]) -> None:
    exchange = ClientExchange()
    exchange.send_request(ControlCommand.LIST_TOPICS)
    [event] = exchange.receive_data(frame_vectors["commit_ack"])
    assert isinstance(event, ExchangeBroken)
    assert "cannot answer" in str(event.error)
    assert exchange.receive_data(TOPICS) == []  # a broken exchange reads nothing more


@pytest.mark.parametrize(
    "data",
    [build_ack_frame(9), TOPICS, error("Topic not found")],
    ids=["ack", "reply", "error"],
)
def test_what_nothing_waits_for_breaks_the_exchange(data: bytes) -> None:
    [event] = ClientExchange().receive_data(data)
    assert isinstance(event, ExchangeBroken)
    assert type(event.error) is ProtocolError


def test_a_corrupt_frame_breaks_after_the_frames_before_it(
    frame_vectors: dict[str, bytes],
) -> None:
    exchange = ClientExchange()
    batches(exchange, 7)
    corrupt = bytearray(TOPICS)
    corrupt[-1] ^= 0xFF
    events = exchange.receive_data(frame_vectors["ack_batch_7"] + bytes(corrupt))
    assert events[0] == BatchAcked(7)
    assert isinstance(events[1], ExchangeBroken)
    assert isinstance(events[1].error, InvalidFrameError)


def test_unsubscribe_is_answered_by_an_ack_with_the_consumer_id(
    frame_vectors: dict[str, bytes],
) -> None:
    exchange = ClientExchange()
    request_id, _ = exchange.send_request(ControlCommand.UNSUBSCRIBE, bytes(12), unsubscribe_id=42)
    with pytest.raises(ValueError, match="Unsubscribe"):
        exchange.send_batch(1, RECORD, batch_id=42, record_count=1)
    [event] = exchange.receive_data(frame_vectors["unsubscribe_reply"])
    assert isinstance(event, RequestAnswered)
    assert event.request_id == request_id
    assert event.frame.header.batch_id == 42
    batches(exchange, 42)  # free again once answered
    with pytest.raises(ValueError, match="in flight"):
        exchange.send_request(ControlCommand.UNSUBSCRIBE, bytes(12), unsubscribe_id=42)
    with pytest.raises(ValueError, match="already in flight"):
        batches(exchange, 42)


def test_keepalives_backpressure_and_unsolicited_echoes(frame_vectors: dict[str, bytes]) -> None:
    exchange = ClientExchange()
    ping_id, _ = exchange.send_keepalive()
    assert exchange.awaiting_echo
    events = exchange.receive_data(
        frame_vectors["keepalive"] + frame_vectors["backpressure"] + frame_vectors["keepalive"]
    )
    assert events == [KeepaliveSeen(ping_id), BackpressureSeen(), KeepaliveSeen(None)]
    assert not exchange.awaiting_echo
    assert exchange.data_to_send() == []  # a keepalive is never answered


# --- the ack barrier ----------------------------------------------------------------------------


def test_an_error_among_acks_refuses_exactly_its_batch(frame_vectors: dict[str, bytes]) -> None:
    exchange = ClientExchange()
    batches(exchange, 1, 2, 3, 4)
    # The real server: the error inline while reading the chunk, then the others' acks.
    chunk = frame_vectors["error_unknown_topic"] + b"".join(build_ack_frame(b) for b in (1, 2, 4))
    assert exchange.receive_data(chunk) == [BatchAcked(1), BatchAcked(2), BatchAcked(4)]
    [refused] = barrier(exchange)
    assert isinstance(refused, BatchRefused)
    assert refused.batch_id == 3
    assert isinstance(refused.error, TopicNotFoundError)
    assert refused.error.server_text == "Unknown topic"
    assert exchange.in_flight == 0
    assert exchange.data_to_send() == []


def test_an_overtaken_batch_without_an_error_is_never_acknowledged() -> None:
    exchange = ClientExchange()
    batches(exchange, 1, 2)
    assert exchange.receive_data(build_ack_frame(2)) == [BatchAcked(2)]
    [refused] = barrier(exchange)
    assert isinstance(refused, BatchRefused)
    assert refused.batch_id == 1
    assert isinstance(refused.error, ConnectionError)
    assert refused.error.retryable


def test_an_error_after_the_first_echo_belongs_to_the_next_barrier() -> None:
    exchange = ClientExchange()
    batches(exchange, 1)
    assert exchange.receive_data(error("Unknown topic")) == []
    assert exchange.data_to_send() == [KEEPALIVE_FRAME]
    batches(exchange, 2)  # sent after the first keepalive
    assert exchange.receive_data(KEEPALIVE_FRAME + error("Unknown topic")) == []
    assert exchange.data_to_send() == [KEEPALIVE_FRAME]
    [first] = exchange.receive_data(KEEPALIVE_FRAME)
    assert first == BatchRefused(1, first.error)  # type: ignore[union-attr]
    [second] = barrier(exchange)
    assert isinstance(second, BatchRefused)
    assert second.batch_id == 2


def test_more_errors_than_refused_batches_break_the_exchange() -> None:
    exchange = ClientExchange()
    batches(exchange, 1)
    exchange.receive_data(error("Unknown topic") + error("Unknown topic"))
    events = barrier(exchange)
    assert isinstance(events[-1], ExchangeBroken)
    assert "more ingest errors" in str(events[-1].error)


# --- placing an error when a request and a batch both wait -------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Topic 't' already exists", TopicAlreadyExistsError),
        ("Configuration error: Topic 5 not found", TopicNotFoundError),
        ("FORWARD_FAILED: Leader not ready (apply/metadata catch-up)", ForwardFailedError),
        ("a text no batch can get", Exception),
    ],
)
def test_a_control_only_text_goes_to_the_request(text: str, expected: type[Exception]) -> None:
    exchange = ClientExchange()
    batches(exchange, 1)
    request_id, _ = exchange.send_request(ControlCommand.CREATE_TOPIC, b"t")
    [event] = exchange.receive_data(error(text))
    assert isinstance(event, RequestFailed)
    assert event.request_id == request_id
    assert isinstance(event.error, expected)
    assert exchange.data_to_send() == []  # no barrier: the batch is untouched
    assert exchange.receive_data(build_ack_frame(1)) == [BatchAcked(1)]


@pytest.mark.parametrize(
    "text", ["Unknown topic", "FORWARD_FAILED: Unknown topic (metadata convergence)"]
)
def test_an_ingest_only_text_goes_to_the_batch_even_behind_a_request(text: str) -> None:
    exchange = ClientExchange()
    exchange.send_request(ControlCommand.LIST_TOPICS)
    batches(exchange, 1)
    assert exchange.receive_data(error(text)) == []
    [refused] = barrier(exchange)
    assert isinstance(refused, BatchRefused)
    assert refused.error.server_text == text


@pytest.mark.parametrize(
    "text",
    [
        "FORWARD_FAILED: Leader address unknown",
        "NOT_LEADER: x",
        "I/O error: No space left on device (os error 28)",
    ],
)
def test_a_text_both_can_get_goes_to_a_request_sent_before_every_batch(text: str) -> None:
    exchange = ClientExchange()
    request_id, _ = exchange.send_request(ControlCommand.LIST_TOPICS)
    batches(exchange, 1)
    [event] = exchange.receive_data(error(text))
    assert isinstance(event, RequestFailed)
    assert event.request_id == request_id
    assert exchange.data_to_send() == []


def test_a_follower_forward_failure_ahead_of_a_later_reply_goes_to_the_batch() -> None:
    """Issue 8: the follower fails the batch's forward at once, then answers the request."""
    exchange = ClientExchange()
    batches(exchange, 1)
    request_id, _ = exchange.send_request(ControlCommand.LIST_TOPICS)
    text = "FORWARD_FAILED: Failed to connect to leader: refused"
    # The reply is held until the barrier has confirmed where the error goes.
    assert exchange.receive_data(error(text) + TOPICS) == []
    refused, answered = barrier(exchange)
    assert isinstance(refused, BatchRefused)
    assert refused.batch_id == 1
    assert isinstance(refused.error, ForwardFailedError)
    assert isinstance(answered, RequestAnswered)
    assert answered.request_id == request_id


def test_a_disk_full_refusal_ahead_of_a_later_reply_goes_to_the_batch() -> None:
    """Issue 9.3: the write of a batch read earlier fails (disk full) before the server reads
    and answers a later request; the error is the batch's, the reply the request's."""
    exchange = ClientExchange()
    batches(exchange, 1)
    request_id, _ = exchange.send_request(ControlCommand.LIST_TOPICS)
    text = "I/O error: No space left on device (os error 28)"
    assert exchange.receive_data(error(text) + TOPICS) == []
    refused, answered = barrier(exchange)
    assert isinstance(refused, BatchRefused)
    assert refused.batch_id == 1
    assert isinstance(refused.error, ServerIOError)
    assert isinstance(answered, RequestAnswered)
    assert answered.request_id == request_id


def test_a_text_both_can_get_goes_back_to_the_request_when_the_batch_is_acked() -> None:
    """A leader that acks at the end of its read and answers the request inline."""
    exchange = ClientExchange()
    batches(exchange, 1)
    first, _ = exchange.send_request(ControlCommand.LIST_TOPICS)
    second, _ = exchange.send_request(ControlCommand.LIST_TOPICS)
    text = "NOT_LEADER: redirect to 10.0.0.2:1992"
    assert exchange.receive_data(error(text) + TOPICS + build_ack_frame(1)) == [BatchAcked(1)]
    failed, answered = barrier(exchange)
    assert isinstance(failed, RequestFailed)
    assert failed.request_id == first
    assert failed.error.server_text == text
    assert isinstance(answered, RequestAnswered)
    assert answered.request_id == second


def test_an_ingest_only_error_decides_where_a_tentative_one_goes() -> None:
    exchange = ClientExchange()
    batches(exchange, 1)
    request_id, _ = exchange.send_request(ControlCommand.LIST_TOPICS)
    exchange.receive_data(error("NOT_LEADER: x") + error("Unknown topic"))
    refused, failed = barrier(exchange)
    assert isinstance(refused, BatchRefused)
    assert refused.error.server_text == "Unknown topic"
    assert isinstance(failed, RequestFailed)
    assert failed.request_id == request_id
    assert failed.error.server_text == "NOT_LEADER: x"


def test_an_uncertain_placement_breaks_instead_of_shifting_answers() -> None:
    exchange = ClientExchange()
    batches(exchange, 1)
    exchange.send_request(ControlCommand.LIST_TOPICS)
    exchange.send_request(ControlCommand.LIST_TOPICS)
    # Two errors both sides can get and one refused batch: which one was the batch's?
    exchange.receive_data(error("NOT_LEADER: x") + error("NOT_LEADER: y") + TOPICS)
    events = barrier(exchange)
    assert len(events) == 1
    assert isinstance(events[0], ExchangeBroken)


# --- a pure model of the real server, for hypothesis ---------------------------------------------


FORWARD_TIMEOUT = "FORWARD_FAILED: Forward operation timed out"


def serve(data: bytes, refused: set[int], *, follower: bool = False) -> bytes:
    """The real server's replies to one read (PROTOCOL.md §2.7, §8).

    A leader writes errors and echoes inline, in the order read, then the acks of the read's
    accepted batches, in order. A follower forwards each batch as it reads it: the leader's
    ack, or `FORWARD_FAILED: ...`, goes out inline, before its reply to any later request.
    """
    inline: list[bytes] = []
    acks: list[bytes] = []
    for frame in FrameDecoder().feed(data):
        kind = frame.frame_type
        if kind is FrameType.KEEPALIVE:
            inline.append(KEEPALIVE_FRAME)
        elif kind is FrameType.INGEST:
            batch_id = frame.header.batch_id
            if batch_id in refused:
                inline.append(error(FORWARD_TIMEOUT if follower else "Unknown topic"))
            else:
                (inline if follower else acks).append(build_ack_frame(batch_id))
        else:
            inline.append(TOPICS)
    return b"".join(inline + acks)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(
    plan=st.lists(st.sampled_from(["ok", "refused", "request"]), min_size=1, max_size=12),
    reads=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
    follower=st.booleans(),
)
def test_every_batch_and_request_is_settled_exactly_once(
    plan: list[str], reads: list[int], cuts: list[int], follower: bool
) -> None:
    """Batches and requests in any order, read by a leader or a forwarding follower in any
    grouping and delivered in any chunking: each refused batch gets its error, every other
    batch its ack, every request its reply, in order, and nothing breaks."""
    exchange = ClientExchange()
    wire: list[bytes] = []
    expected: dict[int, bool] = {}
    requests: list[int] = []
    for index, step in enumerate(plan, start=1):
        if step == "request":
            request_id, frame = exchange.send_request(ControlCommand.LIST_TOPICS)
            requests.append(request_id)
            wire.append(frame)
        else:
            wire.extend(exchange.send_batch(1, RECORD, batch_id=index, record_count=1))
            expected[index] = step == "refused"
    refused = {batch_id for batch_id, is_refused in expected.items() if is_refused}
    events: list[Event] = []
    sizes = itertools.cycle(reads)
    while wire:
        take = min(next(sizes), len(wire))
        read, wire = b"".join(wire[:take]), wire[take:]
        for piece in chunks(serve(read, refused, follower=follower), cuts):
            events += exchange.receive_data(piece)
            wire += exchange.data_to_send()
    assert not any(isinstance(e, ExchangeBroken) for e in events)
    settled = {e.batch_id: isinstance(e, BatchRefused) for e in events if hasattr(e, "batch_id")}
    assert settled == expected
    assert len([e for e in events if hasattr(e, "batch_id")]) == len(expected)
    answered = [e.request_id for e in events if isinstance(e, RequestAnswered)]
    assert answered == requests
    for event in events:
        if isinstance(event, BatchRefused):
            assert event.error.server_text == (FORWARD_TIMEOUT if follower else "Unknown topic")
    assert exchange.in_flight == 0


def _frames(data: bytes) -> list[Frame]:
    return FrameDecoder().feed(data)


def test_the_model_server_answers_inline_before_acks() -> None:
    batch = b"".join(ClientExchange().send_batch(1, RECORD, batch_id=5, record_count=1))
    reply = _frames(serve(batch + KEEPALIVE_FRAME, set()))
    assert [f.frame_type for f in reply] == [FrameType.KEEPALIVE, FrameType.ACK]
