"""Crash recovery across real processes: ``kill -9`` of a ``voicex serve`` during 10 live calls, then a restart.

The database is the session's, outside the killed process, as in production. See scripts/crash_test.py.
"""

from __future__ import annotations

import pytest

from scripts.crash_test import run

pytestmark = pytest.mark.slow


async def test_kill_9_during_ten_calls_finalizes_each_once_and_leaks_no_slot(mongo_uri: str) -> None:
    report = await run(calls=10, bystanders=2, uri=mongo_uri)
    assert report.active_at_kill == 10
    # Every call the dead server carried shows in the dashboard as ended by the lost server …
    assert report.finalized == 10
    assert report.reasons == {"server_lost": 10}
    # … billed for no longer than it really ran.
    assert report.durations_within_life == 10
    # Calls running on the other, live server are not touched and end normally.
    assert report.bystanders_untouched == 2
    assert report.bystanders_completed == 2
    # No slot leaked: the org admits exactly its plan's concurrent calls again.
    assert report.admitted_after == report.max_concurrent
    assert report.refused_after == 1
    assert report.slots_held_after == 0
    # Usage counts every call exactly once.
    assert report.usage_calls == report.calls_total == 10 + 2 + report.max_concurrent
    assert report.usage_minutes == pytest.approx(report.call_minutes, abs=1e-3)
    assert report.errors_logged == 0
