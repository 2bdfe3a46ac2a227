"""`lnc` data commands: fetch, consume, ingest (as Lance's Rust `lnc` does them) and produce.

Two ways of reading and writing, kept apart on purpose:

* **Raw windows, wire-identical to the Rust CLI.** `ingest` sends each batch of `--lines` (or
  the whole input) as one ingest payload, lines joined by newlines, with no record framing, over
  one `Connection`, waiting for each Ack, as the Rust `lnc` does; `fetch` and `consume` (without
  `--format`/`--limit`) print the server's raw fetch windows (`LanceClient.fetch`) in its
  layout. Either binary therefore reads what the other wrote and prints the same text.
* **Records.** `produce` sends TLV records with the `Producer` (raw, JSON or key=value, one per
  line or the whole input); `consume --format text|json|hex` (or `--limit N`) reads records
  with the `StandaloneConsumer` and prints one per line.

`--follow` keeps reading at the end of the topic until interrupted, in both modes. A topic is
taken by id or by name everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import builtins
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, TypeVar

from lnc_client.admin import LanceClient
from lnc_client.cli.common import (
    CliError,
    Endpoint,
    add_server_options,
    endpoint,
    format_bytes,
    hexdump,
    topic_arg,
)
from lnc_client.config import SeekPosition, StartPosition
from lnc_client.connection import Connection
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import ConnectionError, LanceError, ServerCatchingUpError, TimeoutError
from lnc_client.producer import Producer
from lnc_client.protocol.records import RecordType, TlvRecord

if TYPE_CHECKING:
    from lnc_client.cli.common import Subparsers

__all__ = ["add_data_parsers"]

_T = TypeVar("_T")
_WINDOW: Final = 64 * 1024
"""The Rust CLI's consume window."""
_FOLLOW_PAUSE_S: Final = 0.2
_PRODUCER_BATCH_BYTES: Final = 16 * 1024 * 1024 - 4096


def add_data_parsers(subparsers: Subparsers) -> None:
    """Add fetch, consume, ingest and produce to the `lnc` parser."""
    summary = "Fetch data from a topic at a specific offset (single fetch)"
    parser = subparsers.add_parser("fetch", help=summary, description=summary + ".")
    add_server_options(parser)
    _topic_option(parser, "topic to fetch from")
    parser.add_argument("-o", "--offset", type=int, default=0, help="byte offset to start from")
    parser.add_argument(
        "-m", "--max-bytes", type=int, default=65536, help="maximum bytes to fetch (65536)"
    )
    parser.add_argument("--hex", action="store_true", help="output data in hex format")
    parser.set_defaults(handler=_fetch)

    summary = "Consume data continuously from a topic with rewind/replay support"
    parser = subparsers.add_parser("consume", help=summary, description=summary + ".")
    add_server_options(parser)
    _topic_option(parser, "topic to consume from")
    parser.add_argument("--from-beginning", action="store_true", help="start at offset 0")
    parser.add_argument("--from-end", action="store_true", help="start at the end (tail mode)")
    parser.add_argument("-o", "--offset", type=int, help="start from a specific byte offset")
    parser.add_argument(
        "-m", "--max-records", type=int, help="maximum number of fetches before stopping"
    )
    parser.add_argument("--hex", action="store_true", help="output data in hex format")
    parser.add_argument(
        "-F", "--follow", action="store_true", help="keep reading new data until interrupted"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "hex"),
        help="decode records and print one per line (default: raw fetch windows)",
    )
    parser.add_argument(
        "-n", "--limit", type=int, help="stop after this many records (implies --format text)"
    )
    parser.set_defaults(handler=_consume)

    summary = "Ingest data to a topic from file or stdin"
    parser = subparsers.add_parser("ingest", help=summary, description=summary + ".")
    add_server_options(parser)
    _topic_option(parser, "topic to ingest to")
    parser.add_argument("-f", "--file", help="file to read data from ('-' for stdin)")
    parser.add_argument(
        "--lines", action="store_true", help="read input as newline-delimited records"
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="batch size for line mode (100)"
    )
    parser.set_defaults(handler=_ingest)

    summary = "Produce records (TLV) to a topic from arguments, a file or stdin"
    parser = subparsers.add_parser("produce", help=summary, description=summary + ".")
    add_server_options(parser)
    _topic_option(parser, "topic to produce to")
    parser.add_argument("values", nargs="*", metavar="VALUE", help="records to send")
    parser.add_argument("-f", "--file", help="read records from this file ('-' for stdin)")
    parser.add_argument(
        "--raw", action="store_true", help="the whole input is one record (default: one a line)"
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--json", action="store_true", help="each record is JSON (type JSON)")
    kind.add_argument("--kv", action="store_true", help="each record is key=value (type KEY_VALUE)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="records per batch (default 100)"
    )
    parser.set_defaults(handler=_produce)


def _topic_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-t", "--topic", type=topic_arg, required=True, help=f"{what}: id or name")


async def _topic_id(client: LanceClient, topic: int | str) -> int:
    """The id of `topic`; a name is looked up, an id is taken as it is (as the Rust CLI does)."""
    return await client.topic_id(topic)


# --- fetch ------------------------------------------------------------------------------------


def _print_data(data: bytes | memoryview, *, as_hex: bool) -> None:
    if as_hex:
        print(hexdump(data))
    else:
        print(bytes(data).decode("utf-8", "replace"))


async def _fetch(args: argparse.Namespace) -> int:
    if args.offset < 0 or args.max_bytes < 1:
        raise CliError("need --offset >= 0 and --max-bytes >= 1")
    async with endpoint(args).client() as client:
        topic_id = await _topic_id(client, args.topic)
        print(f"Fetching from topic {topic_id} at offset {args.offset}")
        print(f"Max bytes: {args.max_bytes}")
        print()
        sys.stdout.flush()
        result = await client.fetch(topic_id, args.offset, args.max_bytes)
    if not result.data:
        print(f"No data available at offset {args.offset}")
        return 0
    print(f"Bytes returned: {len(result.data)}")
    print(f"Next offset: {result.next_offset}")
    print(f"Record count: {result.record_count}")
    print("End of stream: false")
    print()
    print("Data (hex):" if args.hex else "Data (UTF-8 lossy):")
    _print_data(result.data, as_hex=args.hex)
    return 0


# --- consume ----------------------------------------------------------------------------------


def _start(args: argparse.Namespace) -> StartPosition:
    """Where consume starts: --from-beginning, else --from-end, else -o, else the beginning."""
    if args.from_beginning or (args.offset is None and not args.from_end):
        return SeekPosition.BEGINNING
    if args.from_end:
        return SeekPosition.END
    return SeekPosition.offset(args.offset)


def _start_text(position: StartPosition) -> str:
    if position == SeekPosition.BEGINNING:
        return "beginning"
    if position == SeekPosition.END:
        return "end (tail)"
    return f"offset {position[1]}"


async def _consume(args: argparse.Namespace) -> int:
    if (args.offset is not None and args.offset < 0) or (args.limit is not None and args.limit < 0):
        raise CliError("need --offset >= 0 and --limit >= 0")
    if args.format is not None or args.limit is not None:
        return await _consume_records(args, endpoint(args))
    return await _consume_windows(args, endpoint(args))


async def _consume_windows(args: argparse.Namespace, where: Endpoint) -> int:
    """The Rust CLI's consume: raw 64 KiB windows, one block per fetch, then a summary."""
    fetches = total_bytes = total_records = 0
    async with where.client() as client:
        topic_id = await _topic_id(client, args.topic)
        start = _start(args)
        print(f"Consuming from topic {topic_id} starting at {_start_text(start)}")
        if args.max_records is not None:
            print(f"Max records: {args.max_records}")
        print()
        if isinstance(start, tuple):
            position = start[1]
        elif start == SeekPosition.END:
            position = await client.end_offset(topic_id)
        else:
            position = 0
        limit = args.max_records
        while limit is None or fetches < limit:
            try:
                result = await client.fetch(topic_id, position, _WINDOW)
                data = result.data
            except ServerCatchingUpError:
                data = b""
            if not data:
                if args.follow:
                    sys.stdout.flush()
                    await asyncio.sleep(_FOLLOW_PAUSE_S)
                    continue
                print("No more data available.")
                break
            fetches += 1
            total_bytes += len(data)
            total_records += result.record_count
            position = result.next_offset
            print(
                f"--- Fetch {fetches} (offset: {position}, bytes: {len(data)}, "
                f"records: {result.record_count}) ---"
            )
            _print_data(data, as_hex=args.hex)
            print()
    print()
    print("Summary:")
    print(f"  Total fetches: {fetches}")
    print(f"  Total bytes: {total_bytes}")
    print(f"  Total records: {total_records}")
    print(f"  Final offset: {position}")
    return 0


def _record_line(record: TlvRecord, fmt: str) -> str:
    """One record as a line of output in `fmt` (text, json or hex)."""
    key: str | None = None
    value = record.value
    if record.record_type == RecordType.KEY_VALUE:
        key, value = record.as_key_value()
    if fmt == "hex":
        prefix = f"{record.record_type:02x} "
        return prefix + (f"{key}=" if key is not None else "") + value.hex()
    if fmt == "text":
        text = value.decode("utf-8", "replace")
        return text if key is None else f"{key}={text}"
    body: dict[str, object] = {"type": _type_name(record.record_type)}
    if key is not None:
        body["key"] = key
    try:
        text = value.decode()
    except UnicodeDecodeError:
        body["value_base64"] = base64.b64encode(value).decode()
    else:
        body["value"] = text
        if record.record_type == RecordType.JSON:
            with contextlib.suppress(ValueError):
                body["value"] = json.loads(text)
    return json.dumps(body, ensure_ascii=False)


def _type_name(record_type: int) -> str:
    try:
        return RecordType(record_type).name.lower()
    except ValueError:
        return f"{record_type:#04x}"


async def _consume_records(args: argparse.Namespace, where: Endpoint) -> int:
    """Records, one per line, with the StandaloneConsumer."""
    fmt = args.format or "text"
    async with where.client() as client:
        topic_id = await _topic_id(client, args.topic)
        end = None if args.follow else await client.end_offset(topic_id)
    config = where.consumer_config(
        topic_id, start_position=_start(args), max_fetch_bytes=1024 * 1024, poll_timeout_s=0.5
    )
    printed = fetches = 0
    idle_since = time.monotonic()
    async with await StandaloneConsumer.connect(where.address, config) as consumer:
        while (args.limit is None or printed < args.limit) and (
            args.max_records is None or fetches < args.max_records
        ):
            if end is not None and consumer.current_offset >= end:
                break
            result = await consumer.poll()
            if result is None:
                if end is not None and time.monotonic() - idle_since > where.timeout_s:
                    raise CliError(f"no records arrived for {where.timeout_s:g} s")
                continue
            idle_since = time.monotonic()
            fetches += 1
            records = result.records
            if args.limit is not None:
                records = records[: args.limit - printed]
            print("\n".join(_record_line(record, fmt) for record in records))
            printed += len(records)
            if args.follow:
                sys.stdout.flush()
    return 0


# --- ingest -----------------------------------------------------------------------------------


def _open_input(name: str | None) -> BinaryIO:
    if name is None or name == "-":
        return sys.stdin.buffer
    try:
        return Path(name).open("rb")
    except OSError as error:
        raise CliError(f"cannot open {name}: {error.strerror}") from None


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The non-empty lines of `stream`, without their line ends (LF or CR LF)."""
    for line in stream:
        stripped = line.rstrip(b"\n")
        if stripped.endswith(b"\r"):
            stripped = stripped[:-1]
        if stripped:
            yield stripped


def _chunks(items: Iterator[_T], size: int) -> Iterator[list[_T]]:
    """`items` in lists of `size` (the last one shorter)."""
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _in_thread(chunks: Iterator[list[_T]]) -> AsyncIterator[list[_T]]:
    """Pull each chunk in a worker thread: reading a file or stdin never blocks the loop."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


async def _send_raw(
    conn: Connection, topic_id: int, payload: bytes, *, batch_id: int, count: int
) -> None:
    """Send one ingest payload as it is and wait for its Ack."""
    done: asyncio.Future[LanceError | None] = asyncio.get_running_loop().create_future()

    def settle(_batch_id: int, error: LanceError | None) -> None:
        if not done.done():
            done.set_result(error)

    conn.send_ingest(topic_id, payload, batch_id=batch_id, record_count=count, on_done=settle)
    try:
        error = await asyncio.wait_for(done, conn.options.request_timeout_s)
    except builtins.TimeoutError:
        timeout = conn.options.request_timeout_s
        raise TimeoutError(f"no Ack for batch {batch_id} within {timeout:g} s") from None
    if error is not None:
        raise error


async def _open_first(where: Endpoint) -> Connection:
    """One connection to the first address that answers (the seeds in turn)."""
    options = where.client_config().connection_options()
    *others, last = (where.address, *where.seeds)
    for address in others:
        with contextlib.suppress(ConnectionError, TimeoutError):
            return await Connection.open(address, options)
    return await Connection.open(last, options)


async def _ingest(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CliError("need --batch-size >= 1")
    where = endpoint(args)
    topic_id = args.topic
    if isinstance(topic_id, str):
        async with where.client() as client:
            topic_id = await client.topic_id(topic_id)
    stream = _open_input(args.file)
    records = total = 0
    started = time.perf_counter()
    conn = await _open_first(where)
    try:
        with stream:
            if args.lines:
                batches = _in_thread(_chunks(_lines(stream), args.batch_size))
            else:
                whole = await asyncio.to_thread(stream.read)
                batches = _in_thread(iter([[whole]] if whole else []))
            batch_id = 0
            async for batch in batches:
                batch_id += 1
                payload = b"\n".join(batch)
                await _send_raw(conn, topic_id, payload, batch_id=batch_id, count=len(batch))
                records += len(batch)
                total += len(payload)
    finally:
        await conn.close()
    elapsed = time.perf_counter() - started
    print("Ingest complete:")
    print(f"  Topic:       {topic_id}")
    print(f"  Records:     {records}")
    print(f"  Bytes:       {format_bytes(total)}")
    print(f"  Duration:    {elapsed:.2f}s")
    print(f"  Throughput:  {total / max(elapsed, 1e-9) / 1024 / 1024:.2f} MB/s")
    return 0


# --- produce ----------------------------------------------------------------------------------


def _record(value: bytes, args: argparse.Namespace) -> TlvRecord:
    if args.json:
        try:
            return TlvRecord.json_value(json.loads(value))
        except ValueError as error:
            raise CliError(f"not JSON: {value[:60]!r}: {error}") from None
    if args.kv:
        key, separator, rest = value.partition(b"=")
        if not separator:
            raise CliError(f"not key=value: {value[:60]!r}")
        return TlvRecord.key_value(key, rest)
    return TlvRecord.raw(value)


def _produce_values(args: argparse.Namespace) -> Iterator[bytes]:
    if args.values:
        if args.file is not None:
            raise CliError("give records as arguments or with --file, not both")
        yield from (value.encode() for value in args.values)
        return
    with _open_input(args.file) as stream:
        if args.raw:
            yield stream.read()
        else:
            yield from _lines(stream)


async def _produce(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CliError("need --batch-size >= 1")
    where = endpoint(args)
    config = where.producer_config(batch_size=_PRODUCER_BATCH_BYTES, linger_ms=0)
    sent = size = 0
    started = time.perf_counter()
    async with await Producer.connect(where.address, config) as producer:
        topic_id = (
            await producer.resolve_topic(args.topic) if isinstance(args.topic, str) else args.topic
        )
        records = (_record(value, args) for value in _produce_values(args))
        async for batch in _in_thread(_chunks(records, args.batch_size)):
            await producer.send_batch_async(topic_id, batch)
            sent += len(batch)
            size += sum(record.total_size for record in batch)
        await producer.flush()
    elapsed = time.perf_counter() - started
    print(
        f"Produced {sent} records ({format_bytes(size)}) to topic {topic_id} "
        f"in {elapsed:.2f}s, every one acknowledged"
    )
    return 0
