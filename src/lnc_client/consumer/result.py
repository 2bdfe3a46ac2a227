"""What a consumer hands out: `PollResult` (the records of one poll) and the consumer id.

`PollResult` is built by the fetcher from one decoded window; `consumer_id_for` turns the
consumer name into the id used with the server's Subscribe/CommitOffset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lnc_client.protocol.records import TlvRecord

__all__ = ["PollResult", "consumer_id_for"]

_FNV_OFFSET_BASIS: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_U64_MASK: Final = 0xFFFFFFFFFFFFFFFF


def consumer_id_for(consumer_name: str) -> int:
    """Return the consumer id of a consumer name: FNV-1a 64-bit of its UTF-8 bytes.

    The id keys the server's Subscribe/CommitOffset bookkeeping. It depends on nothing but the
    name (0.2.9 used Python's salted `hash()`, so every process got another id: D8), e.g.
    `consumer_id_for("") == 0xCBF29CE484222325` and `consumer_id_for("a") == 0xAF63DC4C8601EC8C`.
    """
    value = _FNV_OFFSET_BASIS
    for byte in consumer_name.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & _U64_MASK
    return value


@dataclass(frozen=True, slots=True)
class PollResult:
    """The records one `poll()` delivered.

    Attributes:
        data: The stored bytes of the delivered records (LZ4 envelopes stay compressed here).
        records: The records, in order (envelopes opened): a `RecordSequence`, whose records
            are built as they are read (`len` builds none), or any sequence of records.
        start_offset: Byte offset of the first record.
        end_offset: Byte offset just past the last record: the consumer's new `current_offset`.
        high_water_mark: The topic's end offset as last seen from the server.
        record_count: `len(records)`.
    """

    data: bytes
    records: Sequence[TlvRecord]
    start_offset: int
    end_offset: int
    high_water_mark: int
    record_count: int

    @property
    def is_empty(self) -> bool:
        """Whether no record was delivered."""
        return self.record_count == 0

    @property
    def lag(self) -> int:
        """Bytes stored after this batch that the consumer has not received yet."""
        return max(0, self.high_water_mark - self.end_offset)
