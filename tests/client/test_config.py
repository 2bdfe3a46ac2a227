"""Config validation: every timeout must be positive (keepalive and poll waits may be 0)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lnc_client.config import (
    ClientConfig,
    ConnectionOptions,
    ProducerConfig,
    ReconnectConfig,
    SeekPosition,
    StandaloneConfig,
    StandaloneOptions,
)
from lnc_client.protocol.records import RecordDialect

BAD_TIMEOUTS = [0, 0.0, -1.0, math.nan]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
@pytest.mark.parametrize(
    "name", ["connect_timeout_s", "request_timeout_s", "delivery_timeout_s", "max_block_s"]
)
def test_producer_config_rejects_non_positive_timeouts(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        ProducerConfig(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
@pytest.mark.parametrize("name", ["connect_timeout_s", "request_timeout_s"])
def test_other_configs_reject_non_positive_timeouts(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        ClientConfig(**{name: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        ConnectionOptions(**{name: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        StandaloneConfig("c", 1, **{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "keepalive_interval_s",
        "poll_timeout_s",
        "catching_up_backoff_s",
        "catching_up_timeout_s",
        "auto_commit_interval_s",
    ],
)
def test_waits_that_may_be_zero_must_not_be_negative(name: str) -> None:
    assert getattr(StandaloneConfig("c", 1, **{name: 0.0}), name) == 0.0  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        StandaloneConfig("c", 1, **{name: -0.5})  # type: ignore[arg-type]


def test_standalone_options_are_exactly_the_keywords_it_takes() -> None:
    every: StandaloneOptions = {
        "max_fetch_bytes": 7,
        "start_position": SeekPosition.END,
        "offset_dir": "offsets",
        "auto_commit_interval_s": None,
        "connect_timeout_s": 1.5,
        "request_timeout_s": 2.5,
        "poll_timeout_s": 0.5,
        "keepalive_interval_s": 0.0,
        "poll_interval_ms": 3,
        "ssl_context": None,
        "server_hostname": "lance.example",
        "auth_token": "secret",
        "auto_reconnect": False,
        "reconnect": None,
        "seeds": ("h:1",),
        "server_side_offsets": True,
        "catching_up_backoff_s": 0.25,
        "catching_up_timeout_s": None,
        "prefetch": False,
        "start_offset": 42,
        "record_dialect": RecordDialect.RUST,
    }
    assert set(every) == set(StandaloneOptions.__annotations__)
    config = StandaloneConfig.with_topic_name("c", "events", **every)
    assert config.offset_dir == Path("offsets")
    assert config.reconnect == ReconnectConfig()
    assert config.start_position == ("offset", 42)
    given: dict[str, object] = dict(every)
    for name in ("offset_dir", "reconnect", "start_offset", "start_position"):
        del given[name]
    assert {name: getattr(config, name) for name in given} == given
    assert StandaloneConfig.new_with_id("c", "events", 3, prefetch=False).topic_id == 3
    with pytest.raises(TypeError, match=r"unknown StandaloneConfig option.*: max_fetch"):
        StandaloneConfig("c", 1, max_fetch=1)  # type: ignore[call-arg]


def test_keepalive_zero_disables_and_negative_is_refused() -> None:
    assert ProducerConfig(keepalive_interval_s=0).keepalive_interval_s == 0
    assert ClientConfig(keepalive_interval_s=0).connection_options().keepalive_interval_s == 0
    for make in (ProducerConfig, ClientConfig, ConnectionOptions):
        with pytest.raises(ValueError, match="keepalive_interval_s"):
            make(keepalive_interval_s=-1.0)


def test_valid_configs_keep_their_values() -> None:
    config = ProducerConfig(request_timeout_s=0.5, delivery_timeout_s=2, max_block_s=0.01)
    assert (config.request_timeout_s, config.delivery_timeout_s, config.max_block_s) == (
        0.5,
        2,
        0.01,
    )
    assert StandaloneConfig("c", 1, catching_up_timeout_s=None).catching_up_timeout_s is None
    assert ReconnectConfig(max_attempts=3).max_attempts == 3
