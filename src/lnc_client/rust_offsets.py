"""`RustOffsetStore`: read and write the offset files of Lance's Rust client (`lnc-client`).

The Rust `LockFileOffsetStore` (`lnc-client/src/offset.rs`) keeps one file per (topic, consumer)::

    {base_dir}/{consumer_name}/topic-{topic_id}-consumer-{consumer_id}.offset

holding the offset as decimal text and a newline. Writes take an exclusive `flock` on the
sibling `.lock` file, write `<name>.offset.tmp`, fsync it and rename it over the `.offset` file.
The Rust `StandaloneConsumer` (and each topic of a `GroupedConsumer`) opens the store with its
consumer name as `consumer_name` and derives `consumer_id` from the same name with Rust's
`DefaultHasher`: SipHash-1-3 with both keys 0 over the UTF-8 bytes followed by 0xFF (how
`str` feeds a `Hasher`). `rust_consumer_id` computes it exactly; e.g. `rust_consumer_id("a")`
is 8186225505942432243, checked against a Rust build (rustc 1.95).

Plug the store into any Python consumer to resume where a Rust consumer of the same name
stopped, or to leave offsets a Rust consumer will pick up::

    StandaloneConsumer(server, StandaloneConfig("my-service", topic_id=1),
                       offset_store=RustOffsetStore("/var/lib/lance/offsets"))

Limits (docs/groups.md): the files are keyed by topic id only (a re-created topic with a new id
does not find them); Rust's `DefaultHasher` is documented as unstable across Rust releases (it
has been SipHash-1-3 with zero keys for years); the Rust consumer stores the end of the raw fetch
window, which is a record boundary unless a window cut a record (only when more than its
`max_fetch_bytes` was waiting).

Every file operation runs in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

from lnc_client._fs import FileLock, write_atomically
from lnc_client.offsets import OffsetStore

__all__ = ["RustOffsetStore", "rust_consumer_id"]

_MASK: Final = (1 << 64) - 1
_SIP_INIT: Final = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes, key0: int = 0, key1: int = 0) -> int:
    """Return SipHash-1-3 of `data` (Rust's `SipHasher13`, the `DefaultHasher` algorithm)."""
    v0, v1, v2, v3 = (
        _SIP_INIT[0] ^ key0,
        _SIP_INIT[1] ^ key1,
        _SIP_INIT[2] ^ key0,
        _SIP_INIT[3] ^ key1,
    )
    whole = len(data) - len(data) % 8
    for start in range(0, whole, 8):
        word = int.from_bytes(data[start : start + 8], "little")
        v3 ^= word
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= word
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def rust_consumer_id(consumer_name: str) -> int:
    """Return the numeric consumer id the Rust client derives from a consumer name.

    That is `DefaultHasher::new()` fed with `consumer_name.hash(..)`: SipHash-1-3, zero keys,
    over the UTF-8 bytes and a 0xFF terminator.
    """
    return siphash13(consumer_name.encode("utf-8") + b"\xff")


class RustOffsetStore(OffsetStore):
    """Offsets in the Rust client's `LockFileOffsetStore` layout (see the module docstring).

    Args:
        base_dir: The Rust store's base directory (the `offset_dir` of the Rust config).
    """

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)

    def path_for(self, consumer_name: str, topic_id: int) -> Path:
        """Return the `.offset` file of (consumer, topic).

        Raises:
            ValueError: A consumer name that is empty or would leave `base_dir`.
        """
        if not consumer_name or consumer_name in {".", ".."} or "/" in consumer_name:
            raise ValueError(f"{consumer_name!r} cannot name a Rust offset directory")
        name = f"topic-{topic_id}-consumer-{rust_consumer_id(consumer_name)}.offset"
        return self.base_dir / consumer_name / name

    async def load(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> int | None:
        """Return the stored offset, or None when the Rust consumer stored none.

        Raises:
            ValueError: The file does not hold a decimal u64.
        """
        del topic_name  # the Rust layout is keyed by topic id only
        return await asyncio.to_thread(_read, self.path_for(consumer_name, topic_id))

    async def save(
        self, consumer_name: str, topic_id: int, offset: int, *, topic_name: str | None = None
    ) -> None:
        """Write the offset as the Rust store does: lock, temp file, fsync, rename."""
        del topic_name
        if not 0 <= offset < 1 << 64:
            raise ValueError(f"an offset is a u64, not {offset}")
        await asyncio.to_thread(_write, self.path_for(consumer_name, topic_id), offset)

    async def delete(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> None:
        """Remove the offset and lock files, as the Rust store's `delete` does."""
        del topic_name
        path = self.path_for(consumer_name, topic_id)
        await asyncio.to_thread(_remove, path)


def _read(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not text.isdigit() or int(text) >= 1 << 64:
        raise ValueError(f"{path} does not hold a Rust offset: {text!r}")
    return int(text)


def _write(path: Path, offset: int) -> None:
    with FileLock(path, lock_path=path.with_suffix(".lock")):
        write_atomically(path, f"{offset}\n".encode())


def _remove(path: Path) -> None:
    for target in (path, path.with_suffix(".lock")):
        try:
            target.unlink()
        except FileNotFoundError:
            continue
