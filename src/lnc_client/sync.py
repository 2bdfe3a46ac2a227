"""`lnc_client.sync`: the blocking API, for scripts, notebooks and WSGI apps.

`Producer`, `StandaloneConsumer`, `StreamingConsumer`, `LanceClient`, `SendHandle`,
`SerializingProducer` and `DeserializingConsumer` here have the methods of the asyncio classes
of the same names, with the same arguments (but `pool=`), results, errors and guarantees, but
each call blocks until it is done: `with Producer("127.0.0.1:1992") as producer:
producer.send("events", b"x")`. A test compares the public methods and parameters of both sides.

Record loops (`for record in consumer`, `records(limit=)`, `DeserializingConsumer.messages()`)
run in the caller's thread on `consumer.iteration.RecordLoop`, as the asyncio ones do: a loop
that ends inside a batch makes the consumer step back to the first unfinished record before it
iterates again or closes (also at exit), so no commit covers an unprocessed record.

Data flow. One event loop runs in one background daemon thread per process (`lnc-client-loop`),
started on first use. Every blocking object wraps an asyncio object that lives on that loop; a
method call submits the coroutine with `asyncio.run_coroutine_threadsafe` and waits for its
result in the calling thread. So any number of threads may share one object: their calls run
concurrently on the loop exactly as concurrent tasks would (a consumer additionally serialises
`poll()` callers, as the asyncio consumer allows one poller at a time; a record loop,
`for record in consumer`, belongs to the thread that runs it: `close()` from another thread
while it runs may step the position back to an outdated record). A `KeyboardInterrupt`
while waiting cancels the submitted call (a cancelled poll keeps its fetch, as in asyncio).

A process forked after the loop started (a pre-forking WSGI server) gets a loop of its own on
first use; create the blocking objects in the process that uses them.

Shutdown: at interpreter exit (`atexit`) every object still open is closed (producers flush,
consumers commit as `close()` does), bounded by `close_timeout_s` each, then the loop stops and
its thread is joined; a call still waiting then raises `ConnectionError` instead of waiting for
ever. By then concurrent.futures has stopped its thread pools, so the loop's `to_thread` calls
(a file offset store's writes) get a thread each.

Callbacks given to the objects (`send_nowait(callback=...)`, `on_commit=`) run in the loop
thread: they must not block, nor call back into this module (that would wait for the loop from
inside it; such a call raises `RuntimeError`).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import (
    Any,
    ClassVar,
    Concatenate,
    Final,
    Generic,
    ParamSpec,
    Self,
    TypeVar,
    cast,
    overload,
)

from lnc_client import admin, consumer, producer, serde, streaming
from lnc_client.config import Addresses, ClientConfig, ProducerConfig, StandaloneConfig
from lnc_client.consumer.iteration import RecordLoop, records_of
from lnc_client.errors import ConnectionError, LanceError
from lnc_client.offsets import OffsetStore
from lnc_client.producer import SendAck
from lnc_client.producer.batch import RecordValue
from lnc_client.protocol.records import RecordType, TlvRecord
from lnc_client.reconnect import ConnectionState, StateListener
from lnc_client.serde import Deserializer, Message, Serializer, StringSerde

__all__ = [
    "DeserializingConsumer",
    "LanceClient",
    "Producer",
    "SendHandle",
    "SerializingProducer",
    "StandaloneConsumer",
    "StreamingConsumer",
    "shutdown",
]

_RAW: Final = int(RecordType.RAW_DATA)

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W")
A = TypeVar("A", admin.LanceClient, producer.Producer, consumer.StandaloneConsumer)
K = TypeVar("K")
V = TypeVar("V")

_CLOSE_AT_EXIT_S: Final = 10.0
"""How long the atexit hook waits for each object still open to close."""


class _LoopThread:
    """The one background event loop and its thread; started lazily, stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.open_objects: weakref.WeakSet[_Blocking[Any]] = weakref.WeakSet()
        self._calls: set[concurrent.futures.Future[Any]] = set()  # waited for by `run`

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use; call it holding `_lock`."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="lnc-client-loop", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def in_loop_thread(self) -> bool:
        """Whether the caller runs in the loop thread (a callback, or a finaliser run there)."""
        return threading.current_thread() is self._thread

    def run(self, awaitable: Awaitable[R]) -> R:
        """Run `awaitable` on the loop and return its result in the calling thread."""
        if self.in_loop_thread():
            if isinstance(awaitable, Coroutine):
                awaitable.close()
            raise RuntimeError(
                "a blocking lnc_client.sync call from the loop thread itself (a callback?) "
                "would wait for itself: use the asyncio API there"
            )
        with self._lock:  # registered with the loop it runs on: a shutdown cancels it
            future = asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self._get_loop())
            self._calls.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ConnectionError("the lnc_client.sync event loop was shut down") from None
        except BaseException:
            future.cancel()
            raise
        finally:
            with self._lock:
                self._calls.discard(future)

    def forget(self) -> None:
        """Drop the loop and the objects of a parent process (in a forked child)."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self.open_objects = weakref.WeakSet()
        self._calls = set()

    def shutdown(self) -> None:
        """Close what is still open, stop the loop and join its thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        # At exit concurrent.futures has already stopped every ThreadPoolExecutor (its hook runs
        # before atexit's): `asyncio.to_thread` (the file offset store) gets threads of its own.
        loop.call_soon_threadsafe(loop.set_default_executor, _ThreadPerCall())
        for obj in list(self.open_objects):
            future = asyncio.run_coroutine_threadsafe(obj._close_quietly(), loop)
            try:
                future.result(timeout=_CLOSE_AT_EXIT_S + 1)
            except BaseException:  # noqa: BLE001  (exiting: nothing can be done about it)
                future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        with self._lock:
            self._loop = self._thread = None
            stranded, self._calls = self._calls, set()
        for call in stranded:  # their loop is stopped: their callers would wait for ever
            call.cancel()
        if not thread.is_alive():
            loop.close()


class _ThreadPerCall(concurrent.futures.ThreadPoolExecutor):
    """An executor that runs each call in a new daemon thread (usable during interpreter exit)."""

    def submit(
        self, fn: Callable[..., R], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[R]:
        """Run `fn(*args, **kwargs)` in a new thread; return its future."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # noqa: BLE001  (handed to the waiter)
                    future.set_exception(error)

        threading.Thread(target=run, name="lnc-client-exit", daemon=True).start()
        return future


async def _as_coroutine(awaitable: Awaitable[R]) -> R:
    return await awaitable


_RUNNER: Final = _LoopThread()
atexit.register(_RUNNER.shutdown)
if hasattr(os, "register_at_fork"):  # a forked child has no loop thread: it starts its own
    os.register_at_fork(after_in_child=_RUNNER.forget)


def shutdown() -> None:
    """Close every open blocking object and stop the background loop now (also at exit).

    Later calls start a new loop; objects created before this call are closed for good.
    """
    _RUNNER.shutdown()


class _Facade(Generic[W]):
    """A blocking facade over one asyncio object living on the background loop."""

    def __init__(self, wrapped: W) -> None:
        self._async: W = wrapped

    @property
    def asyncio_object(self) -> W:
        """The wrapped asyncio object (use it only from coroutines run on its loop)."""
        return self._async

    def _run(self, awaitable: Awaitable[R]) -> R:
        return _RUNNER.run(awaitable)


class _Blocking(_Facade[A]):
    """A facade over an object with a connection: `start`, `close` and `with`."""

    def start(self) -> Self:
        """Connect (as the asyncio `start()`); called by `connect()` and `with`."""
        self._run(self._async.start())
        _RUNNER.open_objects.add(self)
        return self

    def close(self) -> None:
        """Close (as the asyncio `close()`)."""
        try:
            self._before_close()
            self._run(self._async.close())
        finally:
            _RUNNER.open_objects.discard(self)

    def _before_close(self) -> None:
        """What the facade itself must do before the wrapped object closes (any thread)."""

    @property
    def connection_state(self) -> ConnectionState:
        """Where the connection stands now (`ConnectionState`)."""
        return self._async.connection_state

    def on_connection_state(self, listener: StateListener) -> None:
        """Call `listener(state)` at every change of `connection_state` from now on.

        The listener runs in the loop thread: it must not block.
        """
        self._run(_build(lambda: self._async.on_connection_state(listener)))

    async def _close_quietly(self) -> None:
        # At interpreter exit an error has nowhere to go: the close is best effort.
        with contextlib.suppress(Exception):
            self._before_close()
            await asyncio.wait_for(self._async.close(), _CLOSE_AT_EXIT_S)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _blocking(
    method: Callable[Concatenate[W, P], Awaitable[R]],
) -> Callable[Concatenate[_Facade[W], P], R]:
    """Turn an async method of the wrapped class into a blocking method of the facade."""

    @functools.wraps(method)
    def call(self: _Facade[W], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self._async, *args, **kwargs))

    return call


def _on_loop(method: Callable[Concatenate[W, P], R]) -> Callable[Concatenate[_Facade[W], P], R]:
    """Run a plain method of the wrapped class in the loop thread (it touches loop state)."""

    @functools.wraps(method)
    def call(self: _Facade[W], /, *args: P.args, **kwargs: P.kwargs) -> R:
        async def on_loop() -> R:
            return method(self._async, *args, **kwargs)

        return self._run(on_loop())

    return call


async def _build(factory: Callable[[], R]) -> R:
    """Call `factory` in the loop thread (the asyncio objects bind to the running loop)."""
    return factory()


def _moves(
    method: Callable[Concatenate[_Facade[consumer.StandaloneConsumer], P], R],
) -> Callable[Concatenate[StandaloneConsumer, P], R]:
    """A seek of the consumer: it wins over the step back of an unfinished record loop."""

    @functools.wraps(method)
    def call(self: StandaloneConsumer, /, *args: P.args, **kwargs: P.kwargs) -> R:
        self._record_loop.forget()
        return method(self, *args, **kwargs)

    return call


class Producer(_Blocking[producer.Producer]):
    """The blocking `lnc_client.Producer`: same arguments, methods and delivery guarantees.

    Args:
        address: `host:port`, `[v6]:port`, a bare host, or a list of them (seeds).
        config: Batching, window, memory, timeouts, reconnects, compression, auth.
    """

    def __init__(self, address: Addresses, config: ProducerConfig | None = None) -> None:
        super().__init__(_RUNNER.run(_build(lambda: producer.Producer(address, config))))

    @classmethod
    def connect(cls, address: Addresses, config: ProducerConfig | None = None) -> Producer:
        """Create a producer and connect it (see `lnc_client.Producer.connect`)."""
        return cls(address, config).start()

    @classmethod
    def connect_for_topic(
        cls,
        address: Addresses,
        topic_name: str,
        config: ProducerConfig | None = None,
        *,
        create: bool = True,
    ) -> tuple[Producer, int]:
        """Connect and resolve (by default create) a topic; returns (producer, topic_id)."""
        connected = cls.connect(address, config)
        try:
            return connected, connected.resolve_topic(topic_name, create=create)
        except BaseException:
            connected.close()
            raise

    def close(self, *, timeout: float | None = None) -> None:
        """Flush for at most `timeout` seconds, then close (see `lnc_client.Producer.close`)."""
        try:
            self._run(self._async.close(timeout=timeout))
        finally:
            _RUNNER.open_objects.discard(self)

    @property
    def config(self) -> ProducerConfig:
        """The producer's configuration."""
        return self._async.config

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._async.closed

    resolve_topic = _blocking(producer.Producer.resolve_topic)
    send = _blocking(producer.Producer.send)
    send_async = _blocking(producer.Producer.send_async)
    send_batch = _blocking(producer.Producer.send_batch)
    send_batch_async = _blocking(producer.Producer.send_batch_async)
    flush = _blocking(producer.Producer.flush)
    send_nowait = _on_loop(producer.Producer.send_nowait)
    metrics = _on_loop(producer.Producer.metrics)

    def send_handle(
        self,
        topic: int | str | None = None,
        data: RecordValue = b"",
        *,
        topic_id: int | None = None,
        record_type: int = _RAW,
    ) -> SendHandle:
        """Append one record; `.wait()` on the handle blocks for its `SendAck` (or error).

        Raises:
            BackpressureError: The buffer stayed full.
            ConnectionError: The producer is closed.
        """
        return SendHandle(
            self._run(
                self._async.send_handle(topic, data, topic_id=topic_id, record_type=record_type)
            )
        )


class SendHandle:
    """The blocking `lnc_client.SendHandle`: the pending outcome of one record.

    Attributes:
        batch_id: The batch the record travels in.
        topic_id: Its topic.
        offset_in_batch: Its position in the batch.
    """

    __slots__ = ("_handle", "batch_id", "offset_in_batch", "topic_id")

    def __init__(self, handle: producer.SendHandle) -> None:
        self._handle = handle
        self.batch_id = handle.batch_id
        self.topic_id = handle.topic_id
        self.offset_in_batch = handle.offset_in_batch

    # done/exception/result only read the settled state of the batch's future: safe from any
    # thread (the loop thread alone writes it, once).
    def done(self) -> bool:
        """Whether the record's batch has settled (acknowledged or failed)."""
        return self._handle.done()

    def exception(self) -> LanceError | None:
        """The failure, None after an Ack.

        Raises:
            asyncio.InvalidStateError: Not settled yet.
        """
        return self._handle.exception()

    def result(self) -> SendAck:
        """The `SendAck`, or the failure raised.

        Raises:
            asyncio.InvalidStateError: Not settled yet.
            LanceError: The batch failed.
        """
        return self._handle.result()

    def wait(self, timeout: float | None = None) -> SendAck:
        """Block at most `timeout` seconds (None: no bound of its own) for the outcome.

        Raises:
            TimeoutError: Not settled in time (the record may still be delivered later).
            LanceError: The batch failed.
        """
        return _RUNNER.run(self._handle.wait(timeout))


class StandaloneConsumer(_Blocking[consumer.StandaloneConsumer]):
    """The blocking `lnc_client.StandaloneConsumer`; `for record in consumer:` iterates.

    Args:
        address: `host:port` (or several, tried in turn with `config.seeds`).
        config: The consumer's configuration; `consumer_name` and a topic id or name.
        offset_store: Where offsets are committed (default as in the asyncio consumer).
        on_commit: Called (in the loop thread) with the offset after every commit.
    """

    _ASYNC: ClassVar[type[consumer.StandaloneConsumer]] = consumer.StandaloneConsumer

    def __init__(
        self,
        address: Addresses,
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            _RUNNER.run(
                _build(lambda: self._ASYNC(address, config, offset_store, on_commit=on_commit))
            )
        )
        self._poll_lock = threading.Lock()
        self._record_loop = RecordLoop(self._step_back, lambda: self._async.closed)

    @classmethod
    def connect(
        cls,
        address: Addresses,
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
    ) -> Self:
        """Create a consumer and start it (see `lnc_client.StandaloneConsumer.connect`)."""
        return cls(address, config, offset_store, on_commit=on_commit).start()

    def poll(self, timeout: float | None = None) -> consumer.PollResult | None:
        """Wait up to `timeout` for records (see `lnc_client.StandaloneConsumer.poll`).

        Several threads may poll one consumer: they take turns.
        """
        with self._poll_lock:
            return self._run(self._async.poll(timeout))

    def batches(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> Iterator[consumer.PollResult]:
        """Yield every non-empty `PollResult`; ends on `close()` or after `limit` batches."""
        self._record_loop.rewind()
        yield from itertools.islice(self._polls(timeout), limit)

    def _polls(self, timeout: float | None) -> Iterator[consumer.PollResult]:
        while not self._async.closed:
            result = self.poll(timeout)
            if result is not None:
                yield result

    def records(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> Iterator[TlvRecord]:
        """Yield every record, one at a time; ends on `close()` or after `limit` records.

        `for record in consumer` too. As in asyncio, a loop that ends inside a batch (limit,
        `break`, exception) leaves the rest of the batch for later: the consumer steps back
        before it closes or iterates again, so no commit covers an unprocessed record.
        """
        return self._record_loop.blocking(self.batches(timeout=timeout), limit, records_of)

    def _step_back(self, offset: int) -> None:
        """The record loop's seek; also from the loop thread (closing at exit, a finaliser)."""
        if _RUNNER.in_loop_thread():
            self._async.seek(offset)
        else:
            self.seek(offset)

    def _before_close(self) -> None:
        self._record_loop.rewind()

    def __iter__(self) -> Iterator[TlvRecord]:
        return self.records()

    @property
    def config(self) -> StandaloneConfig:
        """The consumer's configuration."""
        return self._async.config

    @property
    def consumer_name(self) -> str:
        """The consumer name."""
        return self._async.consumer_name

    @property
    def consumer_id(self) -> int:
        """The consumer id derived from the name (`consumer_id_for`)."""
        return self._async.consumer_id

    @property
    def topic_id(self) -> int:
        """The topic id (resolved on start when the config gave a name)."""
        return self._async.topic_id

    @property
    def topic_name(self) -> str | None:
        """The topic name, when known."""
        return self._async.topic_name

    @property
    def current_offset(self) -> int:
        """The byte offset of the next record not yet delivered."""
        return self._async.current_offset

    @property
    def committed_offset(self) -> int | None:
        """The last committed offset, or None."""
        return self._async.committed_offset

    @property
    def high_water_mark(self) -> int:
        """The topic's end offset as last seen from the server."""
        return self._async.high_water_mark

    @property
    def lag(self) -> int:
        """Bytes between the current offset and the high-water mark."""
        return self._async.lag

    @property
    def reconnects(self) -> int:
        """How many times the connection has been re-established."""
        return self._async.reconnects

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._async.closed

    commit = _blocking(consumer.StandaloneConsumer.commit)
    seek_to_end_now = _moves(_blocking(consumer.StandaloneConsumer.seek_to_end_now))
    seek = _moves(_on_loop(consumer.StandaloneConsumer.seek))
    seek_to = _moves(_on_loop(consumer.StandaloneConsumer.seek_to))
    rewind = _moves(_on_loop(consumer.StandaloneConsumer.rewind))
    seek_to_end = _moves(_on_loop(consumer.StandaloneConsumer.seek_to_end))
    metrics = _on_loop(consumer.StandaloneConsumer.metrics)


class StreamingConsumer(StandaloneConsumer):
    """The blocking `lnc_client.streaming.StreamingConsumer`: Subscribe and server-side offsets.

    The arguments are those of `StandaloneConsumer`; `config.consumer_name` names the group.
    """

    _ASYNC = streaming.StreamingConsumer

    def stop(self) -> None:
        """`close()` under the Rust name: commit, Unsubscribe, disconnect."""
        self.close()


class LanceClient(_Blocking[admin.LanceClient]):
    """The blocking `lnc_client.LanceClient`: topics, retention, cluster status, offsets.

    Args:
        address: `host:port`, `[v6]:port`, a bare host, a list of them, or the `ClientConfig`.
        config: Timeouts, TLS, auth token and reconnect policy (defaults if None).
    """

    def __init__(
        self, address: Addresses | ClientConfig | None = None, config: ClientConfig | None = None
    ) -> None:
        super().__init__(_RUNNER.run(_build(lambda: admin.LanceClient(address, config))))
        _RUNNER.open_objects.add(self)  # it connects on first use: closed at exit even then

    def connect(self) -> Self:
        """Connect now (operations would otherwise connect on first use)."""
        return self.start()

    @property
    def config(self) -> ClientConfig:
        """The client's configuration."""
        return self._async.config

    @property
    def reconnects(self) -> int:
        """How many times the connection has been re-established."""
        return self._async.reconnects

    create_topic = _blocking(admin.LanceClient.create_topic)
    create_topic_once = _blocking(admin.LanceClient.create_topic_once)
    ensure_topic = _blocking(admin.LanceClient.ensure_topic)
    ensure_topic_default = _blocking(admin.LanceClient.ensure_topic_default)
    create_topic_with_retention = _blocking(admin.LanceClient.create_topic_with_retention)
    list_topics = _blocking(admin.LanceClient.list_topics)
    get_topic = _blocking(admin.LanceClient.get_topic)
    get_topic_by_name = _blocking(admin.LanceClient.get_topic_by_name)
    resolve_topic_id = _blocking(admin.LanceClient.resolve_topic_id)
    topic_id = _blocking(admin.LanceClient.topic_id)
    delete_topic = _blocking(admin.LanceClient.delete_topic)
    set_retention = _blocking(admin.LanceClient.set_retention)
    get_cluster_status = _blocking(admin.LanceClient.get_cluster_status)
    ping = _blocking(admin.LanceClient.ping)
    fetch = _blocking(admin.LanceClient.fetch)
    end_offset = _blocking(admin.LanceClient.end_offset)
    subscribe = _blocking(admin.LanceClient.subscribe)
    unsubscribe = _blocking(admin.LanceClient.unsubscribe)
    commit_offset = _blocking(admin.LanceClient.commit_offset)
    metrics = _on_loop(admin.LanceClient.metrics)


class DeserializingConsumer(Generic[K, V]):
    """The blocking `lnc_client.serde.DeserializingConsumer`: yields decoded `Message`s.

    `for message in DeserializingConsumer(consumer, JSON): message.value`. Offsets, commits,
    seeks and closing stay on the wrapped consumer (`.consumer`). A loop over `messages()`
    that ends inside a batch leaves the rest of it for later, as `consumer.records()` does.

    Args:
        consumer: A blocking `StandaloneConsumer`.
        value_deserializer: Decodes values.
        key_deserializer: Decodes keys; by default keys are UTF-8 text (`str`).
    """

    @overload
    def __init__(
        self: DeserializingConsumer[str, V],
        consumer: StandaloneConsumer,
        value_deserializer: Deserializer[V],
    ) -> None: ...

    @overload
    def __init__(
        self,
        consumer: StandaloneConsumer,
        value_deserializer: Deserializer[V],
        *,
        key_deserializer: Deserializer[K],
    ) -> None: ...

    def __init__(
        self,
        consumer: StandaloneConsumer,
        value_deserializer: Deserializer[V],
        *,
        key_deserializer: Deserializer[K] | None = None,
    ) -> None:
        self.consumer = consumer
        self._decoder = serde.DeserializingConsumer(
            consumer.asyncio_object,
            value_deserializer,
            key_deserializer=cast(
                Deserializer[K], StringSerde() if key_deserializer is None else key_deserializer
            ),
        )

    def poll(self, timeout: float | None = None) -> list[Message[K, V]] | None:
        """`consumer.poll()`, decoded; None when nothing arrived in time.

        Raises:
            DeserializationError: A record did not decode; it names the topic and offset.
        """
        batch = self.consumer.poll(timeout)
        return None if batch is None else self.decode(batch)

    def decode(self, batch: consumer.PollResult) -> list[Message[K, V]]:
        """Decode one `PollResult` of the wrapped consumer."""
        return self._decoder.decode(batch)

    def messages(self, *, timeout: float | None = None) -> Iterator[Message[K, V]]:
        """Yield every message, waiting as long as needed; ends when the consumer closes."""
        return self.consumer._record_loop.blocking(
            self.consumer.batches(timeout=timeout), None, self.decode
        )

    def values(self, *, timeout: float | None = None) -> Iterator[V | None]:
        """Yield every decoded value (None for a tombstone)."""
        for message in self.messages(timeout=timeout):
            yield message.value

    def __iter__(self) -> Iterator[Message[K, V]]:
        return self.messages()


class SerializingProducer(_Facade[serde.SerializingProducer[K, V]]):
    """The blocking `lnc_client.serde.SerializingProducer`: sends Python objects.

    `SerializingProducer(producer, JSON).send("events", {"n": 1}, key="a")`: the arguments of
    the asyncio class, with a blocking `Producer`, which keeps flushing and closing.
    """

    @overload
    def __init__(
        self: SerializingProducer[str, V], producer: Producer, value_serializer: Serializer[V]
    ) -> None: ...

    @overload
    def __init__(
        self,
        producer: Producer,
        value_serializer: Serializer[V],
        *,
        key_serializer: Serializer[K],
    ) -> None: ...

    def __init__(
        self,
        producer: Producer,
        value_serializer: Serializer[V],
        *,
        key_serializer: Serializer[K] | None = None,
    ) -> None:
        super().__init__(
            serde.SerializingProducer(
                producer.asyncio_object,
                value_serializer,
                key_serializer=cast(
                    Serializer[K], StringSerde() if key_serializer is None else key_serializer
                ),
            )
        )
        self.producer = producer

    def record(
        self, value: V, *, key: K | None = None, timestamp_ns: int | None = None
    ) -> TlvRecord:
        """The record `send` would send for these arguments."""
        return self._async.record(value, key=key, timestamp_ns=timestamp_ns)

    send = _blocking(serde.SerializingProducer.send)
    send_async = _blocking(serde.SerializingProducer.send_async)
    send_batch = _blocking(serde.SerializingProducer.send_batch)
