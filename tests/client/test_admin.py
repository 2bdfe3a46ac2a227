"""LanceClient against the embedded server: every public method, with exact values.

Each test starts a `LanceServer` on 127.0.0.1 with an ephemeral port in a fresh data directory,
so topic ids start at 1 and results can be compared exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from lnc_client.admin import NO_LIMIT, LanceClient
from lnc_client.config import ClientConfig, ReconnectConfig, parse_address
from lnc_client.errors import (
    AuthenticationError,
    ConnectionError,
    InvalidTopicNameError,
    ServerCatchingUpError,
    TimeoutError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
)
from lnc_client.protocol.control import CommitAck, RetentionInfo, SubscribeAck, TopicInfo
from lnc_client.server import LanceServer

from .conftest import ServerUnderTest, TcpProxy, start_server

T = TypeVar("T")


def _config(address: str, **changes: object) -> ClientConfig:
    parsed = parse_address(address)
    values: dict[str, object] = {
        "connect_timeout_s": 2.0,
        "request_timeout_s": 2.0,
        "reconnect": ReconnectConfig(base_delay_ms=10, max_delay_ms=100),
        **changes,
    }
    return ClientConfig(host=parsed.host, port=parsed.port, **values)  # type: ignore[arg-type]


@pytest.fixture
async def admin_server(tmp_path: Path) -> AsyncIterator[ServerUnderTest]:
    async with start_server(tmp_path / "data") as server:
        yield server


@pytest.fixture
async def admin(admin_server: LanceServer) -> AsyncIterator[LanceClient]:
    async with LanceClient(_config(admin_server.address)) as client:
        yield client


async def test_contract_example_runs_verbatim(admin_server: LanceServer) -> None:
    async with LanceClient(_config(admin_server.address)) as client:
        topics = await client.list_topics()
        topic = await client.create_topic("my-events")
        logs = await client.create_topic_with_retention(
            "logs", max_age_secs=7 * 86400, max_bytes=1024**3
        )
        result = await client.set_retention(topic["id"], max_age_secs=86400)
        by_attribute = await client.set_retention(topic.id, max_age_secs=3600)
    assert topics == []
    assert (topic.id, topic.name, topic.topic_epoch) == (1, "my-events", 1)
    assert (logs.id, logs.name) == (2, "logs")
    assert logs.retention == RetentionInfo(7 * 86400, 1024**3)
    assert result.name == "my-events"
    assert result.retention == RetentionInfo(86400, NO_LIMIT)
    assert by_attribute.retention == RetentionInfo(3600, NO_LIMIT)


async def test_create_topic_is_ensure(admin: LanceClient) -> None:
    first = await admin.create_topic("orders")
    again = await admin.create_topic("orders")
    assert first == again
    assert first.id == 1
    with pytest.raises(TopicAlreadyExistsError) as caught:
        await admin.create_topic_once("orders")
    assert caught.value.server_text == "Topic 'orders' already exists"
    assert (await admin.ensure_topic("orders", max_attempts=1)).id == 1
    assert (await admin.ensure_topic_default("payments")).id == 2
    assert [t.name for t in await admin.list_topics()] == ["orders", "payments"]


async def test_ensure_topic_rejects_bad_arguments(admin: LanceClient) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        await admin.ensure_topic("ok", max_attempts=0)


@pytest.mark.ours_only("reads lnc serve's connection counter")
@pytest.mark.parametrize("name", ["", "has_underscore", "has space", "dot.ted", "ünï"])
async def test_topic_names_checked_before_sending(admin_server: LanceServer, name: str) -> None:
    client = LanceClient(_config(admin_server.address))
    for call in (
        client.create_topic,
        client.create_topic_once,
        client.ensure_topic,
        client.get_topic_by_name,
        client.resolve_topic_id,
    ):
        with pytest.raises(InvalidTopicNameError):
            await call(name)
    with pytest.raises(InvalidTopicNameError):
        await client.create_topic_with_retention(name, max_bytes=1)
    assert client.reconnects == 0
    assert admin_server.connection_count == 0
    await client.close()


async def test_get_topic_by_id_name_and_info(admin: LanceClient) -> None:
    created = await admin.create_topic("alpha")
    assert await admin.get_topic(created.id) == created
    assert await admin.get_topic("alpha") == created
    assert await admin.get_topic(created) == created
    assert await admin.get_topic_by_name("alpha") == created
    assert await admin.resolve_topic_id("alpha") == created.id
    assert await admin.topic_id(created) == created.id


async def test_missing_topics(admin: LanceClient) -> None:
    with pytest.raises(TopicNotFoundError) as by_id:
        await admin.get_topic(99999)
    assert by_id.value.server_text == "Topic not found"
    with pytest.raises(TopicNotFoundError) as by_name:
        await admin.get_topic_by_name("nope")
    assert by_name.value.topic_id == "nope"
    with pytest.raises(TopicNotFoundError) as deleting:
        await admin.delete_topic(42)
    assert deleting.value.server_text == "Configuration error: Topic 42 not found"
    with pytest.raises(TopicNotFoundError):
        await admin.set_retention(7, max_bytes=10)


async def test_delete_topic(admin: LanceClient) -> None:
    a = await admin.create_topic("a")
    b = await admin.create_topic("b")
    assert await admin.delete_topic("a") == a.id
    assert await admin.list_topics() == [b]
    assert await admin.delete_topic(b) == b.id
    assert await admin.list_topics() == []


async def test_retention_omitted_limits_are_unlimited(admin: LanceClient) -> None:
    topic = await admin.create_topic("ret")
    both = await admin.set_retention(topic, max_age_secs=10, max_bytes=20)
    assert both == TopicInfo(topic.id, "ret", topic.created_at, 1, retention=RetentionInfo(10, 20))
    only_bytes = await admin.set_retention("ret", max_bytes=0)
    assert only_bytes.retention == RetentionInfo(NO_LIMIT, 0)
    neither = await admin.set_retention(topic.id)
    assert neither.retention == RetentionInfo(NO_LIMIT, NO_LIMIT)
    created = await admin.create_topic_with_retention("ret2", max_bytes=5)
    assert created.retention == RetentionInfo(NO_LIMIT, 5)
    with pytest.raises(TopicAlreadyExistsError):
        await admin.create_topic_with_retention("ret2")
    with pytest.raises(ValueError, match="max_age_secs"):
        await admin.set_retention(topic, max_age_secs=-1)
    with pytest.raises(ValueError, match="max_bytes"):
        await admin.set_retention(topic, max_bytes=NO_LIMIT + 1)


async def test_cluster_status_and_ping(admin: LanceClient) -> None:
    status = await admin.get_cluster_status()
    assert status.is_standalone
    assert (status.node_id, status.is_leader, status.leader_id) == (0, True, 0)
    assert (status.node_count, status.healthy_nodes, status.quorum_available) == (1, 1, True)
    assert dict(status.peer_states) == {}
    rtt = await admin.ping()
    assert 0.0 < rtt < 2.0


async def test_subscribe_commit_unsubscribe(admin: LanceClient) -> None:
    topic = await admin.create_topic("subs")
    assert await admin.subscribe(topic, 0, 65536, 42) == SubscribeAck(42, 0)
    assert await admin.commit_offset("subs", 42, 1000) == CommitAck(42, 1000)
    assert await admin.subscribe(topic.id, 0, 65536, 42) == SubscribeAck(42, 1000)
    assert await admin.subscribe(topic.id, NO_LIMIT, 0, 43) == SubscribeAck(43, NO_LIMIT)
    assert await admin.unsubscribe(topic, 42) is None
    with pytest.raises(TopicNotFoundError):
        await admin.subscribe(999, 0, 1, 1)
    with pytest.raises(ValueError, match="consumer_id"):
        await admin.commit_offset(topic, -1, 0)


async def test_fetch_and_end_offset(admin: LanceClient) -> None:
    topic = await admin.create_topic("data")
    assert await admin.end_offset(topic) == 0
    result = await admin.fetch(topic, 0, 1024)
    assert (result.next_offset, bytes(result.data)) == (0, b"")
    with pytest.raises(ServerCatchingUpError) as caught:
        await admin.fetch(topic, 100, 1024)
    assert caught.value.server_offset == 0
    with pytest.raises(ValueError, match="max_bytes"):
        await admin.fetch(topic, 0, 0)


async def test_reconnects_after_server_restart(admin_server: LanceServer) -> None:
    async with LanceClient(_config(admin_server.address)) as client:
        await client.create_topic("keep")
        await admin_server.restart()
        assert [t.name for t in await client.list_topics()] == ["keep"]
        assert client.reconnects == 1


async def test_closed_client_refuses(admin_server: LanceServer) -> None:
    client = await LanceClient(_config(admin_server.address)).connect()
    await client.close()
    with pytest.raises(ConnectionError, match="closed"):
        await client.list_topics()


async def test_connect_to_dead_port_fails_within_timeout(tmp_path: Path) -> None:
    async with start_server(tmp_path / "d") as server:
        address = server.address
    config = _config(address, auto_reconnect=False)
    with pytest.raises(ConnectionError):
        await LanceClient(config).connect()


@pytest.mark.ours_only("starts lnc serve with auth tokens")
async def test_auth_token(tmp_path: Path) -> None:
    async with LanceServer(tmp_path / "d", port=0, auth_tokens=["s3cret"]) as server:
        good = LanceClient(_config(server.address, auth_token="s3cret"))
        assert (await (await good.connect()).create_topic("authd")).id == 1
        await good.close()
        bad = LanceClient(_config(server.address, auth_token="wrong"))
        with pytest.raises(AuthenticationError) as caught:
            await bad.connect()
        assert caught.value.server_text == "Invalid token"
        await bad.close()


async def answer_lost(
    proxy: TcpProxy,
    server: LanceServer,
    call: Awaitable[T],
    applied: Callable[[list[TopicInfo]], bool],
) -> T:
    """Run `call` so that the server applies its request but the answer is lost with the
    connection (cut while the proxy holds it back): the client retries on a new connection."""
    proxy.delay_s = 0.5
    task = asyncio.ensure_future(call)
    async with LanceClient(_config(server.address)) as direct:
        async with asyncio.timeout(2):
            while not applied(await direct.list_topics()):
                await asyncio.sleep(0.01)
    proxy.cut()
    proxy.delay_s = 0.0
    return await task


async def test_non_idempotent_calls_retried_after_a_lost_answer_succeed(
    admin_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    relay = await proxy(admin_server.address)
    async with LanceClient(_config(relay.address)) as client:

        def named(name: str) -> Callable[[list[TopicInfo]], bool]:
            return lambda topics: any(t.name == name for t in topics)

        created = await answer_lost(relay, admin_server, client.create_topic_once("a"), named("a"))
        assert (created.id, created.name) == (1, "a")
        logs = await answer_lost(
            relay,
            admin_server,
            client.create_topic_with_retention("logs", max_age_secs=60, max_bytes=4096),
            named("logs"),
        )
        assert (logs.id, logs.name, logs.retention) == (2, "logs", RetentionInfo(60, 4096))
        deleted = await answer_lost(
            relay, admin_server, client.delete_topic("a"), lambda topics: not named("a")(topics)
        )
        assert deleted == 1
        assert client.reconnects == 3
        with pytest.raises(TopicAlreadyExistsError):
            await client.create_topic_once("logs")  # a first attempt still reports it
        with pytest.raises(TopicNotFoundError):
            await client.delete_topic(1)


async def test_a_call_of_several_requests_has_one_deadline(
    admin_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    relay = await proxy(admin_server.address)
    async with LanceClient(_config(relay.address, request_timeout_s=0.3)) as client:
        await client.create_topic("slow")
        relay.delay_s = 0.2  # each answer fits the timeout; a lookup and an update do not
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.set_retention("slow", max_age_secs=60)
        assert loop.time() - started < 0.38


async def test_concurrent_ensure_topic_all_get_the_one_topic(admin_server: LanceServer) -> None:
    """Losers of the race get "Topic 'x' already exists" (real lance: sometimes wrapped as
    "Configuration error: ..."): each takes it as "exists" and returns the winner's topic."""
    clients = [await LanceClient(_config(admin_server.address)).connect() for _ in range(8)]
    try:
        topics = await asyncio.gather(*(c.ensure_topic("raced") for c in clients))
    finally:
        for client in clients:
            await client.close()
    assert len({(t.id, t.name) for t in topics}) == 1
