"""Chaos runs (issue 9): `lnc serve` SIGKILLed and restarted, connections cut by a FaultProxy,
while producers send numbered records. Nothing acknowledged may be lost or reordered."""

from __future__ import annotations

import pytest

from .harness import run


async def test_short_chaos_run_loses_no_acked_record() -> None:
    report = await run(seconds=3.0, producers=2, kills=3, cuts=2, rate=4000, seed=11)
    assert report.kills == 3
    assert report.cuts == 2
    assert report.acked > 1000
    assert report.failed == 0, report  # every record acked within its delivery timeout
    assert report.lost == 0, report
    assert report.order_violations == 0, report
    assert report.stored >= report.acked


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_long_chaos_run_loses_no_acked_record() -> None:
    report = await run(seconds=60.0, producers=4, kills=8, cuts=10, seed=12)
    assert report.kills == 8
    assert report.failed == 0, report
    assert report.lost == 0, report
    assert report.order_violations == 0, report
    assert report.ok
