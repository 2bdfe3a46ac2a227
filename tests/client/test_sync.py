"""The blocking API (`lnc_client.sync`) against an embedded server in its own thread."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import lnc_client
from lnc_client import (
    ClientConfig,
    ConnectionState,
    LanceError,
    MemoryOffsetStore,
    ProducerConfig,
    SendAck,
    StandaloneConfig,
    TlvRecord,
    TopicNotFoundError,
    sync,
)
from lnc_client.serde import JSON
from lnc_client.server import ServerThread
from lnc_client.sync import (
    DeserializingConsumer,
    LanceClient,
    Producer,
    SerializingProducer,
    StandaloneConsumer,
    StreamingConsumer,
    shutdown,
)

from ..helpers import run_python


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(tmp_path / "data", port=0) as running:
        yield running


def client_config(server: ServerThread) -> ClientConfig:
    return ClientConfig(host=server.host, port=server.port)


def test_admin_produce_consume_round_trip(server: ServerThread) -> None:
    with LanceClient(client_config(server)) as client:
        topic = client.create_topic("events")
        assert [t.name for t in client.list_topics()] == ["events"]
        with pytest.raises(TopicNotFoundError):
            client.get_topic("missing")
    with Producer(server.address, ProducerConfig(linger_ms=1)) as producer:
        assert producer.send("events", b"first") >= 1
        producer.send_async(topic_id=topic.id, data=b"second")
        producer.send_batch("events", [b"third", b"fourth"])
        producer.flush()
        assert producer.metrics().records_acked == 4
    config = StandaloneConfig("reader", topic_name="events", poll_timeout_s=0.05)
    with StandaloneConsumer(server.address, config) as consumer:
        values = [bytes(record.value) for record in consumer.records(limit=4)]
        assert values == [b"first", b"second", b"third", b"fourth"]
        assert consumer.lag == 0
        consumer.rewind()
        assert consumer.current_offset == 0
        assert consumer.commit() == 0
    assert consumer.closed


def test_one_producer_shared_by_threads(server: ServerThread) -> None:
    producer, topic_id = Producer.connect_for_topic(server.address, "shared")
    errors: list[BaseException] = []

    def send_many(worker: int) -> None:
        try:
            for n in range(50):
                producer.send_async(topic_id, f"{worker}-{n}".encode())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    producer.close()
    assert errors == []
    with LanceClient(client_config(server)) as client:
        fetched = client.fetch(topic_id, 0, 1 << 20)
    values = {bytes(r.value) for r in lnc_client.decode_records(bytes(fetched.data))}
    assert values == {f"{w}-{n}".encode() for w in range(4) for n in range(50)}


def test_polls_from_two_threads_take_turns(server: ServerThread) -> None:
    with Producer(server.address) as producer:
        producer.send_batch(producer.resolve_topic("turns", create=True), [b"x"] * 10)
    config = StandaloneConfig("turns-reader", topic_name="turns")
    with StandaloneConsumer.connect(server.address, config) as consumer:
        seen: list[int] = []
        errors: list[BaseException] = []

        def poll_some() -> None:
            try:
                for _ in range(3):
                    result = consumer.poll(0.05)
                    seen.append(0 if result is None else len(result.records))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=poll_some) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(seen) == 10


def test_async_objects_refuse_plain_with_and_point_to_sync() -> None:
    with (
        pytest.raises(TypeError, match=r"async with LanceClient.*lnc_client\.sync\.LanceClient"),
        lnc_client.LanceClient(),
    ):
        pass


def test_callbacks_may_not_call_back_into_the_blocking_api(server: ServerThread) -> None:
    with Producer(server.address) as producer:
        topic_id = producer.resolve_topic("cb", create=True)
        outcome: list[BaseException] = []
        done = threading.Event()

        def callback(ack: object, error: object) -> None:
            try:
                producer.flush()
            except RuntimeError as refused:
                outcome.append(refused)
            done.set()

        producer.send_nowait(topic_id, b"x", callback=callback)
        producer.flush()
        assert done.wait(5)
        assert "loop thread" in str(outcome[0])


def test_open_producer_is_flushed_and_closed_at_interpreter_exit(server: ServerThread) -> None:
    with LanceClient(client_config(server)) as client:
        topic = client.create_topic("at-exit")
    script = (
        "from lnc_client import ProducerConfig\n"
        "from lnc_client.sync import Producer\n"
        f"producer = Producer.connect({server.address!r}, ProducerConfig(linger_ms=600_000))\n"
        f"producer.send_async({topic.id}, b'flushed at exit')\n"
        "print('exiting without close')\n"
    )
    done = run_python(script)
    assert (done.returncode, done.stderr) == (0, "")
    with LanceClient(client_config(server)) as client:
        assert bytes(client.fetch(topic.id, 0, 100).data).endswith(b"flushed at exit")


def test_shutdown_closes_open_objects_and_a_new_loop_starts_after(server: ServerThread) -> None:
    producer = Producer.connect(server.address, ProducerConfig(linger_ms=600_000))
    topic_id = producer.resolve_topic("shutdown", create=True)
    producer.send_async(topic_id, b"flushed by shutdown")
    shutdown()
    assert producer.closed
    with LanceClient(client_config(server)) as client:
        assert bytes(client.fetch(topic_id, 0, 100).data).endswith(b"flushed by shutdown")


def test_a_client_that_connected_on_first_use_is_closed_by_shutdown(
    server: ServerThread,
) -> None:
    client = LanceClient(client_config(server))
    client.list_topics()  # connects on first use, without connect() or with
    shutdown()
    assert client.connection_state is ConnectionState.CLOSED


def test_a_call_waiting_when_the_loop_shuts_down_is_released_with_an_error() -> None:
    """Its loop stops: without the release its caller would wait for ever."""
    runner = sync._LoopThread()
    outcome: list[BaseException] = []

    def caller() -> None:
        try:
            runner.run(asyncio.sleep(3600))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=caller)
    thread.start()
    while not runner._calls:
        threading.Event().wait(0.01)
    runner.shutdown()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], lnc_client.ConnectionError)
    assert "shut down" in str(outcome[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_a_loop_of_its_own(server: ServerThread) -> None:
    with LanceClient(client_config(server)) as client:
        client.create_topic("forked")  # the parent's loop thread is running now
        with warnings.catch_warnings():  # 3.12 warns about forking a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: without a loop of its own this would hang
            code = 1
            try:
                with LanceClient(client_config(server)) as child:
                    code = 0 if [t.name for t in child.list_topics()] == ["forked"] else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --- record loops: limit, break, exception, close and seek, as in asyncio ----------------------


def produce_one_batch(server: ServerThread, topic: str, *values: bytes) -> int:
    """Send `values` as one batch; return the topic id."""
    with Producer(server.address) as producer:
        topic_id = producer.resolve_topic(topic, create=True)
        producer.send_batch(topic_id, list(values))
    return topic_id


def reader(topic: str) -> StandaloneConfig:
    return StandaloneConfig("solo", topic_name=topic, poll_timeout_s=0.05)


def test_records_limit_and_break_leave_the_rest_of_the_batch_for_later(
    server: ServerThread,
) -> None:
    produce_one_batch(server, "loop", b"r0", b"r1", b"r2", b"r3")
    store = MemoryOffsetStore()

    def take(limit: int | None) -> list[bytes]:
        with StandaloneConsumer(server.address, reader("loop"), store) as consumer:
            got = []
            for record in consumer.records(limit=limit):
                got.append(bytes(record.value))
                if limit is None:
                    break
            return got

    assert take(2) == [b"r0", b"r1"]
    assert take(None) == [b"r2"]  # the record it broke on was not finished: delivered again
    assert take(2) == [b"r2", b"r3"]
    assert take(0) == []


def test_an_exception_in_a_record_loop_does_not_commit_the_unprocessed_records(
    server: ServerThread,
) -> None:
    produce_one_batch(server, "boom", b"ok", b"fails", b"later")
    store = MemoryOffsetStore()

    def process_all() -> None:
        with StandaloneConsumer(server.address, reader("boom"), store) as consumer:
            for record in consumer:
                if record.value == b"fails":
                    raise ValueError("fails")

    with pytest.raises(ValueError, match="fails"):
        process_all()
    with StandaloneConsumer(server.address, reader("boom"), store) as again:
        assert [bytes(r.value) for r in again.records(limit=2)] == [b"fails", b"later"]


def test_close_steps_back_for_a_record_loop_that_is_still_open(server: ServerThread) -> None:
    produce_one_batch(server, "open-loop", b"a", b"b", b"c")
    consumer = StandaloneConsumer.connect(server.address, reader("open-loop"))
    loop = consumer.records()
    first = next(loop)
    assert next(loop).value == b"b"  # handed out, not finished
    consumer.close()  # the generator is still alive: close() itself steps back
    assert consumer.committed_offset == first.total_size
    loop.close()


def test_an_explicit_seek_wins_over_the_step_back(server: ServerThread) -> None:
    produce_one_batch(server, "seek-wins", b"a", b"b", b"c")
    with StandaloneConsumer(server.address, reader("seek-wins")) as consumer:
        loop = consumer.records()
        next(loop)
        end = consumer.seek_to_end_now()
        assert end > 0
    assert consumer.committed_offset == end
    loop.close()


def test_batches_limit(server: ServerThread) -> None:
    produce_one_batch(server, "batches", b"x")
    produce_one_batch(server, "batches", b"y")
    with StandaloneConsumer(server.address, reader("batches")) as consumer:
        got = [[bytes(r.value) for r in batch.records] for batch in consumer.batches(limit=1)]
        assert got in ([[b"x"]], [[b"x", b"y"]])
        assert len(list(consumer.batches(limit=0))) == 0


def test_at_exit_a_consumer_left_inside_a_batch_commits_only_what_was_processed(
    server: ServerThread, tmp_path: Path
) -> None:
    produce_one_batch(server, "exit-loop", b"a", b"b", b"c")
    offsets = tmp_path / "offsets"
    script = (
        "from lnc_client import StandaloneConfig\n"
        "from lnc_client.sync import StandaloneConsumer\n"
        f"config = StandaloneConfig('solo', topic_name='exit-loop', offset_dir={str(offsets)!r})\n"
        f"consumer = StandaloneConsumer.connect({server.address!r}, config)\n"
        "loop = iter(consumer)\n"
        "assert next(loop).value == b'a' and next(loop).value == b'b'\n"
    )
    done = run_python(script)
    assert (done.returncode, done.stderr) == (0, "")
    config = StandaloneConfig("solo", topic_name="exit-loop", offset_dir=offsets)
    with StandaloneConsumer(server.address, config) as again:
        assert [bytes(r.value) for r in again.records(limit=2)] == [b"b", b"c"]


# --- send_handle and serializers ----------------------------------------------------------------


def test_send_handle_blocks_for_its_ack(server: ServerThread) -> None:
    with Producer(server.address, ProducerConfig(linger_ms=600_000)) as producer:
        topic_id = producer.resolve_topic("handles", create=True)
        first = producer.send_handle(topic_id, b"one")
        second = producer.send_handle("handles", b"two")
        assert not second.done()
        with pytest.raises(asyncio.InvalidStateError):
            second.result()
        producer.flush()
        assert second.done()
        assert second.exception() is None
        # A lone record leaves at once (linger only gathers behind a batch in flight), so the
        # second record is the first of the next batch, or the second of the same one.
        position = 1 if second.batch_id == first.batch_id else 0
        assert second.wait(5) == second.result() == SendAck(second.batch_id, topic_id, position)
        assert first.wait() == SendAck(first.batch_id, topic_id, 0)


def test_send_handle_reports_a_failed_batch(server: ServerThread) -> None:
    with Producer(server.address) as producer:
        handle = producer.send_handle(999_999, b"nowhere")
        with pytest.raises(LanceError):
            handle.wait(5)
        assert isinstance(handle.exception(), LanceError)


def test_serializing_producer_and_deserializing_consumer(server: ServerThread) -> None:
    with Producer(server.address) as producer:
        producer.resolve_topic("objects", create=True)
        objects = SerializingProducer(producer, JSON)
        assert objects.record({"n": 0}) == TlvRecord.json({"n": 0})
        objects.send("objects", {"n": 1}, key="k1")
        objects.send_async("objects", {"n": 2}, timestamp_ns=7)
        objects.send_batch("objects", [{"n": 3}, {"n": 4}])
        producer.flush()
    store = MemoryOffsetStore()
    with StandaloneConsumer(server.address, reader("objects"), store) as consumer:
        decoding = DeserializingConsumer(consumer, JSON)
        messages = []
        for message in decoding:
            messages.append(message)
            if message.value == {"n": 3}:
                break  # inside the last batch: {"n": 3} and {"n": 4} stay for later
        assert [(m.key, m.value, m.timestamp_ns) for m in messages] == [
            ("k1", {"n": 1}, None),
            (None, {"n": 2}, 7),
            (None, {"n": 3}, None),
        ]
    with StandaloneConsumer(server.address, reader("objects"), store) as consumer:
        decoding = DeserializingConsumer(consumer, JSON)
        values = decoding.values()
        assert [next(values), next(values)] == [{"n": 3}, {"n": 4}]
        consumer.rewind()
        batch = consumer.poll(5)
        assert batch is not None
        assert decoding.decode(batch)[0].value == {"n": 1}


def test_streaming_consumer_resumes_from_the_server_side_commit(server: ServerThread) -> None:
    produce_one_batch(server, "stream", b"s0", b"s1", b"s2")

    def take(limit: int) -> list[bytes]:
        consumer = StreamingConsumer.connect(server.address, reader("stream"))
        try:
            return [bytes(record.value) for record in consumer.records(limit=limit)]
        finally:
            consumer.stop()

    assert take(2) == [b"s0", b"s1"]  # no offset store: the server's commit is the only one
    assert take(1) == [b"s2"]
    with pytest.raises(ValueError, match="consumer_name"):
        StreamingConsumer(server.address, StandaloneConfig(topic_name="stream"))


def test_connection_state_and_its_listener(server: ServerThread) -> None:
    seen: list[ConnectionState] = []
    with Producer(server.address) as producer:
        assert producer.connection_state is ConnectionState.CONNECTED
        producer.on_connection_state(seen.append)
    assert producer.connection_state is ConnectionState.CLOSED
    assert seen[-1] is ConnectionState.CLOSED
