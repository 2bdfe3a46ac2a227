"""The public API of lnc-client 0.2.9 (CLIENT-SURVEY §2) is still importable under its names.

Behaviour is tested elsewhere, against the embedded server; this pins the names, so that code
written for 0.2.9 keeps importing, and the deliberate changes listed in docs/client.md stay the
only ones.
"""

from __future__ import annotations

import importlib

import pytest

API = {
    "lnc_client": {
        "LanceClient": "connect close create_topic create_topic_once ensure_topic "
        "ensure_topic_default resolve_topic_id delete_topic list_topics get_topic "
        "get_topic_by_name set_retention create_topic_with_retention ping subscribe "
        "unsubscribe commit_offset",
        "Producer": "connect connect_for_topic send send_async send_batch flush close",
        "StandaloneConsumer": "connect close poll seek seek_to rewind seek_to_end commit "
        "current_offset topic_id topic_name",
        "PollResult": "is_empty lag",
        "MemoryOffsetStore": "load save delete",
        "FileOffsetStore": "load save delete",
    },
    "lnc_client.config": {
        "ClientConfig": "address with_host with_port with_connect_timeout with_ssl",
        "ProducerConfig": "with_batch_size with_linger_ms with_compression "
        "with_max_pending_acks with_connect_timeout with_request_timeout with_ssl "
        "with_auto_reconnect",
        "StandaloneConfig": "with_topic_name new_with_id with_max_fetch_bytes "
        "with_start_position with_offset_dir with_auto_commit_interval with_manual_commit "
        "with_poll_timeout with_connect_timeout with_ssl with_auto_reconnect start_offset",
        "ReconnectConfig": "delay_for_attempt",
        "SeekPosition": "BEGINNING END offset",
        "TopicInfo": "",
        "RetentionInfo": "",
    },
    "lnc_client.tlv": {
        "RecordType": "RESERVED RAW_DATA JSON MSGPACK PROTOBUF AVRO KEY_VALUE TIMESTAMPED "
        "KEY_TIMESTAMPED NULL",
        "TlvRecord": "raw json key_value timestamped null as_key_value as_timestamped "
        "total_size encode",
        "encode_records": "",
        "decode_records": "",
    },
    "lnc_client.protocol": {
        "LwpHeader": "encode decode is_ack is_keepalive is_backpressure is_control is_batch "
        "is_compressed command",
        "Flag": "COMPRESSED ENCRYPTED BATCH_MODE ACK BACKPRESSURE KEEPALIVE CONTROL",
        "ControlCommand": "CREATE_TOPIC DELETE_TOPIC LIST_TOPICS GET_TOPIC SET_RETENTION "
        "CREATE_TOPIC_WITH_RETENTION GET_CLUSTER_STATUS AUTHENTICATE AUTHENTICATE_RESPONSE "
        "FETCH FETCH_RESPONSE CATCHING_UP SUBSCRIBE UNSUBSCRIBE COMMIT_OFFSET SUBSCRIBE_ACK "
        "COMMIT_ACK TOPIC_RESPONSE CLUSTER_STATUS_RESPONSE ERROR_RESPONSE",
        "MAGIC": "",
        "HEADER_SIZE": "",
        "PROTOCOL_VERSION": "",
        "DEFAULT_PORT": "",
        "build_ingest_frame": "",
        "build_keepalive_frame": "",
        "build_control_frame": "",
        "build_fetch_payload": "",
        "build_subscribe_payload": "",
        "build_unsubscribe_payload": "",
        "build_commit_offset_payload": "",
        "build_set_retention_payload": "",
        "build_create_topic_with_retention_payload": "",
        "parse_fetch_response": "",
    },
    "lnc_client.errors": dict.fromkeys(
        [
            "LanceError",
            "ConnectionError",
            "ProtocolError",
            "InvalidFrameError",
            "TimeoutError",
            "BackpressureError",
            "ServerCatchingUpError",
            "TopicNotFoundError",
            "TopicAlreadyExistsError",
            "InvalidTopicNameError",
            "NotLeaderError",
            "AccessDeniedError",
        ],
        "is_retryable",
    )
    | {"validate_topic_name": "", "error_from_response": "", "ERROR_CODE_MAP": ""},
    "lnc_client.client": {"LanceClient": "ensure_topic resolve_topic_id create_topic_once"},
    "lnc_client.offset": dict.fromkeys(
        ["OffsetStore", "MemoryOffsetStore", "FileOffsetStore"], "load save delete"
    ),
    "lnc_client.protocol ": dict.fromkeys(
        ["KEEPALIVE_INTERVAL_S", "KEEPALIVE_TIMEOUT_S", "MAX_RECORD_SIZE"], ""
    ),
    "lnc_client ": dict.fromkeys(
        ["DEFAULT_PORT", "HEADER_SIZE", "MAGIC", "PROTOCOL_VERSION", "ControlCommand", "Flag"],
        "",
    )
    | {"LwpHeader": "encode decode"},
}

CASES = [
    (module, name, members) for module, names in API.items() for name, members in names.items()
]


@pytest.mark.parametrize(("module", "name", "members"), CASES)
def test_name_and_members_exist(module: str, name: str, members: str) -> None:
    obj = getattr(importlib.import_module(module.strip()), name)
    assert [m for m in members.split() if not hasattr(obj, m)] == []


def test_constants_keep_their_values() -> None:
    from lnc_client.protocol import DEFAULT_PORT, HEADER_SIZE, MAGIC, PROTOCOL_VERSION

    assert (MAGIC, HEADER_SIZE, PROTOCOL_VERSION, DEFAULT_PORT) == (b"LANC", 44, 1, 1992)


def test_errors_are_importable_from_the_package_and_retryable_as_before() -> None:
    import lnc_client

    retryable = {
        "ConnectionError": True,
        "TimeoutError": True,
        "BackpressureError": True,
        "ServerCatchingUpError": True,
        "NotLeaderError": True,
        "ProtocolError": False,
        "TopicNotFoundError": False,
        "AccessDeniedError": False,
    }
    for name, expected in retryable.items():
        assert getattr(lnc_client, name).retryable is expected, name
