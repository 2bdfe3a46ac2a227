"""The consumer's adaptive pause between empty fetches (`Fetcher._idle_pause`), step by step.

While records flow the pause starts at 0.1 ms and doubles up to an eighth of the usual time
between answers that brought records, and at least 0.4 ms (a consumer tailing a busy topic sees
a record about half a millisecond after it is stored, one tailing a slow topic does not fetch
it hundreds of times a second: docs/benchmarks.md); once the topic has been quiet for a second
it doubles on up to `poll_interval_ms` (an idle consumer costs a few fetches a second); a
record resets it.
"""

from __future__ import annotations

import pytest

from lnc_client.config import ConnectionOptions, ReconnectConfig, StandaloneConfig
from lnc_client.consumer.fetcher import Fetcher
from lnc_client.reconnect import ConnectionManager


def fetcher(poll_interval_ms: int = 50) -> Fetcher:
    config = StandaloneConfig(topic_id=1, poll_interval_ms=poll_interval_ms)
    manager = ConnectionManager(["127.0.0.1:1"], ConnectionOptions(), ReconnectConfig())
    return Fetcher(config, manager)


def pauses(f: Fetcher, now: float, count: int) -> list[float]:
    return [round(f._idle_pause(now) * 1000, 4) for _ in range(count)]


def test_while_records_flow_the_pause_doubles_from_a_tenth_of_a_ms_to_four_tenths() -> None:
    f = fetcher()
    f._last_records_at = 100.0
    assert pauses(f, 100.5, 6) == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]


def test_on_an_idle_topic_the_pause_grows_to_the_poll_interval() -> None:
    f = fetcher(poll_interval_ms=50)
    f._last_records_at = 100.0
    assert pauses(f, 101.5, 11) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 50.0, 50.0]


@pytest.mark.parametrize("poll_interval_ms", [0, 1])
def test_a_short_poll_interval_caps_the_pause_while_records_flow_too(
    poll_interval_ms: int,
) -> None:
    f = fetcher(poll_interval_ms=poll_interval_ms)
    f._last_records_at = 100.0
    assert max(pauses(f, 100.1, 8)) <= poll_interval_ms


def test_a_slow_topic_is_fetched_at_an_eighth_of_its_record_gap() -> None:
    f = fetcher()
    for second in range(20):  # an answer with records every 100 ms: 10 a second
        f._records_came(100.0 + second / 10)
    assert f._gap_s == pytest.approx(0.1, rel=0.01)
    steps = pauses(f, 102.0, 9)
    assert steps[:7] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4]
    assert steps[7:] == pytest.approx([12.5, 12.5], rel=0.01)


def test_records_now_and_then_keep_the_pause_long() -> None:
    """A record every 1.2 s (a heartbeat topic) must not be fetched every 0.4 ms."""
    f = fetcher(poll_interval_ms=50)
    for beat in range(12):
        f._records_came(100.0 + beat * 1.2)
    assert f._gap_s == pytest.approx(1.0, rel=0.05)  # a quiet spell counts as 1 s
    assert pauses(f, 113.3, 12)[-3:] == [50.0, 50.0, 50.0]


def test_a_burst_after_a_quiet_spell_brings_the_pause_down_within_a_few_answers() -> None:
    f = fetcher()
    f._records_came(100.0)
    f._records_came(105.0)  # after 5 quiet seconds
    assert f._gap_s == pytest.approx(0.4375)  # 1 s of gap counted, a quarter at a time
    for n in range(1, 25):  # then an answer with records every millisecond
        f._records_came(105.0 + n / 1000)
    assert pauses(f, 105.0245, 5) == [0.1, 0.2, 0.4, 0.4, 0.4]
    f._records_came(105.025)
    assert pauses(f, 105.0251, 1) == [0.1]  # a record resets the doubling
