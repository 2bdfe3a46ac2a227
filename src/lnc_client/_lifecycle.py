"""`AsyncLifecycle`: `async with` for the objects that own a connection.

Producer, StandaloneConsumer and LanceClient each implement `start()` (connect, and whatever
else they need before use) and `close()`; this mixin makes them async context managers that
start on entry and close on exit, whatever ends the block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["AsyncLifecycle"]


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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
