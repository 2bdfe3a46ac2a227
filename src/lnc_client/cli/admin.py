"""`lnc` topic and cluster commands, as the Rust `lnc` has them, and `ping`.

The commands: list-topics, get-topic, create-topic, delete-topic, set-retention,
cluster-status and ping.

Each handler opens one `LanceClient` (`common.Endpoint.client`), makes the calls and prints the
result in the Rust `lnc`'s layout (or as JSON with `--json`). A topic is taken by id or by name.

Retention: the Rust CLI documents 0 as "no limit" but sends 0, which the server treats as a
real limit (max_bytes 0 deletes every closed segment). Here 0 means what the help says: it is
sent as "no limit"; the output is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Final

from lnc_client.cli.common import add_server_options, endpoint, format_bytes, topic_arg, utc_time
from lnc_client.protocol.control import ClusterStatus, TopicInfo

if TYPE_CHECKING:
    from lnc_client.cli.common import Subparsers

__all__ = ["add_admin_parsers"]

_UNLIMITED: Final = "unlimited"


def add_admin_parsers(subparsers: Subparsers) -> None:
    """Add the topic and cluster commands to the `lnc` parser."""
    _command(subparsers, "list-topics", "List all topics from a remote server", _list_topics)
    _command(subparsers, "get-topic", "Get details of a specific topic", _get_topic, topic=True)
    parser = _command(
        subparsers, "create-topic", "Create a topic with retention policy", _create_topic
    )
    parser.add_argument("-n", "--name", required=True, help="topic name")
    _retention_options(parser, required=False)
    parser.add_argument(
        "--if-not-exists", action="store_true", help="succeed if the topic exists already"
    )
    parser = _command(
        subparsers,
        "delete-topic",
        "Delete a topic from a remote server",
        _delete_topic,
        topic=True,
        json=False,
    )
    parser.add_argument("--force", action="store_true", help="skip confirmation prompt")
    parser = _command(
        subparsers,
        "set-retention",
        "Set retention policy for a topic",
        _set_retention,
        topic=True,
        json=False,
    )
    _retention_options(parser, required=True)
    _command(subparsers, "cluster-status", "Show cluster status and health", _cluster_status)
    parser = _command(subparsers, "ping", "Measure round-trip times to a server", _ping, json=False)
    parser.add_argument("-c", "--count", type=int, default=4, help="pings to send (default 4)")
    parser.add_argument(
        "-i", "--interval", type=float, default=0.2, help="seconds between pings (default 0.2)"
    )


def _command(
    subparsers: Subparsers,
    name: str,
    summary: str,
    handler: Callable[[argparse.Namespace], Coroutine[object, object, int]],
    *,
    topic: bool = False,
    json: bool = True,
) -> argparse.ArgumentParser:
    """Add one command with the server options (and `-t/--topic`, `--json` if asked)."""
    parser = subparsers.add_parser(name, help=summary, description=summary + ".")
    add_server_options(parser)
    if topic:
        parser.add_argument("-t", "--topic", type=topic_arg, required=True, help="topic id or name")
    if json:
        parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handler)
    return parser


def _retention_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--max-age-secs",
        type=int,
        required=required,
        help="maximum age in seconds (0 = no limit)",
    )
    parser.add_argument(
        "--max-bytes", type=int, required=required, help="maximum size in bytes (0 = no limit)"
    )


def _limit(value: int | None) -> int | None:
    """A CLI limit as the library takes it: 0 and "not given" both mean no limit."""
    if value is not None and value < 0:
        raise ValueError("retention limits are >= 0")
    return value or None


def _age_text(value: int) -> str:
    return _UNLIMITED if value == 0 else f"{value} seconds"


def _bytes_text(value: int) -> str:
    return _UNLIMITED if value == 0 else format_bytes(value)


def _topic_json(topic: TopicInfo) -> dict[str, object]:
    retention = None
    if topic.retention is not None:
        retention = {
            "max_age_secs": topic.retention.max_age_secs,
            "max_bytes": topic.retention.max_bytes,
        }
    return {
        "id": topic.id,
        "name": topic.name,
        "created_at": topic.created_at,
        "retention": retention,
    }


async def _list_topics(args: argparse.Namespace) -> int:
    where = endpoint(args)
    async with where.client() as client:
        topics = await client.list_topics()
    if args.json:
        print(json.dumps([_topic_json(topic) for topic in topics]))
        return 0
    if not topics:
        print(f"No topics found on server {where.text}")
        return 0
    print(f"Topics on {where.text}:")
    print(f"{'ID':<8} {'NAME':<32} {'CREATED':<20} {'MAX AGE':>12} {'MAX BYTES':>12}")
    print("-" * 88)
    for topic in topics:
        age = size = "-"
        if topic.retention is not None:
            age = (
                "unlimited"
                if topic.retention.max_age_secs == 0
                else f"{topic.retention.max_age_secs}s"
            )
            size = _bytes_text(topic.retention.max_bytes)
        created = utc_time(topic.created_at)
        print(f"{topic.id:<8} {topic.name:<32} {created:<20} {age:>12} {size:>12}")
    return 0


async def _get_topic(args: argparse.Namespace) -> int:
    async with endpoint(args).client() as client:
        topic = await client.get_topic(args.topic)
    if args.json:
        print(json.dumps(_topic_json(topic)))
        return 0
    print("Topic Details:")
    print(f"  ID:         {topic.id}")
    print(f"  Name:       {topic.name}")
    print(f"  Created:    {utc_time(topic.created_at, '%Y-%m-%d %H:%M:%S UTC')}")
    if topic.retention is None:
        print("  Retention:  not configured")
    else:
        print("  Retention:")
        print(f"    Max Age:   {_age_text(topic.retention.max_age_secs)}")
        print(f"    Max Bytes: {_bytes_text(topic.retention.max_bytes)}")
    return 0


async def _create_topic(args: argparse.Namespace) -> int:
    age, size = _limit(args.max_age_secs), _limit(args.max_bytes)
    async with endpoint(args).client() as client:
        if args.max_age_secs is not None or args.max_bytes is not None:
            topic = await client.create_topic_with_retention(
                args.name, max_age_secs=age, max_bytes=size
            )
        elif args.if_not_exists:
            topic = await client.ensure_topic(args.name)
        else:
            topic = await client.create_topic_once(args.name)
    if args.json:
        print(json.dumps(_topic_json(topic)))
        return 0
    print("Topic created successfully:")
    print(f"  ID: {topic.id}")
    print(f"  Name: {topic.name}")
    if args.max_age_secs is not None:
        print(f"  Max age: {_age_text(args.max_age_secs)}")
    if args.max_bytes is not None:
        print(f"  Max bytes: {_bytes_text(args.max_bytes)}")
    return 0


async def _delete_topic(args: argparse.Namespace) -> int:
    where = endpoint(args)
    if not args.force:
        print(
            f"Are you sure you want to delete topic {args.topic} on {where.text}? "
            "This cannot be undone. [y/N]: ",
            end="",
            flush=True,
        )
        answer = await asyncio.to_thread(sys.stdin.readline)
        if answer.strip().lower() not in ("y", "yes"):
            print("Aborted.")
            return 0
    async with where.client() as client:
        deleted = await client.delete_topic(args.topic)
    print(f"Topic {deleted} deleted successfully.")
    return 0


async def _set_retention(args: argparse.Namespace) -> int:
    age, size = _limit(args.max_age_secs), _limit(args.max_bytes)
    async with endpoint(args).client() as client:
        topic = await client.set_retention(args.topic, max_age_secs=age, max_bytes=size)
    print(f"Retention policy set for topic {topic.id}")
    print(f"  Max age: {_age_text(args.max_age_secs)}")
    print(f"  Max bytes: {_bytes_text(args.max_bytes)}")
    return 0


def _status_json(status: ClusterStatus) -> dict[str, object]:
    return {
        "node_id": status.node_id,
        "is_leader": status.is_leader,
        "leader_id": status.leader_id,
        "current_term": status.current_term,
        "node_count": status.node_count,
        "healthy_nodes": status.healthy_nodes,
        "quorum_available": status.quorum_available,
        "peer_states": dict(status.peer_states),
        "mode": status.mode,
    }


async def _cluster_status(args: argparse.Namespace) -> int:
    async with endpoint(args).client() as client:
        status = await client.get_cluster_status()
    if args.json:
        print(json.dumps(_status_json(status)))
        return 0
    leader = "unknown" if status.leader_id is None else str(status.leader_id)
    print("Cluster Status:")
    print(f"  Node ID:        {status.node_id}")
    print(f"  Is Leader:      {'yes' if status.is_leader else 'no'}")
    print(f"  Leader ID:      {leader}")
    print(f"  Current Term:   {status.current_term}")
    print(f"  Node Count:     {status.node_count}")
    print(f"  Healthy Nodes:  {status.healthy_nodes}")
    print(f"  Quorum:         {'available' if status.quorum_available else 'NOT AVAILABLE'}")
    if status.peer_states:
        print("\nPeer States:")
        for node_id, state in status.peer_states.items():
            print(f"  Node {node_id}: {state}")
    return 0


async def _ping(args: argparse.Namespace) -> int:
    if args.count < 1 or args.interval < 0:
        raise ValueError("need --count >= 1 and --interval >= 0")
    where = endpoint(args)
    times: list[float] = []
    started = time.perf_counter()
    async with where.client() as client:
        connected = time.perf_counter() - started
        print(f"PING {where.text}: connected in {connected * 1e3:.2f} ms")
        for sequence in range(1, args.count + 1):
            if sequence > 1:
                await asyncio.sleep(args.interval)
            rtt = await client.ping()
            times.append(rtt)
            print(f"keepalive from {where.text}: seq={sequence} time={rtt * 1e3:.3f} ms")
    low, high = min(times), max(times)
    mean = sum(times) / len(times)
    print(f"{len(times)} pings: min/avg/max = {low * 1e3:.3f}/{mean * 1e3:.3f}/{high * 1e3:.3f} ms")
    return 0
