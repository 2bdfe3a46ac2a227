"""lnc-client: the Python client for the Lance Wire Protocol, with an embedded Lance server.

Layers, from the bottom up: `errors` (one exception hierarchy), `protocol` (sans-I/O frames,
control payloads and TLV records), `connection` (one connection: writes, one reader, exact reply
matching), `reconnect` and `operations` (reconnects, retries, typed control operations), then the
objects users hold: `Producer`, `StandaloneConsumer` and `LanceClient`. The `server` package is an
embedded Lance-compatible server on the same protocol layer; `cli` is the `lnc` command.

Everything a user needs is importable from here.
"""

from lnc_client.admin import NO_LIMIT, LanceClient, TopicRef
from lnc_client.config import (
    Address,
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
from lnc_client.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackpressureError,
    ConnectionError,
    ForwardFailedError,
    InvalidFrameError,
    InvalidRequestError,
    InvalidTopicNameError,
    LanceError,
    NotLeaderError,
    ProtocolError,
    RateLimitedError,
    ReplicationError,
    ServerCatchingUpError,
    ServerError,
    ServerIOError,
    TimeoutError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
    UnsupportedCommandError,
    validate_topic_name,
)
from lnc_client.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore
from lnc_client.producer import Producer, ProducerMetrics, SendAck, SendCallback, SendHandle
from lnc_client.protocol import (
    AuthResult,
    ClusterStatus,
    CommitAck,
    FetchResult,
    RecordType,
    RetentionInfo,
    RetentionResult,
    SubscribeAck,
    TlvRecord,
    TopicInfo,
    decode_records,
    encode_records,
)

__version__ = "0.1.0"

__all__ = [
    "NO_LIMIT",
    "AccessDeniedError",
    "Address",
    "AuthResult",
    "AuthenticationError",
    "BackpressureError",
    "BufferFullPolicy",
    "ClientConfig",
    "ClusterStatus",
    "CommitAck",
    "Connection",
    "ConnectionError",
    "ConnectionOptions",
    "FetchResult",
    "FileOffsetStore",
    "ForwardFailedError",
    "InvalidFrameError",
    "InvalidRequestError",
    "InvalidTopicNameError",
    "LanceClient",
    "LanceError",
    "MemoryOffsetStore",
    "NotLeaderError",
    "OffsetStore",
    "PollResult",
    "Producer",
    "ProducerConfig",
    "ProducerMetrics",
    "ProtocolError",
    "RateLimitedError",
    "ReconnectConfig",
    "RecordType",
    "ReplicationError",
    "RetentionInfo",
    "RetentionResult",
    "SeekPosition",
    "SendAck",
    "SendCallback",
    "SendHandle",
    "ServerCatchingUpError",
    "ServerError",
    "ServerIOError",
    "StandaloneConfig",
    "StandaloneConsumer",
    "SubscribeAck",
    "TimeoutError",
    "TlvRecord",
    "TopicAlreadyExistsError",
    "TopicInfo",
    "TopicNotFoundError",
    "TopicRef",
    "UnsupportedCommandError",
    "__version__",
    "consumer_id_for",
    "decode_records",
    "encode_records",
    "parse_address",
    "validate_topic_name",
]
