"""Process settings: the ``VOICEX_*`` environment (README.md, "Configuration"), validated once at start.

Everything configurable about a running server lives here, so no other module reads its configuration from
``os.environ`` (the CLI only checks whether ``VOICEX_LOG_LEVEL`` was given, to quiet the demo).
A bad value fails fast with a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from voicex.platform.data_dir import unusable_data_dir
from voicex.platform.errors import SettingsError, describe_problem, hinted

ENV_PREFIX = "VOICEX_"
_LEVELS = hinted(r"^(DEBUG|INFO|WARNING|ERROR)$", "use DEBUG, INFO, WARNING or ERROR")
_REPO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"  # voicex/platform/ → the checkout


def _default_config_dir() -> Path:
    """The source tree's config/ (editable installs), else ./config (e.g. a container's WORKDIR)."""
    return _REPO_CONFIG_DIR if _REPO_CONFIG_DIR.is_dir() else Path("config")


class Settings(BaseSettings):
    """Server settings. Field ``x`` is read from ``VOICEX_X`` unless it names a vendor key."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    host: str = "0.0.0.0"
    port: int = Field(3001, ge=1, le=65535)
    public_url: str | None = None
    mongodb_uri: str | None = None
    db_name: str = Field("voicex", pattern=hinted(r"^[A-Za-z0-9_-]{1,63}$", "use letters, digits, _ and - (1 to 63)"))
    data_dir: Path = Path("data")
    config_dir: Path = Field(default_factory=_default_config_dir)
    jwt_secret: str | None = Field(None, min_length=32)
    encryption_key: str | None = None
    twilio_auth_token: str | None = None
    twilio_validate_signature: bool = True
    enable_scripted_providers: bool = False
    log_level: str = Field("INFO", pattern=_LEVELS)
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(600, ge=1, le=1_000_000)
    rate_limit_ip_per_minute: int = Field(1200, ge=1, le=1_000_000)
    signin_attempts_per_15min: int = Field(10, ge=1, le=10_000)
    embedded_db_start_timeout_sec: float = Field(30.0, gt=0, le=300)
    # A Media Stream must send `start` this soon after connecting, and then never fall silent this long
    # (Twilio sends a frame every 20 ms); otherwise it is closed and its call finalized.
    stream_start_timeout_sec: float = Field(10.0, gt=0, le=300)
    stream_idle_timeout_sec: float = Field(10.0, gt=0, le=3600)
    event_loop: str = Field(
        "asyncio", pattern=hinted(r"^(auto|uvloop|asyncio)$", "use auto, uvloop or asyncio")
    )  # voicex.server.serve.loop_factory
    # `voicex serve` loads the embedded models at start when an active agent uses them (voicex/server/warmup.py);
    # false: never at start, they load on the first call that needs them.
    warm_local_models: bool = True
    log_format: str | None = Field(
        None, pattern=hinted(r"^(json|text)$", "use json or text")
    )  # None: text on a terminal, else JSON
    # Level of third-party loggers (aiohttp, pymongo, httpx, SDKs…); None: WARNING, or VOICEX_LOG_LEVEL if higher.
    third_party_log_level: str | None = Field(None, pattern=_LEVELS)
    metrics_token: str | None = Field(None, min_length=16)  # when set, /metrics wants `Authorization: Bearer <it>`

    deepgram_api_key: str | None = Field(None, validation_alias=AliasChoices("DEEPGRAM_API_KEY"))
    openai_api_key: str | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    groq_api_key: str | None = Field(None, validation_alias=AliasChoices("GROQ_API_KEY"))
    elevenlabs_api_key: str | None = Field(None, validation_alias=AliasChoices("ELEVENLABS_API_KEY"))

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("log_format", "log_level", "third_party_log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.lower() if info.field_name == "log_format" else value.upper()

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_uri(cls, value: str | None) -> str | None:
        # Empty is an error, not "unset": it is what `VOICEX_MONGODB_URI=${MONGO_URL}` gives when MONGO_URL is
        # missing, and treating it as unset would quietly start a private embedded database beside the real one.
        if value is None:
            return None
        if not value.strip():
            raise ValueError(
                "is set but empty: unset it to use the embedded database in VOICEX_DATA_DIR/db, or set it to a"
                " MongoDB URI such as mongodb://127.0.0.1:27017"
            )
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(value.encode())
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            raise ValueError("must be 32 url-safe base64-encoded bytes (a Fernet key)")
        return value

    @property
    def base_url(self) -> str:
        """The URL Twilio and browsers reach: ``public_url`` or the local listen address."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def embedded_db_dir(self) -> Path:
        return self.data_dir / "db"


def _variable_name(loc: tuple[Any, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    if field.isupper():  # a vendor key alias such as DEEPGRAM_API_KEY
        return field
    return ENV_PREFIX + field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (``overrides`` win), raising SettingsError on bad values."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{_variable_name(err['loc'])}: {describe_problem(err)}" for err in exc.errors())
        raise SettingsError(f"invalid settings: {problems}") from None


def _read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """Return the secret stored at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)
    return value


def ensure_secrets(settings: Settings) -> Settings:
    """Fill unset JWT/encryption secrets from the data dir, generating them once.

    Keeping them on disk means a restart keeps sessions and encrypted credentials valid. This is the first write
    into the data dir, so an unusable one is reported here, naming VOICEX_DATA_DIR.
    """
    updates: dict[str, str] = {}
    try:
        if settings.jwt_secret is None:
            updates["jwt_secret"] = _read_or_create_secret(
                settings.secrets_dir / "jwt_secret", lambda: secrets.token_urlsafe(48)
            )
        if settings.encryption_key is None:
            updates["encryption_key"] = _read_or_create_secret(
                settings.secrets_dir / "encryption_key",
                lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            )
    except OSError as exc:
        raise unusable_data_dir(settings.data_dir, exc) from exc
    return settings.model_copy(update=updates) if updates else settings
