"""lnc-client: the Python client for the Lance Wire Protocol, with an embedded Lance server.

Layers, from the bottom up: `errors` (one exception hierarchy), `protocol` (sans-I/O frames,
control payloads and TLV records), `connection` (one connection: writes, one reader, exact reply
matching), `reconnect` and `operations` (reconnects, retries, typed control operations), then the
objects users hold: `Producer`, `StandaloneConsumer`, `StreamingConsumer` and `LanceClient`,
optionally sharing a `ConnectionPool` or a `ClusterClient` (`pool`, `discovery`). Consumer groups
are in `lnc_client.groups`; `RustOffsetStore` reads the Rust client's offset files. The `server`
package is an embedded Lance-compatible server on the same protocol layer; `cli` is the `lnc`
command.

Everything a user needs is importable from here.
"""

import logging

from lnc_client.admin import NO_LIMIT, LanceClient, TopicRef
from lnc_client.config import (
    Address,
    Addresses,
    BufferFullPolicy,
    ClientConfig,
    ConnectionOptions,
    ProducerConfig,
    ReconnectConfig,
    SeekPosition,
    StandaloneConfig,
    parse_address,
)
from lnc_client.connection import Connection
from lnc_client.consumer import PollResult, StandaloneConsumer, consumer_id_for
from lnc_client.discovery import ClusterClient, ClusterDiscovery
from lnc_client.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackpressureError,
    ConnectionError,
    DisconnectedError,
    ForwardFailedError,
    InvalidFrameError,
    InvalidRequestError,
    InvalidTopicNameError,
    LanceError,
    NotLeaderError,
    PermanentConnectionError,
    ProtocolError,
    RateLimitedError,
    ReplicationError,
    SegmentMissingError,
    ServerCatchingUpError,
    ServerError,
    ServerIOError,
    TimeoutError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
    UndecodableRecordError,
    UnsupportedCommandError,
    validate_topic_name,
)
from lnc_client.metrics import ClientMetrics, ConsumerMetrics, HistogramSnapshot
from lnc_client.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore
from lnc_client.pool import ConnectionPool, PoolConfig, PoolStats
from lnc_client.producer import Producer, ProducerMetrics, SendAck, SendCallback, SendHandle
from lnc_client.protocol import (
    DEFAULT_PORT,
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    AuthResult,
    ClusterStatus,
    CommitAck,
    ControlCommand,
    FetchResult,
    Flag,
    LwpHeader,
    RecordDialect,
    RecordType,
    RetentionInfo,
    RetentionResult,
    RustRecordType,
    SubscribeAck,
    TlvRecord,
    TopicInfo,
    decode_records,
    encode_records,
)
from lnc_client.reconnect import ConnectionState
from lnc_client.rust_offsets import RustOffsetStore, rust_consumer_id
from lnc_client.streaming import StreamingConsumer

__version__ = "0.3.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_PORT",
    "HEADER_SIZE",
    "MAGIC",
    "NO_LIMIT",
    "PROTOCOL_VERSION",
    "AccessDeniedError",
    "Address",
    "Addresses",
    "AuthResult",
    "AuthenticationError",
    "BackpressureError",
    "BufferFullPolicy",
    "ClientConfig",
    "ClientMetrics",
    "ClusterClient",
    "ClusterDiscovery",
    "ClusterStatus",
    "CommitAck",
    "Connection",
    "ConnectionError",
    "ConnectionOptions",
    "ConnectionPool",
    "ConnectionState",
    "ConsumerMetrics",
    "ControlCommand",
    "DisconnectedError",
    "FetchResult",
    "FileOffsetStore",
    "Flag",
    "ForwardFailedError",
    "HistogramSnapshot",
    "InvalidFrameError",
    "InvalidRequestError",
    "InvalidTopicNameError",
    "LanceClient",
    "LanceError",
    "LwpHeader",
    "MemoryOffsetStore",
    "NotLeaderError",
    "OffsetStore",
    "PermanentConnectionError",
    "PollResult",
    "PoolConfig",
    "PoolStats",
    "Producer",
    "ProducerConfig",
    "ProducerMetrics",
    "ProtocolError",
    "RateLimitedError",
    "ReconnectConfig",
    "RecordDialect",
    "RecordType",
    "ReplicationError",
    "RetentionInfo",
    "RetentionResult",
    "RustOffsetStore",
    "RustRecordType",
    "SeekPosition",
    "SegmentMissingError",
    "SendAck",
    "SendCallback",
    "SendHandle",
    "ServerCatchingUpError",
    "ServerError",
    "ServerIOError",
    "StandaloneConfig",
    "StandaloneConsumer",
    "StreamingConsumer",
    "SubscribeAck",
    "TimeoutError",
    "TlvRecord",
    "TopicAlreadyExistsError",
    "TopicInfo",
    "TopicNotFoundError",
    "TopicRef",
    "UndecodableRecordError",
    "UnsupportedCommandError",
    "__version__",
    "consumer_id_for",
    "decode_records",
    "encode_records",
    "parse_address",
    "rust_consumer_id",
    "validate_topic_name",
]
