"""The LanceError hierarchy, the server-text mapping and the topic-name rule."""

from __future__ import annotations

import builtins

import pytest

from lnc_client import errors as e

NAME_TEXT = (
    "Invalid data: Topic name '{}' contains invalid characters. Only alphanumeric characters "
    "(a-z, A-Z, 0-9) and dashes (-) are allowed"
)

# Every ErrorResponse text of PROTOCOL.md 4.4 (plus 2.3, 2.7, 2.9, 4.2 and 8), and the
# AuthenticateResponse texts of 4.6: text -> (class, retryable, attribute checks).
SERVER_TEXTS: dict[str, tuple[type[e.LanceError], bool, dict[str, object]]] = {
    "Topic name required": (e.InvalidTopicNameError, False, {"name": None}),
    "Topic 'my-events' already exists": (e.TopicAlreadyExistsError, False, {"name": "my-events"}),
    "Topic 'it's' already exists": (e.TopicAlreadyExistsError, False, {"name": "it's"}),
    "Configuration error: Topic 'x' already exists": (
        e.TopicAlreadyExistsError,
        False,
        {"name": "x"},
    ),
    NAME_TEXT.format("bad name!"): (e.InvalidTopicNameError, False, {"name": "bad name!"}),
    NAME_TEXT.format("a'b"): (e.InvalidTopicNameError, False, {"name": "a'b"}),
    "I/O error: No space left on device (os error 28)": (e.ServerIOError, False, {}),
    "I/O error: File name too long (os error 36)": (e.ServerIOError, False, {}),
    "I/O error: No such file or directory (os error 2)": (e.SegmentMissingError, True, {}),
    "Failed to replicate topic creation: timeout": (e.ReplicationError, True, {}),
    "Failed to replicate existing topic convergence: x": (e.ReplicationError, True, {}),
    "Invalid create topic payload": (e.InvalidRequestError, False, {}),
    "Invalid payload length": (e.InvalidRequestError, False, {}),
    "Invalid data: Topic name must not be empty": (e.InvalidTopicNameError, False, {}),
    "Topic not found": (e.TopicNotFoundError, False, {"topic_id": None}),
    "Configuration error: Topic 7 not found": (e.TopicNotFoundError, False, {"topic_id": 7}),
    "Invalid set retention payload": (e.InvalidRequestError, False, {}),
    "Fetch request payload required": (e.InvalidRequestError, False, {}),
    "Protocol error: Fetch request payload too small": (e.InvalidRequestError, False, {}),
    "Rate limit exceeded": (e.RateLimitedError, True, {}),
    "Topic 0 not found": (e.TopicNotFoundError, False, {"topic_id": 0}),
    "Topic 4294967295 not found": (e.TopicNotFoundError, False, {"topic_id": 4294967295}),
    "Invalid subscribe payload": (e.InvalidRequestError, False, {}),
    "Invalid unsubscribe payload": (e.InvalidRequestError, False, {}),
    "Invalid commit offset payload": (e.InvalidRequestError, False, {}),
    "FORWARD_FAILED: Leader not ready (apply/metadata catch-up)": (e.ForwardFailedError, True, {}),
    "NOT_LEADER: redirect to 10.0.0.2:1992": (
        e.NotLeaderError,
        True,
        {"leader_addr": "10.0.0.2:1992"},
    ),
    "NOT_LEADER: redirect to [fd00::2]:1992": (
        e.NotLeaderError,
        True,
        {"leader_addr": "[fd00::2]:1992"},
    ),
    "NOT_LEADER: leader unknown": (e.NotLeaderError, True, {"leader_addr": None}),
    "Unknown topic": (e.TopicNotFoundError, False, {"topic_id": None}),
    "FORWARD_FAILED: Unknown topic (metadata convergence)": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Quorum not reached - required 2 ACKs, got 1": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Leader address unknown": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Failed to connect to leader: refused": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Failed to send to leader: broken pipe": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Failed to receive from leader: eof": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Forward operation timed out": (e.ForwardFailedError, True, {}),
    "FORWARD_FAILED: Connection pool exhausted": (e.ForwardFailedError, True, {}),
    "Authentication required": (e.AccessDeniedError, False, {}),
    "Invalid client command": (e.UnsupportedCommandError, False, {}),
    "Authentication handled at connection level": (e.UnsupportedCommandError, False, {}),
    "Invalid token": (e.AuthenticationError, False, {}),
    "No token provided": (e.AuthenticationError, False, {}),
    "Invalid token encoding": (e.AuthenticationError, False, {}),
    "something the server never said": (e.ServerError, False, {}),
    "": (e.ServerError, False, {}),
}


@pytest.mark.parametrize("text", list(SERVER_TEXTS))
def test_server_text_maps_to_its_class(text: str) -> None:
    cls, retryable, attributes = SERVER_TEXTS[text]
    error = e.error_from_server_text(text)
    assert type(error) is cls
    assert isinstance(error, e.LanceError)
    assert error.server_text == text
    assert error.retryable is retryable
    assert error.is_retryable() is retryable
    if text:
        assert str(error) == text
    for name, value in attributes.items():
        assert getattr(error, name) == value


def test_near_misses_are_not_mistaken() -> None:
    assert type(e.error_from_server_text("Topic 7x not found")) is e.ServerError
    assert type(e.error_from_server_text("unknown topic")) is e.ServerError
    assert type(e.error_from_server_text("Topic not found!")) is e.ServerError
    assert e.error_from_server_text("NOT_LEADER: redirect to").leader_addr is None  # type: ignore[attr-defined]


def test_hierarchy() -> None:
    assert issubclass(e.InvalidFrameError, e.ProtocolError)
    assert issubclass(e.InvalidRequestError, e.ProtocolError)
    assert issubclass(e.UnsupportedCommandError, e.ProtocolError)
    assert issubclass(e.RateLimitedError, e.BackpressureError)
    assert issubclass(e.AuthenticationError, e.AccessDeniedError)
    assert issubclass(e.ServerIOError, e.ServerError)
    assert issubclass(e.ConnectionError, builtins.ConnectionError)
    assert issubclass(e.ConnectionError, OSError)
    assert issubclass(e.TimeoutError, builtins.TimeoutError)
    assert issubclass(e.InvalidTopicNameError, ValueError)
    for name in e.__all__:
        value = getattr(e, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, e.LanceError), name


def test_retryable_defaults() -> None:
    retryable = [
        e.ConnectionError(),
        e.TimeoutError(),
        e.BackpressureError(),
        e.RateLimitedError(),
        e.ServerCatchingUpError(10),
        e.NotLeaderError(),
        e.ForwardFailedError(),
        e.ReplicationError(),
    ]
    assert all(error.retryable for error in retryable)
    permanent = [
        e.ProtocolError(),
        e.InvalidFrameError(e.FrameFault.BAD_MAGIC),
        e.TopicNotFoundError(3),
        e.TopicAlreadyExistsError("x"),
        e.InvalidTopicNameError("x y"),
        e.AccessDeniedError(),
        e.ServerError(),
    ]
    assert not any(error.retryable for error in permanent)


def test_constructors_keep_their_details() -> None:
    catching_up = e.ServerCatchingUpError(1234)
    assert catching_up.server_offset == 1234
    assert "1234" in str(catching_up)
    frame = e.InvalidFrameError(e.FrameFault.PAYLOAD_CRC, "detail")
    assert frame.fault is e.FrameFault.PAYLOAD_CRC
    assert str(frame) == "Payload CRC mismatch: detail"
    assert frame.frames == ()
    assert str(e.TopicNotFoundError(3)) == "topic 3 not found"
    assert e.TopicNotFoundError("t").topic_id == "t"
    assert str(e.NotLeaderError("h:1")) == "not the leader (leader: h:1)"
    assert e.LanceError().message == "LanceError"
    assert e.ServerError(server_text="boom").message == "boom"


@pytest.mark.parametrize("name", ["a", "Z", "0", "-", "my-events", "ABC-123-xyz", "a" * 300])
def test_valid_topic_names(name: str) -> None:
    e.validate_topic_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "a b",
        "a_b",
        "a.b",
        "a/b",
        "é",
        "caf\u00e9",
        "\u0663",
        "\uff41",
        "a\n",
        "\n",
        "a\x00",
    ],
)
def test_invalid_topic_names(name: str) -> None:
    with pytest.raises(e.InvalidTopicNameError) as info:
        e.validate_topic_name(name)
    assert info.value.name == name
    assert isinstance(info.value, ValueError)


def test_non_string_topic_name_is_rejected() -> None:
    with pytest.raises(e.InvalidTopicNameError):
        e.validate_topic_name(b"abc")  # type: ignore[arg-type]
