"""The lnc-client pytest plugin, run inside inner pytest sessions (`pytester`).

The inner sessions load the plugin the way a user's do: through its `pytest11` entry point.
"""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_asyncio_fixtures_produce_and_consume(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from lnc_client import LanceClient, Producer, StandaloneConsumer

        async def test_round_trip(lance_client, lance_producer, lance_consumer, lance_topic):
            assert isinstance(lance_client, LanceClient)
            assert isinstance(lance_producer, Producer)
            assert isinstance(lance_consumer, StandaloneConsumer)
            assert lance_topic.name == "test-round-trip"
            assert [t.name for t in await lance_client.list_topics()] == [lance_topic.name]
            await lance_producer.send(lance_topic.name, b"hello")
            result = await lance_consumer.poll(timeout=2)
            assert [bytes(r.value) for r in result.records] == [b"hello"]

        async def test_each_test_gets_a_fresh_server(lance_client):
            assert await lance_client.list_topics() == []
        """,
    )
    result.assert_outcomes(passed=2)


def test_blocking_fixtures_and_server_options(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from lnc_client import AuthenticationError, ClientConfig
        from lnc_client.sync import LanceClient

        @pytest.fixture
        def lance_server_options():
            return {"auth_tokens": ["sesame"]}

        def test_blocking(lance_server, lance_sync_producer, lance_sync_consumer, lance_topic):
            assert lance_server.host == "127.0.0.1" and lance_server.port > 0
            lance_sync_producer.send(lance_topic.id, b"x")
            assert lance_sync_consumer.poll(2).records[0].value == b"x"

        def test_token_required(lance_server):
            config = ClientConfig(host=lance_server.host, port=lance_server.port,
                                  auth_token="wrong", auto_reconnect=False)
            with pytest.raises(AuthenticationError):
                LanceClient(config).connect()
        """,
    )
    result.assert_outcomes(passed=2)


def test_servers_are_stopped_and_their_data_kept_in_tmp(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import socket
        import pytest

        seen = {}

        def test_first(lance_server):
            seen["port"] = lance_server.port
            seen["dir"] = lance_server.data_dir

        def test_port_closed_after(lance_server):
            assert str(seen["dir"]).startswith(str(lance_server.data_dir.parent.parent))
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", seen["port"]), timeout=1).close()
        """,
    )
    result.assert_outcomes(passed=2)


def test_fixtures_are_listed_with_their_help(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    listed = result.stdout.str()
    for name in (
        "lance_server",
        "lance_server_options",
        "lance_topic",
        "lance_client",
        "lance_producer",
        "lance_consumer",
        "lance_sync_client",
        "lance_sync_producer",
        "lance_sync_consumer",
    ):
        assert f"\n{name} -- " in listed, name
    assert "A fresh embedded Lance server" in listed


def test_fault_proxy_fixture_exists_exactly_when_the_fault_proxy_does(
    pytester: pytest.Pytester,
) -> None:
    try:
        from lnc_client.testing.fault_proxy import FaultProxy  # noqa: F401
    except ImportError:
        available = False
    else:
        available = True
    result = run(
        pytester,
        """
        from lnc_client import LanceClient

        async def test_proxy(fault_proxy):
            async with LanceClient(fault_proxy.address) as client:  # through the proxy
                assert await client.list_topics() == []
        """,
    )
    if available:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*fixture 'fault_proxy' not found*"])
