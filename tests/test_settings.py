"""Settings and config catalogs fail fast with messages naming the variable, file and field."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from pipelines.turn_settings import TurnSettings
from voicex.catalog.config import load_catalog
from voicex.platform.errors import ConfigError, SettingsError
from voicex.platform.settings import ensure_secrets, load_settings

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"


def test_defaults_match_the_design_contract() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 3001, Path("data"))
    assert settings.mongodb_uri is None and settings.twilio_validate_signature is True


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEX_PORT", "4002")
    monkeypatch.setenv("VOICEX_PUBLIC_URL", "https://voice.example.com/")
    monkeypatch.setenv("VOICEX_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = load_settings()
    assert settings.port == 4002
    assert settings.public_url == "https://voice.example.com"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.openai_api_key == "sk-test"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("VOICEX_PORT", "not-a-number", "VOICEX_PORT"),
        ("VOICEX_PORT", "70000", "VOICEX_PORT"),
        ("VOICEX_PUBLIC_URL", "voice.example.com", "VOICEX_PUBLIC_URL: must start with http"),
        ("VOICEX_ENCRYPTION_KEY", "too-short", "VOICEX_ENCRYPTION_KEY"),
        ("VOICEX_TWILIO_VALIDATE_SIGNATURE", "maybe", "VOICEX_TWILIO_VALIDATE_SIGNATURE"),
        ("VOICEX_LOG_LEVEL", "LOUD", "VOICEX_LOG_LEVEL: use DEBUG, INFO, WARNING or ERROR"),
        ("VOICEX_EVENT_LOOP", "trio", "VOICEX_EVENT_LOOP: use auto, uvloop or asyncio"),
        ("VOICEX_DB_NAME", "my db", "VOICEX_DB_NAME: use letters, digits, _ and - (1 to 63)"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert fragment in str(error.value)
    assert "pattern" not in str(error.value) and "^" not in str(error.value)  # words, never a regex


def test_secrets_are_generated_once_with_0600_and_reused(tmp_path: Path) -> None:
    settings = ensure_secrets(load_settings(data_dir=tmp_path))
    assert settings.jwt_secret and len(settings.jwt_secret) >= 32
    assert settings.encryption_key
    for name in ("jwt_secret", "encryption_key"):
        mode = stat.S_IMODE(os.stat(tmp_path / "secrets" / name).st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    again = ensure_secrets(load_settings(data_dir=tmp_path))
    assert (again.jwt_secret, again.encryption_key) == (settings.jwt_secret, settings.encryption_key)
    other = ensure_secrets(load_settings(data_dir=tmp_path / "elsewhere"))
    assert other.jwt_secret != settings.jwt_secret


def test_secrets_from_the_environment_win_and_are_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEX_JWT_SECRET", "x" * 40)
    settings = ensure_secrets(load_settings(data_dir=tmp_path))
    assert settings.jwt_secret == "x" * 40
    assert not (tmp_path / "secrets" / "jwt_secret").exists()
    assert (tmp_path / "secrets" / "encryption_key").exists()


def test_the_shipped_catalog_loads_and_gates_models_by_plan() -> None:
    catalog = load_catalog(REPO_CONFIG)
    assert {"free", "starter", "pro", "enterprise"} <= set(catalog.plans)
    assert catalog.default_plan.slug == "free"
    free = catalog.plan_models(catalog.plans["free"])
    pro = catalog.plan_models(catalog.plans["pro"])
    assert "local/whisper-tiny.en" in free["stt"] and "local/smollm2-135m-instruct" in free["llm"]
    assert "deepgram/nova-3" not in free["stt"] and "deepgram/nova-3" in pro["stt"]
    assert set(free["tts"]) < set(pro["tts"])
    assert catalog.turn_taking.defaults()["silenceTimeoutMs"] == 700
    assert {"deepgram", "openai", "groq", "ollama", "elevenlabs", "edge", "local"} <= set(catalog.provider_types)


def _copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO_CONFIG, target)
    return target


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    config = _copy_config(tmp_path)
    (config / "plans.yaml").write_text("plans: [unclosed\n")
    with pytest.raises(ConfigError, match=r"plans\.yaml: not valid YAML"):
        load_catalog(config)


def test_invalid_field_names_file_and_field(tmp_path: Path) -> None:
    config = _copy_config(tmp_path)
    text = (config / "plans.yaml").read_text().replace("maxConcurrentCalls: 10,", "maxConcurrentCalls: -5,", 1)
    (config / "plans.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_catalog(config)
    assert "plans.yaml" in str(error.value) and "plans.1.limits.maxConcurrentCalls" in str(error.value)


def test_turn_taking_default_outside_its_range_is_refused(tmp_path: Path) -> None:
    config = _copy_config(tmp_path)
    text = (config / "turn_taking.yaml").read_text().replace("default: 700", "default: 50", 1)
    (config / "turn_taking.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"turn_taking\.yaml: knobs\.silenceTimeoutMs: .*outside \[100"):
        load_catalog(config)


@pytest.mark.parametrize(
    ("knob", "default", "low", "high"),
    [
        ("silenceTimeoutMs", 700, 100, 5000),  # caller silence that ends the caller's turn
        ("endpointingMs", 300, 10, 5000),  # the recognizer's pause before a final; never ends a turn
        ("idleTimeoutMs", 8000, 2000, 60000),  # silence after the agent finished: reprompt, then goodbye
    ],
)
def test_the_silence_knobs_have_the_api_reference_meanings_and_ranges(
    knob: str, default: int, low: int, high: int
) -> None:
    table = load_catalog(REPO_CONFIG).turn_taking.knobs
    assert (table[knob].default, table[knob].min, table[knob].max) == (default, low, high)


def test_turn_settings_defaults_are_the_knob_table_defaults() -> None:
    """config/turn_taking.yaml is the one source of the defaults: the validated catalog builds the engine's settings."""
    table = load_catalog(REPO_CONFIG).turn_taking
    defaults = table.defaults()
    plain = TurnSettings.from_table(table.model_dump())
    assert (plain.silence_timeout_ms, plain.endpointing_ms, plain.idle_timeout_ms, plain.tail_trim_db) == (
        defaults["silenceTimeoutMs"],
        defaults["endpointingMs"],
        defaults["idleTimeoutMs"],
        defaults["speechTailTrimDb"],
    )
    assert plain.preemptive is (defaults["preemptiveGeneration"] == "on")


def test_model_naming_an_unknown_plan_is_refused(tmp_path: Path) -> None:
    config = _copy_config(tmp_path)
    text = (config / "providers.yaml").read_text().replace("label: Nova-3, plan: starter", "label: Nova-3, plan: gold")
    (config / "providers.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"providers\[deepgram\]\.models\.stt\[2\]\.plan: 'gold'"):
        load_catalog(config)


def test_missing_file_is_named(tmp_path: Path) -> None:
    config = _copy_config(tmp_path)
    (config / "providers.yaml").unlink()
    with pytest.raises(ConfigError, match=r"providers\.yaml: file not found"):
        load_catalog(config)


def test_a_knob_the_engine_does_not_know_stops_the_start(tmp_path: Path) -> None:
    """config/turn_taking.yaml is the one source of the engine's settings: a knob it cannot use is an error."""
    config = _copy_config(tmp_path)
    text = (
        (config / "turn_taking.yaml")
        .read_text()
        .replace(
            "knobs:\n", "knobs:\n  breathingRoomMs:\n    default: 10\n    min: 0\n    max: 100\n    doc: unknown\n", 1
        )
    )
    (config / "turn_taking.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"turn_taking\.yaml: .*breathingRoomMs"):
        load_catalog(config)
