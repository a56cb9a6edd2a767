"""Turn-taking settings for tests, from the real config/turn_taking.yaml (the one source of every default).

A test states the knobs it depends on as overrides, and may replace a sensitivity rule (``sensitivity``) the
way scripts/turn_quality does; everything else is the table's default, as in a call.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from pipelines.turn_settings import TurnSettings

TABLE_PATH = Path(__file__).resolve().parents[1] / "config" / "turn_taking.yaml"


@cache
def _table() -> dict[str, Any]:
    return yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))


def table() -> dict[str, Any]:
    """The knob table as loaded (a fresh copy: tests may change it)."""
    loaded = _table()
    return {
        "knobs": {name: dict(knob) for name, knob in loaded["knobs"].items()},
        "sensitivity": {name: dict(rule) for name, rule in loaded["sensitivity"].items()},
        "backchannels": list(loaded["backchannels"]),
    }


def turn_settings(
    overrides: dict[str, Any] | None = None,
    *,
    sensitivity: dict[str, dict[str, int]] | None = None,
    backchannels: list[str] | None = None,
    max_call_duration_cap_sec: int | None = None,
) -> TurnSettings:
    """The table's settings with ``overrides`` (knob names as in the YAML) and replaced rules or backchannels."""
    knobs = table()
    knobs["sensitivity"].update(sensitivity or {})
    if backchannels is not None:
        knobs["backchannels"] = backchannels
    return TurnSettings.from_table(knobs, overrides, max_call_duration_cap_sec)
