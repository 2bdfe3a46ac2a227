"""The blocking API (`lnc_client.sync`) against an embedded server in its own thread."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import lnc_client
from lnc_client import ClientConfig, ProducerConfig, StandaloneConfig, TopicNotFoundError
from lnc_client.server import ServerThread
from lnc_client.sync import LanceClient, Producer, StandaloneConsumer, shutdown

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
        values = []
        for record in consumer:
            values.append(bytes(record.value))
            if len(values) == 4:
                break
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
