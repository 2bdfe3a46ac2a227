"""Lance's Rust client and ours on one topic, both ways (needs LNC_TEST_RUST_READER).

The reader is a small Rust program built against the `lnc-client` crate (docs/real-lance.md,
"The Rust reader"): it reads one topic from offset 0 with the crate's `StandaloneConsumer`,
parses each fetched window with the crate's `RecordIterator` and prints one JSON line per record
(`type`, `type_byte`, `tombstone`, `value` in hex, `text`), per parse error (`error`) and at the
end (`end`: the consumer's offset). Our `Producer` writes every record type of this library to
`lnc serve`, and to the real server when LNC_TEST_LANCE_BIN is also set; the tests pin what a Rust
user sees: the same bytes for the types both clients share, and for the clashing type bytes
exactly which Rust type they become (docs/compatibility.md, "Record dialects"). In its `write`
mode the program writes one record of each Rust type (`encode_record` + the crate's `Producer`),
which our consumer reads with `RecordDialect.RUST`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from lnc_client import operations
from lnc_client.config import ProducerConfig, StandaloneConfig
from lnc_client.connection import Connection
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import ProtocolError
from lnc_client.producer import Producer
from lnc_client.protocol.records import (
    RecordDialect,
    RecordType,
    RustRecordType,
    TlvRecord,
    compress_records,
    decode_stream,
    encode_records,
    encode_values,
)
from lnc_client.server import LanceServer

from ..real_lance import RealNode, lance_bin

READER_ENV = "LNC_TEST_RUST_READER"
READER = os.environ.get(READER_ENV, "")
pytestmark = pytest.mark.skipif(
    not (READER and Path(READER).is_file() and os.access(READER, os.X_OK)),
    reason=f"set {READER_ENV} to the Rust reader built against lnc-client (docs/real-lance.md)",
)

Line = dict[str, object]


@pytest.fixture(params=["lnc serve", pytest.param("real lance", marks=pytest.mark.real_lance)])
async def address(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh server on 127.0.0.1: ours in-process, or the real one as a child process."""
    if request.param == "lnc serve":
        async with LanceServer(tmp_path / "data", port=0) as server:
            yield server.address
        return
    binary = lance_bin()
    assert binary is not None
    node = RealNode(binary, tmp_path / "data")
    await asyncio.to_thread(node.start)
    try:
        yield node.address
    finally:
        await asyncio.to_thread(node.stop)


async def produce(address: str, topic: str, batches: Sequence[Sequence[TlvRecord]]) -> int:
    """Write each batch as one frame with our producer; return the topic's id."""
    async with Producer(address, ProducerConfig(compression=False)) as producer:
        topic_id = await producer.resolve_topic(topic, create=True)
        for batch in batches:
            await producer.send_batch(topic_id=topic_id, records=list(batch))
    return topic_id


async def rust_read(address: str, topic_id: int) -> list[Line]:
    """Run the Rust reader on a topic; return its JSON lines (it exits after 500 ms idle)."""
    return await run_rust(address, str(topic_id), "500", "15000")


async def run_rust(*args: str) -> list[Line]:
    """Run the Rust program (30 s at most, killed by PID after); return its JSON lines."""
    process = await asyncio.create_subprocess_exec(
        READER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines()]


def records(lines: list[Line]) -> list[tuple[str, int, bytes]]:
    """(Rust record type, type byte, value) of every record line."""
    return [
        (str(line["type"]), int(str(line["type_byte"])), bytes.fromhex(str(line["value"])))
        for line in lines
        if "type" in line
    ]


def errors(lines: list[Line]) -> list[str]:
    return [str(line["error"]) for line in lines if "error" in line]


def end(lines: list[Line]) -> int:
    return int(str(lines[-1]["end"]))


async def test_shared_types_read_as_the_same_bytes(address: str) -> None:
    written = [
        [TlvRecord.raw("hello"), TlvRecord.raw(b"\x00\xff binary"), TlvRecord.raw(b"")],
        [TlvRecord(0x80, b"user-80"), TlvRecord(0xFE, b"user-fe"), TlvRecord.raw("é")],
    ]
    topic_id = await produce(address, "shared", written)
    lines = await rust_read(address, topic_id)
    assert records(lines) == [
        ("Data", 0x01, b"hello"),
        ("Data", 0x01, b"\x00\xff binary"),
        ("Data", 0x01, b""),
        ("UserDefined", 0x80, b"user-80"),
        ("UserDefined", 0xFE, b"user-fe"),
        ("Data", 0x01, "é".encode()),
    ]
    assert next(line["text"] for line in lines if line.get("type_byte") == 1) == "hello"
    assert not errors(lines)
    assert end(lines) == sum(len(encode_records(batch)) for batch in written)


CLASHES = [
    (TlvRecord.json({"a": 1}), "Tombstone"),
    (TlvRecord(RecordType.MSGPACK, b"\x81\xa1a\x01"), "Transaction"),
    (TlvRecord(RecordType.PROTOBUF, b"\x08\x01"), "Checkpoint"),
    (TlvRecord(RecordType.AVRO, b"\x02"), "Schema"),
    (TlvRecord.key_value("k", b"v"), "Compressed"),
    (TlvRecord.timestamped(7, b"t"), "Unknown"),
    (TlvRecord.key_timestamped("k", 7, b"kt"), "Unknown"),
]
"""Each of our types whose byte means something else to the Rust client, and that meaning."""


async def test_clashing_type_bytes_keep_their_bytes_under_rust_names(address: str) -> None:
    topic_id = await produce(address, "clash", [[record for record, _ in CLASHES]])
    lines = await rust_read(address, topic_id)
    assert records(lines) == [(name, r.record_type, r.value) for r, name in CLASHES]
    assert records(lines)[0][2] == b'{"a":1}'
    assert records(lines)[4][2] == b"\x01\x00kv"  # key length u16 LE, key, value
    assert next(line["tombstone"] for line in lines if "type" in line) is True
    assert not errors(lines)


@pytest.mark.parametrize(
    ("after", "error"),
    [
        # The null's last two length bytes (00 00) start a record of type 0x00 whose length
        # takes in the next record's type and length: 00 01 05 00 -> 327936 bytes.
        ([TlvRecord.raw("after")], "Insufficient data for payload: need 327936 bytes, have 7"),
        # At the end of the window only those two bytes are left.
        ([], "Insufficient data for header: need 5 bytes, have 2"),
    ],
    ids=["record-follows", "window-ends"],
)
async def test_a_null_record_stops_the_rust_parser_in_its_window(
    address: str, after: list[TlvRecord], error: str
) -> None:
    """Our NULL (0xFF) has the 7-byte extended header; Rust reads 5 bytes, then misparses."""
    written = [TlvRecord.raw("before"), TlvRecord.null(), *after]
    topic_id = await produce(address, "nulls", [written])
    lines = await rust_read(address, topic_id)
    assert records(lines) == [("Data", 0x01, b"before"), ("Unknown", 0xFF, b"")]
    assert errors(lines) == [error]


async def test_a_compressed_batch_reaches_rust_as_one_opaque_user_defined_record(
    address: str,
) -> None:
    values = [b"compressible value %d " % (n % 3) * 4 for n in range(50)]
    async with Producer(address, ProducerConfig(compression=True)) as producer:
        topic_id = await producer.resolve_topic("packed", create=True)
        await producer.send_batch(topic_id=topic_id, records=values)
    envelope = compress_records(encode_values(values))
    lines = await rust_read(address, topic_id)
    assert records(lines) == [("UserDefined", 0xC0, envelope[5:])]
    assert not errors(lines)
    assert end(lines) == len(envelope)
    decoded, used = decode_stream(envelope)
    assert [r.value for r in decoded] == values
    assert used == len(envelope)


RUST_WRITTEN = [
    (RustRecordType.DATA, b"rust-data"),
    (RustRecordType.TOMBSTONE, b"key-1"),
    (RustRecordType.TRANSACTION, b"tx"),
    (RustRecordType.CHECKPOINT, b"cp"),
    (RustRecordType.SCHEMA, b"schema"),
    (RustRecordType.COMPRESSED, b"marker"),
    (0x80, b"user-80"),
    (0xC0, b"user-c0"),
    (RustRecordType.UNKNOWN, b"unknown-ff"),
    (RustRecordType.DATA, b""),
]
"""What the Rust program's `write` mode sends, in order, one `Producer::send` per record."""


async def poll_all(address: str, topic_id: int, dialect: RecordDialect) -> list[tuple[int, bytes]]:
    config = StandaloneConfig("py", topic_id, record_dialect=dialect, poll_timeout_s=0.5)
    got: list[tuple[int, bytes]] = []
    async with StandaloneConsumer(address, config) as consumer:
        async with asyncio.timeout(10):
            while len(got) < len(RUST_WRITTEN):
                result = await consumer.poll()
                if result is not None:
                    got += [(r.record_type, r.value) for r in result.records]
    return got


async def test_records_the_rust_client_writes_read_with_the_rust_dialect(address: str) -> None:
    conn = await Connection.open(address)
    try:
        topic_id = (await operations.create_topic(conn, "from-rust")).id
    finally:
        await conn.close()
    lines = await run_rust("write", address, str(topic_id))
    assert lines == [{"sent": len(RUST_WRITTEN), "bytes": sum(5 + len(v) for _, v in RUST_WRITTEN)}]
    assert await poll_all(address, topic_id, RecordDialect.RUST) == RUST_WRITTEN
    # Our default dialect takes 0xC0 for its LZ4 envelope ("user-c0" starts with codec 0x75).
    with pytest.raises(ProtocolError, match="unknown compression codec 0x75"):
        await poll_all(address, topic_id, RecordDialect.LNC)
