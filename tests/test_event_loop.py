"""VOICEX_EVENT_LOOP picks the server's event loop: uvloop where installed (auto), on demand, or asyncio's own."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from voicex.platform.errors import SettingsError
from voicex.platform.settings import load_settings
from voicex.server.serve import loop_factory

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_means_the_standard_loop() -> None:
    assert loop_factory("asyncio") is None


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed here")
@pytest.mark.parametrize("choice", ["auto", "uvloop"])
def test_auto_and_uvloop_build_a_uvloop_loop(choice: str) -> None:
    factory = loop_factory(choice)
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a))
    assert loop_factory("auto") is None
    with pytest.raises(SettingsError, match="VOICEX_EVENT_LOOP"):
        loop_factory("uvloop")


def test_the_setting_is_read_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEX_EVENT_LOOP", "uvloop")
    assert load_settings().event_loop == "uvloop"
    monkeypatch.setenv("VOICEX_EVENT_LOOP", "trio")
    with pytest.raises(SettingsError, match="VOICEX_EVENT_LOOP"):
        load_settings()
