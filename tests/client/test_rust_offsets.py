"""RustOffsetStore: the Rust client's offset file layout and consumer-id derivation.

The consumer-id vectors were printed by a Rust build (rustc 1.95) of
`DefaultHasher::new(); name.hash(&mut h); h.finish()`; tests/groups/test_rust_interop.py checks
more names against the Rust binary itself when it is available.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lnc_client import Producer, StandaloneConfig, StandaloneConsumer
from lnc_client.rust_offsets import RustOffsetStore, rust_consumer_id, siphash13

from .conftest import ServerUnderTest

RUST_IDS = {
    "": 3476900567878811119,
    "a": 8186225505942432243,
    "worker-1": 16750551406947868958,
    "my-service": 17897096937261218109,
    "\u00fcn\u00efcode-\u00fc": 13312089978775547945,
    "exactly8": 2180113891977074974,
    "a-consumer-name-longer-than-16-bytes": 1304978229273957604,
}


@pytest.mark.parametrize(("name", "expected"), RUST_IDS.items())
def test_consumer_id_is_rusts_default_hasher(name: str, expected: int) -> None:
    assert rust_consumer_id(name) == expected


@given(st.binary(max_size=64), st.binary(min_size=1, max_size=8))
def test_siphash_depends_on_every_byte(data: bytes, extra: bytes) -> None:
    assert 0 <= siphash13(data) < 1 << 64
    assert siphash13(data) != siphash13(data + extra)


async def test_layout_is_the_rust_lock_file_store(tmp_path: Path) -> None:
    store = RustOffsetStore(tmp_path)
    await store.save("svc", 7, 1234)
    path = tmp_path / "svc" / f"topic-7-consumer-{rust_consumer_id('svc')}.offset"
    assert store.path_for("svc", 7) == path
    assert path.read_text() == "1234\n"
    assert path.with_suffix(".lock").exists()
    assert await store.load("svc", 7) == 1234
    assert await store.load("svc", 8) is None
    await store.delete("svc", 7)
    assert not path.exists()
    assert await store.load("svc", 7) is None


async def test_a_file_written_the_rust_way_is_read(tmp_path: Path) -> None:
    path = tmp_path / "svc" / f"topic-1-consumer-{rust_consumer_id('svc')}.offset"
    path.parent.mkdir()
    path.write_text("42\n")
    assert await RustOffsetStore(tmp_path).load("svc", 1) == 42
    path.write_text("x\n")
    with pytest.raises(ValueError, match="Rust offset"):
        await RustOffsetStore(tmp_path).load("svc", 1)


async def test_save_waits_for_the_rust_lock(tmp_path: Path) -> None:
    store = RustOffsetStore(tmp_path)
    await store.save("svc", 1, 1)
    lock = os.open(store.path_for("svc", 1).with_suffix(".lock"), os.O_WRONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        saving = asyncio.ensure_future(store.save("svc", 1, 2))
        await asyncio.sleep(0.1)
        assert not saving.done()
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    await saving
    assert await store.load("svc", 1) == 2


@pytest.mark.parametrize("bad", ["", "..", "a/b"])
def test_names_that_escape_the_directory_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="Rust offset directory"):
        RustOffsetStore(tmp_path).path_for(bad, 1)


async def test_python_consumer_resumes_from_a_rust_offset(
    events_server: ServerUnderTest, tmp_path: Path
) -> None:
    address = events_server.address
    async with Producer(address) as producer:
        await producer.send_batch("events", [b"old"])
        await producer.send_batch("events", [b"new"])
    store = RustOffsetStore(tmp_path / "offsets")
    config = StandaloneConfig("svc", topic_name="events")
    async with StandaloneConsumer(address, config) as probe:
        first = await probe.poll(2)
        assert first is not None
    await store.save("svc", probe.topic_id, first.start_offset + first.records[0].total_size)
    async with StandaloneConsumer(address, config, store) as consumer:
        batch = await consumer.poll(2)
        assert batch is not None
        assert [r.value for r in batch.records] == [b"new"]
