"""One way to say things: the same address forms, TLS/token options and send keywords everywhere."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from lnc_client import (
    ClientConfig,
    LanceClient,
    Producer,
    ProducerConfig,
    StandaloneConfig,
    StandaloneConsumer,
    sync,
)
from lnc_client.protocol.control import TopicInfo
from lnc_client.server import ServerThread

from .conftest import start_server

SEND_METHODS = [
    "send",
    "send_async",
    "send_nowait",
    "send_handle",
    "send_batch",
    "send_batch_async",
]


@pytest.mark.parametrize("name", SEND_METHODS)
def test_every_send_method_takes_the_same_topic_keywords(name: str) -> None:
    parameters = inspect.signature(getattr(Producer, name)).parameters
    assert list(parameters)[1] == "topic"
    for keyword in ("topic_id", "record_type"):
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY, keyword


async def test_send_nowait_takes_topic_id(lance_producer: Producer, lance_topic: TopicInfo) -> None:
    acks: list[object] = []
    lance_producer.send_nowait(
        topic_id=lance_topic.id, data=b"a", callback=lambda a, e: acks.append(e)
    )
    lance_producer.send_nowait(lance_topic.id, b"b", topic_id=lance_topic.id)
    await lance_producer.flush()
    assert acks == [None]
    with pytest.raises(ValueError, match="give the topic once"):
        lance_producer.send_nowait(lance_topic.id + 1, b"c", topic_id=lance_topic.id)


@pytest.mark.parametrize("config_class", [ClientConfig, ProducerConfig, StandaloneConfig])
def test_every_config_has_the_same_tls_and_token_options(config_class: type) -> None:
    names = {field.name for field in fields(config_class)}
    assert {"ssl_context", "server_hostname", "auth_token", "seeds"} <= names
    for builder in ("with_ssl", "with_auth_token", "with_connect_timeout", "with_reconnect"):
        assert callable(getattr(config_class, builder)), builder


def test_admin_client_takes_the_address_forms() -> None:
    assert LanceClient("10.0.0.1").config.address == "10.0.0.1:1992"
    assert LanceClient("[::1]:7000").config.address == "[::1]:7000"
    seeded = LanceClient(["a:1", "[::1]:2"], ClientConfig(seeds=("c:3",)))
    assert seeded.config.address == "a:1"
    assert seeded.config.seeds == ("[::1]:2", "c:3")
    assert LanceClient(ClientConfig(host="h", port=9)).config.address == "h:9"  # 0.2.9 form
    with pytest.raises(TypeError, match="once"):
        LanceClient(ClientConfig(), ClientConfig())
    with pytest.raises(ValueError, match="no server address"):
        LanceClient([])


async def test_each_connected_object_fails_over_along_a_list_of_seeds(tmp_path: Path) -> None:
    dead = "127.0.0.1:1"  # nothing listens on port 1
    async with start_server(tmp_path / "data") as server:
        seeds = [dead, server.address]
        async with LanceClient(seeds, ClientConfig(connect_timeout_s=5)) as client:
            topic = await client.create_topic("seeds")
        async with Producer(seeds) as producer:
            await producer.send(topic_id=topic.id, data=b"x")
        config = StandaloneConfig("seeds", topic_name="seeds")
        async with StandaloneConsumer(seeds, config) as consumer:
            result = await consumer.poll(timeout=2)
            assert result is not None
            assert result.records[0].value == b"x"


def test_ipv6_and_bare_forms_reach_a_server(tmp_path: Path) -> None:
    try:
        server = ServerThread(tmp_path / "data", host="::1", port=0).start()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        address = f"[::1]:{server.port}"
        with sync.LanceClient(address) as client:
            topic = client.create_topic("v6")
        with sync.Producer(address) as producer:
            producer.send(topic_id=topic.id, data=b"over v6")
        with sync.StandaloneConsumer([address], StandaloneConfig("v6", topic_id=topic.id)) as c:
            assert c.poll(2).records[0].value == b"over v6"
    finally:
        server.stop()
