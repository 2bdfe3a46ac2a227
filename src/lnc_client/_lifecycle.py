"""`AsyncLifecycle`: `async with` for the objects that own a connection.

Producer, StandaloneConsumer and LanceClient each implement `start()` (connect, and whatever
else they need before use) and `close()`; this mixin makes them async context managers that
start on entry and close on exit, whatever ends the block. A plain `with` raises a `TypeError`
that points to `async with` and to the blocking classes of `lnc_client.sync`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["AsyncLifecycle", "cancel_and_wait"]


class AsyncLifecycle(ABC):
    """`async with obj:` awaits `obj.start()` on entry and `obj.close()` on exit."""

    __slots__ = ()

    @abstractmethod
    async def start(self) -> Self:
        """Connect and get ready for use; return self."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection and everything else the object holds."""

    async def __aenter__(self) -> Self:
        return await self.start()

    def __enter__(self) -> Self:
        name = type(self).__name__
        raise TypeError(
            f"{name} is asynchronous: use `async with {name}(...)` inside a coroutine, "
            f"or the blocking `lnc_client.sync.{name}` with a plain `with`"
        )

    def __exit__(self, *exc: object) -> None:
        """Never reached: `__enter__` raises."""
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has ended.

    The task's own CancelledError is absorbed; a cancellation of the caller propagates.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
