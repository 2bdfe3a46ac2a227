"""The sans-I/O Lance Wire Protocol core, shared by the client and the embedded server.

Nothing in this package opens a socket, reads a clock or touches an event loop: bytes go in,
typed values come out, and back. Three modules, one per layer of a message:

* `frame`: the 44-byte header, classification by flags, encoders and the incremental
  `FrameDecoder` (bytes -> `Frame` with a zero-copy payload view).
* `control`: control payloads -> typed values (`TopicInfo`, `FetchResult`, ...) and back.
* `records`: TLV record streams inside ingest payloads and fetch windows, with partial-tail
  decoding and the TLV-level compressed envelope.

Beside them, `error_texts` is the one table of ErrorResponse texts (the server writes them
from it, the client classifies them with it), and `exchange` is the client's side of a
connection as a state machine: requests and batches in, bytes out; frames in, events out.
"""

from lnc_client.protocol.control import (
    TAIL_OFFSET,
    AuthResult,
    ClusterStatus,
    CommitAck,
    FetchResult,
    RetentionInfo,
    RetentionResult,
    SubscribeAck,
    TopicInfo,
    commit_offset_payload,
    create_topic_with_retention_payload,
    fetch_payload,
    parse_fetch_response,
    set_retention_payload,
    subscribe_payload,
    unsubscribe_payload,
)
from lnc_client.protocol.frame import (
    DEFAULT_PORT,
    HEADER_SIZE,
    KEEPALIVE_FRAME,
    KEEPALIVE_INTERVAL_S,
    KEEPALIVE_TIMEOUT_S,
    MAGIC,
    MAX_PAYLOAD_SIZE,
    MAX_RECORD_SIZE,
    PROTOCOL_VERSION,
    ControlCommand,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    LwpHeader,
    build_ack_frame,
    build_backpressure_frame,
    build_control_frame,
    build_ingest_frame,
    build_keepalive_frame,
    classify,
    encode_frame,
    encode_header,
)
from lnc_client.protocol.records import (
    CompressionCodec,
    RecordDialect,
    RecordType,
    RustRecordType,
    TlvRecord,
    compress_records,
    decode_records,
    decode_stream,
    encode_records,
    encode_values,
)

build_fetch_payload = fetch_payload
build_subscribe_payload = subscribe_payload
build_unsubscribe_payload = unsubscribe_payload
build_commit_offset_payload = commit_offset_payload
build_set_retention_payload = set_retention_payload
build_create_topic_with_retention_payload = create_topic_with_retention_payload

__all__ = [
    "DEFAULT_PORT",
    "HEADER_SIZE",
    "KEEPALIVE_FRAME",
    "KEEPALIVE_INTERVAL_S",
    "KEEPALIVE_TIMEOUT_S",
    "MAGIC",
    "MAX_PAYLOAD_SIZE",
    "MAX_RECORD_SIZE",
    "PROTOCOL_VERSION",
    "TAIL_OFFSET",
    "AuthResult",
    "ClusterStatus",
    "CommitAck",
    "CompressionCodec",
    "ControlCommand",
    "FetchResult",
    "Flag",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "LwpHeader",
    "RecordDialect",
    "RecordType",
    "RetentionInfo",
    "RetentionResult",
    "RustRecordType",
    "SubscribeAck",
    "TlvRecord",
    "TopicInfo",
    "build_ack_frame",
    "build_backpressure_frame",
    "build_commit_offset_payload",
    "build_control_frame",
    "build_create_topic_with_retention_payload",
    "build_fetch_payload",
    "build_ingest_frame",
    "build_keepalive_frame",
    "build_set_retention_payload",
    "build_subscribe_payload",
    "build_unsubscribe_payload",
    "classify",
    "compress_records",
    "decode_records",
    "decode_stream",
    "encode_frame",
    "encode_header",
    "encode_records",
    "encode_values",
    "parse_fetch_response",
]
