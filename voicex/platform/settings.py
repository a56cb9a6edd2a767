"""Process settings: the ``VOICEX_*`` environment (README.md, "Configuration"), validated once at start.

Everything configurable about a running server lives here, so no other module reads its configuration from
``os.environ`` (the CLI only checks whether ``VOICEX_LOG_LEVEL`` was given, to quiet the demo).
A bad value fails fast with a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from providers.egress import parse_allow
from voicex.platform.crypto import fernet_keys
from voicex.platform.data_dir import PRIVATE_FILE, make_private, private_dir, unusable_data_dir, write_private
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
    # Fernet keys, comma-separated, newest first: the first encrypts, all decrypt (rotation: voicex/platform/crypto.py).
    encryption_key: str | None = None
    # Where the key is read from when VOICEX_ENCRYPTION_KEY is unset (one key a line, newest first), generated there
    # (0600) if missing; None: DATA_DIR/secrets/encryption_key. Point it outside the data dir to keep them apart.
    encryption_key_file: Path | None = None
    twilio_auth_token: str | None = None
    twilio_validate_signature: bool = True
    enable_scripted_providers: bool = False
    log_level: str = Field("INFO", pattern=_LEVELS)
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(600, ge=1, le=1_000_000)
    rate_limit_ip_per_minute: int = Field(1200, ge=1, le=1_000_000)
    # Failed sign-ins per email and client address before each further failure refuses that pair for a growing
    # delay (30 s, doubling to 15 min; forgotten 15 min after the last one): voicex/web/signin_guard.py.
    signin_attempts_per_15min: int = Field(10, ge=1, le=10_000)
    # Sign-ins, sign-ups and password changes per minute per client address (each its own bucket), apart from
    # the general per-IP limit: each costs ~250 ms of argon2 on a hashing thread.
    auth_ip_per_minute: int = Field(30, ge=1, le=1_000_000)
    provider_tests_per_minute: int = Field(10, ge=1, le=10_000)  # POST /api/dashboard/providers/:id/test per org
    session_lifetime_hours: float = Field(12.0, gt=0, le=24 * 30)  # a session token (JWT) expires this long after
    # Reverse proxies (CIDRs or addresses) whose X-Forwarded-For names the client (voicex/web/client_ip.py);
    # empty: the socket peer is the client and the header is ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Destinations an org's own provider may reach beyond public https (providers/egress.py): comma-separated
    # CIDRs, addresses and host names, each optionally :port; they also allow plain http. Empty: public https only.
    egress_allow: str = ""
    embedded_db_start_timeout_sec: float = Field(30.0, gt=0, le=300)
    # A Media Stream must send `start` this soon after connecting (Twilio sends it at once), and then never fall
    # silent this long (Twilio sends a frame every 20 ms); otherwise it is closed and its call finalized.
    stream_start_timeout_sec: float = Field(5.0, gt=0, le=300)
    stream_idle_timeout_sec: float = Field(10.0, gt=0, le=3600)
    # Upgraded Media Streams still waiting for `start`, per process; the next upgrade is refused (503) meanwhile.
    stream_pending_max: int = Field(200, ge=1, le=100_000)
    # A connection that has not sent a whole request this long after connecting (or after its last answer) is
    # closed: bounds slow-header clients and idle keep-alive connections (aiohttp's keepalive_timeout).
    http_idle_timeout_sec: float = Field(15.0, gt=0, le=3600)
    # On SIGTERM or POST /api/admin/drain (voicex/server/drain.py): no new calls; running calls get this long to end
    # on their own before the agent closes them politely. New calls' voice webhooks meanwhile are redirected to
    # drain_redirect_url + their path and query (another instance's public URL), else told to call back.
    drain_timeout_sec: float = Field(300.0, ge=0, le=86_400)
    drain_redirect_url: str | None = None
    # `voicex serve` runs this many server processes on one port (voicex/server/workers.py); 0: one per core.
    workers: int = Field(0, ge=0, le=256)
    worker_id: int | None = Field(None, ge=0)  # set by the supervisor for each of its workers (not for users)
    metrics_dir: Path | None = None  # set by the supervisor: where workers publish metrics (metrics_share.py)
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

    @field_validator("public_url", "drain_redirect_url")
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

    @field_validator("egress_allow")
    @classmethod
    def _egress_allow(cls, value: str) -> str:
        parse_allow(value)  # raises ValueError naming the entry
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> Any:
        items = [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value
        if not isinstance(items, list):
            return items
        networks = []
        for item in items:
            try:
                networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR (e.g. 10.0.0.0/8, 192.0.2.7)") from None
        return networks

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: str | None) -> str | None:
        return None if value is None else ",".join(fernet_keys(value))

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
    def encryption_key_path(self) -> Path:
        """The key file: VOICEX_ENCRYPTION_KEY_FILE, else the generated one in the data dir."""
        return self.encryption_key_file or self.secrets_dir / "encryption_key"

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


def _read_secret(path: Path) -> str | None:
    """The secret stored at ``path`` (None if absent or empty), its group and other bits taken off if we may."""
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        with contextlib.suppress(OSError):  # e.g. a read-only mount: still usable, just not ours to change
            os.chmod(path, PRIVATE_FILE)
    return path.read_text().strip() or None


def _read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """Return the secret stored at ``path``, creating it (mode 0600, missing directories 0700) on first use."""
    value = _read_secret(path)
    if value is not None:
        return value
    if not path.parent.exists():
        private_dir(path.parent)
    value = make()
    write_private(path, value + "\n")
    return value


def _key_file_keys(settings: Settings, value: str) -> str:
    """The keys read from the key file, checked like VOICEX_ENCRYPTION_KEY (one a line or comma-separated)."""
    try:
        return ",".join(fernet_keys(value))
    except ValueError as exc:
        raise SettingsError(f"invalid settings: the key file {settings.encryption_key_path} {exc}") from None


def existing_encryption_key(settings: Settings) -> str | None:
    """VOICEX_ENCRYPTION_KEY, else the key file's keys; None when neither exists (nothing is generated)."""
    if settings.encryption_key is not None:
        return settings.encryption_key
    with _key_file_errors(settings):
        value = _read_secret(settings.encryption_key_path)
    return None if value is None else _key_file_keys(settings, value)


def ensure_secrets(settings: Settings) -> Settings:
    """Fill unset JWT/encryption secrets from the data dir, generating them once.

    Keeping them on disk means a restart keeps sessions and encrypted credentials valid. This is the first write
    into the data dir, so an unusable one is reported here, naming VOICEX_DATA_DIR.
    """
    updates: dict[str, str] = {}
    try:
        if settings.secrets_dir.is_dir():
            make_private(settings.secrets_dir)  # generated by an older version, with the umask's bits
        if settings.jwt_secret is None:
            updates["jwt_secret"] = _read_or_create_secret(
                settings.secrets_dir / "jwt_secret", lambda: secrets.token_urlsafe(48)
            )
    except OSError as exc:
        raise unusable_data_dir(settings.data_dir, exc) from exc
    if settings.encryption_key is None:
        with _key_file_errors(settings):
            updates["encryption_key"] = _key_file_keys(
                settings, _read_or_create_secret(settings.encryption_key_path, _new_fernet_key)
            )
    return settings.model_copy(update=updates) if updates else settings


def _new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@contextlib.contextmanager
def _key_file_errors(settings: Settings) -> Iterator[None]:
    """An OSError on the key file, in words: naming VOICEX_ENCRYPTION_KEY_FILE when set, else the data dir."""
    try:
        yield
    except OSError as exc:
        if settings.encryption_key_file is None:
            raise unusable_data_dir(settings.data_dir, exc) from exc
        raise SettingsError(
            f"invalid settings: VOICEX_ENCRYPTION_KEY_FILE: cannot use {settings.encryption_key_file.absolute()}"
            f" ({exc.strerror or exc}); give a file path this user can read (and write, to generate the key)"
        ) from exc
