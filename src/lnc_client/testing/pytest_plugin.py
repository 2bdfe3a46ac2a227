"""The lnc-client pytest plugin: an embedded Lance server and connected clients as fixtures.

Installed lnc-client registers this module with pytest (entry point `pytest11`), so a test
only names the fixtures it wants:

* `lance_server`: a fresh embedded server (`ServerThread`) on 127.0.0.1, on an ephemeral port,
  with its data in the test's temporary directory; stopped after the test. Override the
  `lance_server_options` fixture to pass server options (auth tokens, faults, ...); the
  connected fixtures present the first of its `auth_tokens`.
* `lance_topic`: a new topic on that server, named after the test (a `TopicInfo`).
* `lance_client`, `lance_producer`, `lance_consumer`: the asyncio `LanceClient`, `Producer`
  and `StandaloneConsumer` (reading `lance_topic` from the beginning), connected to
  `lance_server` and closed after the test. They need pytest-asyncio (async fixtures).
* `lance_sync_client`, `lance_sync_producer`, `lance_sync_consumer`: the same from
  `lnc_client.sync`, for plain (blocking) tests.
* `fault_proxy`: when `lnc_client.testing.fault_proxy.FaultProxy` is available, a fault proxy in
  front of `lance_server` (connect to its `address` to go through it).

Data flow: the server runs on its own thread and event loop, so it serves blocking tests and
asyncio tests alike; the asyncio fixtures run on the test's event loop, the blocking ones on
`lnc_client.sync`'s background loop.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

import pytest

from lnc_client import sync
from lnc_client.admin import LanceClient
from lnc_client.config import ClientConfig, ProducerConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.producer import Producer
from lnc_client.protocol.control import TopicInfo
from lnc_client.server import ServerOptions, ServerThread

__all__ = [
    "lance_client",
    "lance_consumer",
    "lance_producer",
    "lance_server",
    "lance_server_options",
    "lance_sync_client",
    "lance_sync_consumer",
    "lance_sync_producer",
    "lance_topic",
]

F = TypeVar("F", bound=Callable[..., object])


def _async_fixture(function: F) -> F:
    """Register an async fixture with pytest-asyncio; without it, one that says what to install."""
    try:
        import pytest_asyncio
    except ImportError:
        name = function.__name__

        def needs_pytest_asyncio() -> None:
            pytest.fail(f"the {name} fixture is asyncio: pip install 'lnc-client[testing]'")

        return cast(F, pytest.fixture(name=name)(needs_pytest_asyncio))
    return cast(F, pytest_asyncio.fixture(function))


def _token(options: ServerOptions) -> str | None:
    """The first of the server's auth tokens, which the connected fixtures present."""
    return next(iter(options.get("auth_tokens", ())), None)


def _client_config(server: ServerThread, options: ServerOptions) -> ClientConfig:
    return ClientConfig(host=server.host, port=server.port, auth_token=_token(options))


def _topic_name(request: pytest.FixtureRequest) -> str:
    """A valid topic name made from the test's name (`[A-Za-z0-9-]`, at most 100 characters)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:100] or "test"


@pytest.fixture
def lance_server_options() -> ServerOptions:
    """Options for `lance_server` (`ServerOptions` keys); override this fixture to change them."""
    return {}


@pytest.fixture
def lance_server(
    tmp_path_factory: pytest.TempPathFactory, lance_server_options: ServerOptions
) -> Iterator[ServerThread]:
    """A fresh embedded Lance server on 127.0.0.1 and an ephemeral port; stopped afterwards."""
    data_dir: Path = tmp_path_factory.mktemp("lance-data")
    options: ServerOptions = {"host": "127.0.0.1", "port": 0, **lance_server_options}
    with ServerThread(data_dir, **options) as server:
        yield server


@pytest.fixture
def lance_topic(
    lance_server: ServerThread, lance_server_options: ServerOptions, request: pytest.FixtureRequest
) -> TopicInfo:
    """A new topic on `lance_server`, named after the test."""
    with sync.LanceClient(_client_config(lance_server, lance_server_options)) as client:
        return client.create_topic(_topic_name(request))


@_async_fixture
async def lance_client(
    lance_server: ServerThread, lance_server_options: ServerOptions
) -> AsyncIterator[LanceClient]:
    """An asyncio `LanceClient` connected to `lance_server`; closed after the test."""
    async with LanceClient(_client_config(lance_server, lance_server_options)) as client:
        yield client


@_async_fixture
async def lance_producer(
    lance_server: ServerThread, lance_server_options: ServerOptions
) -> AsyncIterator[Producer]:
    """An asyncio `Producer` connected to `lance_server`; flushed and closed after the test."""
    config = _producer_config(lance_server_options)
    async with Producer(lance_server.address, config) as producer:
        yield producer


def _producer_config(options: ServerOptions) -> ProducerConfig:
    return ProducerConfig(linger_ms=1, auth_token=_token(options))


def _consumer_config(topic: TopicInfo, options: ServerOptions) -> StandaloneConfig:
    return StandaloneConfig(
        "pytest", topic_id=topic.id, topic_name=topic.name, auth_token=_token(options)
    )


@_async_fixture
async def lance_consumer(
    lance_server: ServerThread, lance_server_options: ServerOptions, lance_topic: TopicInfo
) -> AsyncIterator[StandaloneConsumer]:
    """An asyncio `StandaloneConsumer` of `lance_topic` from its beginning; closed afterwards."""
    config = _consumer_config(lance_topic, lance_server_options)
    consumer = StandaloneConsumer(lance_server.address, config)
    async with consumer:
        yield consumer


@pytest.fixture
def lance_sync_client(
    lance_server: ServerThread, lance_server_options: ServerOptions
) -> Iterator[sync.LanceClient]:
    """A blocking `lnc_client.sync.LanceClient` connected to `lance_server`."""
    with sync.LanceClient(_client_config(lance_server, lance_server_options)) as client:
        yield client


@pytest.fixture
def lance_sync_producer(
    lance_server: ServerThread, lance_server_options: ServerOptions
) -> Iterator[sync.Producer]:
    """A blocking `lnc_client.sync.Producer` connected to `lance_server`."""
    config = _producer_config(lance_server_options)
    with sync.Producer(lance_server.address, config) as producer:
        yield producer


@pytest.fixture
def lance_sync_consumer(
    lance_server: ServerThread, lance_server_options: ServerOptions, lance_topic: TopicInfo
) -> Iterator[sync.StandaloneConsumer]:
    """A blocking `lnc_client.sync.StandaloneConsumer` of `lance_topic` from its beginning."""
    config = _consumer_config(lance_topic, lance_server_options)
    with sync.StandaloneConsumer(lance_server.address, config) as consumer:
        yield consumer


def _fault_proxy_class() -> type | None:
    try:
        module = importlib.import_module("lnc_client.testing.fault_proxy")
    except ImportError:
        return None
    proxy_class = getattr(module, "FaultProxy", None)
    return proxy_class if isinstance(proxy_class, type) else None


_FaultProxy = _fault_proxy_class()

if _FaultProxy is not None:

    @_async_fixture
    async def fault_proxy(lance_server: ServerThread) -> AsyncIterator[object]:
        """A `FaultProxy` in front of `lance_server`; connect to its `address`."""
        assert _FaultProxy is not None
        async with _FaultProxy(lance_server.address) as proxy:
            yield proxy
