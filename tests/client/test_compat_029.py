"""Behaviour that code written for lnc-client 0.2.9 relies on (docs/migration.md).

The 0.2.9 suite itself runs in CI (`.ci/compat_029.py`); these tests pin the same behaviour in
our own suite, against the embedded server where a server is involved.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lnc_client import ClientConfig, SeekPosition, StandaloneConfig
from lnc_client.client import LanceClient as CachingClient
from lnc_client.errors import (
    ERROR_CODE_MAP,
    InvalidFrameError,
    InvalidTopicNameError,
    LanceError,
    NotLeaderError,
    ServerCatchingUpError,
    TopicNotFoundError,
    error_from_response,
    validate_topic_name,
)
from lnc_client.offset import FileOffsetStore as LegacyFileOffsetStore
from lnc_client.protocol import TAIL_OFFSET, build_fetch_payload, parse_fetch_response
from lnc_client.protocol.frame import LwpHeader
from lnc_client.tlv import TlvRecord, decode_records, encode_records

from .conftest import start_server


def test_validate_topic_name_returns_the_name_and_names_the_rule() -> None:
    name = "my-events-1"
    assert validate_topic_name(name) is name
    with pytest.raises(InvalidTopicNameError, match=r"Invalid topic name 'a b'.*\[a-zA-Z0-9-\]"):
        validate_topic_name("a b")
    with pytest.raises(ValueError, match="must not be empty"):
        validate_topic_name("")


def test_error_from_response_maps_0_2_9_codes() -> None:
    assert isinstance(error_from_response(0x10, "topic 4"), TopicNotFoundError)
    leader = error_from_response(0x20, "x", {"leader_addr": "10.0.0.5:1992"})
    assert isinstance(leader, NotLeaderError)
    assert leader.leader_addr == "10.0.0.5:1992"
    behind = error_from_response(0x14, "x", {"server_offset": 9})
    assert isinstance(behind, ServerCatchingUpError)
    assert behind.server_offset == 9
    assert isinstance(error_from_response(0x05, "bad crc"), InvalidFrameError)
    unknown = error_from_response(0x99, "Topic 7 not found")
    assert isinstance(unknown, TopicNotFoundError)  # unknown codes map the text instead
    assert unknown.topic_id == 7
    assert set(ERROR_CODE_MAP) >= {0x10, 0x11, 0x12, 0x14, 0x20, 0x31, 0x40}


def test_frame_errors_keep_0_2_9_texts() -> None:
    with pytest.raises(InvalidFrameError, match=r"^Invalid magic"):
        LwpHeader.decode(b"XYZW" + bytes(40))
    with pytest.raises(InvalidFrameError, match=r"^Buffer too small: 10 of 44 bytes"):
        LwpHeader.decode(bytes(10))
    plain = InvalidFrameError("bad crc")
    assert (str(plain), plain.fault, plain.retryable) == ("bad crc", None, False)


def test_fetch_result_unpacks_as_the_0_2_9_tuple() -> None:
    payload = struct.pack("<QII", 300, 3, 1) + b"abc"
    start, end, high_water_mark, data = parse_fetch_response(payload)
    assert (start, end, high_water_mark, bytes(data)) == (297, 300, 300, b"abc")
    assert build_fetch_payload(topic_id=3, offset=1000, max_bytes=64) == struct.pack(
        "<IQI", 3, 1000, 64
    )


def test_decode_records_leaves_out_a_partial_tail_and_stops_at_the_count() -> None:
    payload = encode_records([TlvRecord.raw(b"a"), TlvRecord.raw(b"b"), TlvRecord.raw(b"c")])
    assert [r.value for r in decode_records(payload, expected_count=2)] == [b"a", b"b"]
    assert [r.value for r in decode_records(payload[:-1])] == [b"a", b"b"]


def test_standalone_config_topic_name_and_start_offset() -> None:
    assert StandaloneConfig("c", topic_id=1).topic_name is None
    assert StandaloneConfig("c", topic_name="").topic_name is None
    assert StandaloneConfig("c", topic_id=1).start_offset == 0
    assert StandaloneConfig("c", start_offset=42).start_offset == 42
    end = StandaloneConfig("c", topic_id=1, start_position=SeekPosition.END)
    assert end.start_offset == TAIL_OFFSET  # not 0.2.9's 2**63-1: a wire fix


async def test_legacy_file_store_reads_a_file_written_by_0_2_9(tmp_path: Path) -> None:
    record = {"consumer": "group/a", "topic_id": 3, "topic_name": None, "offset": 5000}
    (tmp_path / "group_a_3.offset").write_text(json.dumps(record))
    store = LegacyFileOffsetStore(tmp_path)
    assert await store.load("group/a", 3) == 5000
    await store.save("group/a", 0, 6000, topic_name="events")
    saved = json.loads((tmp_path / "group_a_events.offset").read_text())
    assert (saved["consumer"], saved["offset"], saved["topic_name"]) == ("group/a", 6000, "events")
    (tmp_path / "x_1.offset").write_text("not json")
    assert await store.load("x", 1) is None
    await store.delete("group/a", 0, topic_name="events")
    assert not (tmp_path / "group_a_events.offset").exists()


async def test_caching_client_resolves_creates_and_caches(tmp_path: Path) -> None:
    async with start_server(tmp_path / "data") as server:
        host, port = server.address.rsplit(":", 1)
        async with CachingClient(ClientConfig(host=host, port=int(port))) as client:
            topic_id = await client.resolve_topic_id("made-on-demand")  # 0.2.9 creates it
            assert [t.name for t in await client.list_topics()] == ["made-on-demand"]
            assert (await client.ensure_topic("made-on-demand")).id == topic_id
            await client.delete_topic(topic_id)
            # The cache answers without asking: the 0.2.9 behaviour, stale by design.
            assert await client.resolve_topic_id("made-on-demand") == topic_id
            with pytest.raises(LanceError):
                await client.ensure_topic("bad name")


async def test_raw_lwp_connection_keeps_a_timed_out_frame(tmp_path: Path) -> None:
    from lnc_client.connection import LwpConnection, connect
    from lnc_client.errors import TimeoutError as LanceTimeout
    from lnc_client.protocol import ControlCommand, build_control_frame, build_ingest_frame
    from lnc_client.server import FaultConfig

    faults = FaultConfig(ack_delay_ms=300)
    async with start_server(tmp_path / "data", faults=faults) as server:
        conn = await connect("127.0.0.1", server.port)
        assert isinstance(conn, LwpConnection)
        assert conn.connected
        await conn.send_frame(build_control_frame(ControlCommand.CREATE_TOPIC, b"raw"))
        header, payload = await conn.recv_frame(timeout=5)
        assert header.command == ControlCommand.TOPIC_RESPONSE
        topic_id = json.loads(payload)["id"]
        records = encode_records([TlvRecord.raw(b"x")])
        await conn.send_frame(build_ingest_frame(records, 7, 1, topic_id))
        with pytest.raises(LanceTimeout):
            await conn.recv_frame(timeout=0.05)  # the Ack is held back 300 ms
        header = await conn.recv_header(timeout=5)
        assert (header.is_ack, header.batch_id) == (True, 7)
        assert await conn.recv_payload(header) == b""
        with pytest.raises(LanceTimeout):  # nothing held, nothing coming: the timeout holds
            await conn.recv_payload(header, timeout=0.05)
        await conn.close()
        assert not conn.connected
