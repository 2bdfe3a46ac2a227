"""lnc-client: the Python client for the Lance Wire Protocol, with an embedded Lance server.

Layers, from the bottom up: `errors` (one exception hierarchy), `protocol` (sans-I/O frames,
control payloads and TLV records), then the asyncio connection, producer, consumer and admin
client built on it, and `server`, an embedded Lance-compatible server on the same protocol layer.
"""

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
from lnc_client.protocol import (
    ClusterStatus,
    RecordType,
    RetentionInfo,
    TlvRecord,
    TopicInfo,
    decode_records,
    encode_records,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "BackpressureError",
    "ClusterStatus",
    "ConnectionError",
    "ForwardFailedError",
    "InvalidFrameError",
    "InvalidRequestError",
    "InvalidTopicNameError",
    "LanceError",
    "NotLeaderError",
    "ProtocolError",
    "RateLimitedError",
    "RecordType",
    "ReplicationError",
    "RetentionInfo",
    "ServerCatchingUpError",
    "ServerError",
    "ServerIOError",
    "TimeoutError",
    "TlvRecord",
    "TopicAlreadyExistsError",
    "TopicInfo",
    "TopicNotFoundError",
    "UnsupportedCommandError",
    "__version__",
    "decode_records",
    "encode_records",
    "validate_topic_name",
]
