"""The group-commit writer: one thread that does every disk mutation, in submission order.

Data flow: sessions on the event loop call `submit` with the ingest payloads of (part of) one
read chunk and a completion callback; control commands call `call` with a function (create a
topic directory, rewrite metadata, delete a topic, apply retention). The thread takes
*everything* queued at once, appends each topic's payloads with `os.writev`, makes every touched
topic durable (so many connections share one sync), publishes the new bytes to readers, and
hands all completions back to the loop in a single `call_soon_threadsafe`. Function jobs run in
queue order too, after the writes queued before them are durable.

Durability of many topics at once: a topic is made durable with `fdatasync` of its segment,
then of its `.durable` mark (`TopicLog.sync`). When a commit touched `SYNCFS_MIN_TOPICS` or more
topics whose active segments share one filesystem, two `syncfs(2)` calls of that filesystem
replace those 2 x N syncs: one for the appended bytes, then one for the marks written after it
(one journal commit each, whatever the number of topics). `syncfs` also flushes other dirty
files of that filesystem, which costs time, never correctness. Either way an Ack is sent only
after its bytes and their mark are durable.

Memory is bounded by the loop side: `queued_bytes` counts payload bytes not yet completed, and
sessions stop reading while it is above the limit (`wait_for_room`).

Failure. An `OSError` while writing fails that batch's writes (their bytes are cut back; their
sessions answer each ingest with an ErrorResponse) and the writer goes on; `inject_errno` makes
every write fail so, after its bytes were written and before the sync (disk-full tests).
Any other exception is a bug: it is logged once with its
traceback, every job not yet completed fails with `WriterUnavailableError` (an `OSError`, so
control commands answer `I/O error: ...` and sessions close without Acks), the thread ends, and
every later `submit` / `call` raises `WriterUnavailableError` at once. Nothing waits forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from lnc_client._fs import syncfs
from lnc_client.server.metrics import ServerStats
from lnc_client.server.storage.segments import Buffer, TopicLog

__all__ = ["SYNCFS_MIN_TOPICS", "GroupCommitWriter", "WriteDone", "WriterUnavailableError"]

SYNCFS_MIN_TOPICS = 4
"""Topics on one filesystem in one commit from which `syncfs` makes them durable together."""

_log = logging.getLogger(__name__)
T = TypeVar("T")


class WriterUnavailableError(OSError):
    """The writer is stopped, or failed on an unexpected error: nothing more can be written."""


WriteDone = Callable[[OSError | None], None]
"""Completion of a submitted write: None once durable, or the error that prevented it."""


@dataclass(slots=True)
class _Write:
    entries: Sequence[tuple[TopicLog, Buffer]]
    nbytes: int
    done: WriteDone


@dataclass(slots=True)
class _Call(Generic[T]):
    fn: Callable[[], T]
    future: asyncio.Future[T]


class _Stop:
    __slots__ = ()


_STOP = _Stop()
_Job = _Write | _Call[object] | _Stop
_Completion = Callable[[], None]


class GroupCommitWriter:
    """Owns the writer thread; every method but the thread body runs on the event loop.

    Args:
        loop: The event loop that receives completions.
        max_queue_bytes: Queued payload bytes above which `has_room` is False.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_queue_bytes: int) -> None:
        self._loop = loop
        self._max = max_queue_bytes
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._queued_bytes = 0
        self._room_waiters: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name="lnc-server-writer")
        self._stopped = False
        self._failure: WriterUnavailableError | None = None
        self.commits = 0
        self.syncs = 0
        self.inject_errno = 0
        self.stats: ServerStats | None = None
        """Counts each finished write (batches, bytes, latency) when set."""

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    @property
    def queued_bytes(self) -> int:
        """Payload bytes submitted and not yet completed."""
        return self._queued_bytes

    @property
    def has_room(self) -> bool:
        """Whether more writes may be queued without passing the memory limit."""
        return self._queued_bytes < self._max

    def wait_for_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) once the queue has room again."""
        self._room_waiters.append(callback)

    def submit(
        self, entries: Sequence[tuple[TopicLog, Buffer]], nbytes: int, done: WriteDone
    ) -> None:
        """Queue payloads for appending; `done` is called on the loop once they are durable.

        Raises:
            WriterUnavailableError: The writer is stopped or has failed.
        """
        stats = self.stats
        if stats is not None:
            done = _counted(done, stats, len(entries), nbytes, self._loop)
        self._enqueue(_Write(entries, nbytes, done))
        self._queued_bytes += nbytes  # released on the loop, so never before this line

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the writer thread after everything queued before it is durable.

        Raises:
            WriterUnavailableError: The writer is stopped or has failed.
            Exception: Whatever `fn` raised.
        """
        future: asyncio.Future[T] = self._loop.create_future()
        self._enqueue(_Call(fn, future))  # type: ignore[arg-type]
        return await future

    async def stop(self, timeout: float) -> None:
        """Finish every queued job, then end and join the thread.

        Raises:
            TimeoutError: The thread did not end within `timeout` seconds (it is left running).
        """
        if not self._stopped:
            with self._cond:
                self._stopped = True
                if self._failure is None:
                    self._jobs.append(_STOP)
                    self._cond.notify()
        await asyncio.to_thread(self._thread.join, timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the storage writer did not stop within {timeout} s")

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if self._stopped:
                raise WriterUnavailableError("the storage writer is stopped")
            self._jobs.append(job)
            self._cond.notify()

    # --- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                batch = deque(self._jobs)
                self._jobs.clear()
            completions: list[_Completion] = []
            try:
                stop = self._process(batch, completions)
            except BaseException as error:  # noqa: BLE001 - a bug: logged, handed to every waiter
                completions += self._fail(error, batch)
                stop = True
            self._loop.call_soon_threadsafe(self._deliver, completions)
            if stop:
                return

    def _process(self, batch: deque[_Job], completions: list[_Completion]) -> bool:
        """Run a batch in order; a job leaves `batch` once its completion is in `completions`.

        Returns:
            Whether the batch ended with the stop marker.
        """
        while batch:
            head = batch[0]
            if isinstance(head, _Stop):
                batch.popleft()
                return True
            if isinstance(head, _Call):
                completions.append(self._invoke(head))
                batch.popleft()
                continue
            writes: list[_Write] = []
            for job in batch:
                if not isinstance(job, _Write):
                    break
                writes.append(job)
            self._commit(writes, completions)
            for _ in writes:
                batch.popleft()
        return False

    def _fail(self, error: BaseException, batch: deque[_Job]) -> list[_Completion]:
        """Mark the writer failed; fail `batch` and everything queued after it."""
        _log.error("the storage writer failed; every pending and later write fails", exc_info=error)
        failure = WriterUnavailableError(
            f"the storage writer failed: {type(error).__name__}: {error}"
        )
        failure.__cause__ = error
        with self._cond:
            self._failure = failure
            batch.extend(self._jobs)
            self._jobs.clear()
        completions: list[_Completion] = []
        freed = 0
        for job in batch:
            if isinstance(job, _Write):
                freed += job.nbytes
                completions.append(_bind_done(job.done, failure))
            elif isinstance(job, _Call):
                completions.append(partial(_settle, job.future, None, failure))
        completions.append(lambda: self._release(freed))
        return completions

    def _commit(self, writes: list[_Write], completions: list[_Completion]) -> None:
        if not writes:
            return
        per_log: dict[TopicLog, list[Buffer]] = {}
        for write in writes:
            for log, payload in write.entries:
                per_log.setdefault(log, []).append(payload)
        error: OSError | None = None
        try:
            for log, payloads in per_log.items():
                log.append(payloads)
            _check_injected(self.inject_errno)
            self._make_durable([log for log in per_log if log.dirty])
        except OSError as failure:
            error = failure
            for log in per_log:
                try:
                    log.abandon_unsynced()
                except OSError as nested:
                    error = nested
        self.commits += 1
        freed = 0
        for write in writes:
            freed += write.nbytes
            completions.append(_bind_done(write.done, error))
        completions.append(lambda: self._release(freed))

    def _make_durable(self, logs: list[TopicLog]) -> None:
        """Sync every dirty log: two `syncfs` per filesystem with many, else one log at a time.

        The first `syncfs` makes the appended bytes durable, then each log records their size
        in its `.durable` mark, and the second makes the marks durable, as `TopicLog.sync`
        does file by file.
        """
        by_device: dict[int | None, list[TopicLog]] = {}
        for log in logs:
            by_device.setdefault(log.device, []).append(log)
        for device, group in by_device.items():
            fd = group[0].fileno()
            many = device is not None and len(group) >= SYNCFS_MIN_TOPICS
            if many and fd is not None and syncfs(fd):
                for log in group:
                    log.mark_appended_durable()
                syncfs(fd)
                self.syncs += 1
                for log in group:
                    log.synced()
                continue
            for log in group:
                log.sync()
                self.syncs += 1

    def _invoke(self, job: _Call[object]) -> _Completion:
        try:
            value = job.fn()
        except Exception as error:  # noqa: BLE001 - handed to the awaiting caller, not swallowed
            return partial(_settle, job.future, None, error)
        return partial(_settle, job.future, value, None)

    # --- event loop --------------------------------------------------------------------------

    def _release(self, nbytes: int) -> None:
        self._queued_bytes -= nbytes
        if self._room_waiters and self.has_room:
            waiters, self._room_waiters = self._room_waiters, []
            for waiter in waiters:
                waiter()

    @staticmethod
    def _deliver(completions: list[_Completion]) -> None:
        for completion in completions:
            completion()


def _check_injected(code: int) -> None:
    if code:
        raise OSError(code, os.strerror(code))


def _settle(future: asyncio.Future[T], value: T | None, error: Exception | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]


def _bind_done(done: WriteDone, error: OSError | None) -> _Completion:
    return lambda: done(error)


def _counted(
    done: WriteDone, stats: ServerStats, batches: int, nbytes: int, loop: asyncio.AbstractEventLoop
) -> WriteDone:
    """`done`, after adding the write to `stats` (called on the loop, as `done` is)."""
    started = loop.time()

    def finished(error: OSError | None) -> None:
        stats.written(batches, nbytes, loop.time() - started, error is not None)
        done(error)

    return finished
