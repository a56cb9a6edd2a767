"""Security issue 14, findings 9 (embedded data at rest) and 11 (supply chain).

9: the data dir is private to its owner (0700 dirs, 0600 files, also what an older version left readable); the
encryption key lives where VOICEX_ENCRYPTION_KEY_FILE says, 0600, outside the data dir; keys rotate (a new key
first, the old ones after it) and ``voicex admin rotate-key`` re-encrypts every stored secret so the old key can go.
11: the lock files pin every dependency with hashes and the installs use them; cryptography has no 2024 advisory;
each embedded model file is checked against its recorded SHA-256 before it is loaded. (Swagger UI's assets are
served from the pinned package: tests/test_openapi.py checks the docs page names no other origin.)
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import stat
import tomllib
import uuid
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import ObjectId
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.factories import make_tenant
from tests.telephony import call_params, post_signed, start_server
from tests.voicex_process import clean_env, run
from voicex.calls.builder import provider_credentials
from voicex.platform.crypto import SecretBox
from voicex.platform.errors import SetupError
from voicex.platform.settings import Settings, load_settings
from voicex.server.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
PROVIDER_SECRET = "sk-rotation-provider-secret-5b8e01"
TWILIO_TOKEN = "twilio-rotation-token-0c4f9a7d21"
ACCOUNT_SID = "AC" + "e" * 32


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def loose_modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) that group or other may use, with its mode."""
    paths = [root, *root.rglob("*")]
    return {str(path): oct(stat.S_IMODE(path.lstat().st_mode)) for path in paths if path.lstat().st_mode & 0o077}


# Finding 9: data at rest


async def test_the_data_dir_and_every_file_in_it_are_private_to_their_owner_after_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "db").mkdir(parents=True, mode=0o755)  # as an older version left it: 0755 dirs, 0644 files
    os.chmod(data, 0o755)
    (data / "db" / "left-by-an-older-version").write_text("transcripts")
    os.chmod(data / "db" / "left-by-an-older-version", 0o644)
    settings = load_settings(data_dir=data, db_name=f"private_{uuid.uuid4().hex[:8]}")  # the embedded database
    old_umask = os.umask(0o022)  # the usual umask: files 0644 unless Voicex sees to it
    try:
        runtime = await Runtime.start(settings)
        try:
            await runtime.services.db.db["probe"].insert_one({"note": "a collection made after start"})
            await runtime.services.db.client.admin.command("fsync")
            assert (data / "secrets" / "jwt_secret").is_file() and any((data / "db").iterdir())
            assert loose_modes(data) == {}
        finally:
            await runtime.close()
    finally:
        os.umask(old_umask)
    assert loose_modes(data) == {}  # the files written at shutdown (checkpoint) too


async def test_the_key_file_is_where_voicex_encryption_key_file_says_0600_and_not_in_the_data_dir(
    tmp_path: Path, mongo_uri: str
) -> None:
    key_file = tmp_path / "keys" / "voicex.key"
    settings = load_settings(
        data_dir=tmp_path / "data",
        mongodb_uri=mongo_uri,
        db_name=f"keyfile_{uuid.uuid4().hex[:8]}",
        encryption_key_file=key_file,
    )
    runtime = await Runtime.start(settings)
    try:
        key = runtime.services.settings.encryption_key
        assert key is not None and key_file.read_text().strip() == key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        in_data_dir = [path for path in (tmp_path / "data").rglob("*") if path.is_file()]
        assert not any(key in path.read_text(errors="replace") for path in in_data_dir), in_data_dir
        assert SecretBox(key).decrypt(runtime.services.box.encrypt("kept")) == "kept"
    finally:
        await runtime.services.db.client.drop_database(settings.db_name)
        await runtime.close()
    again = await Runtime.start(settings)  # a restart reads the same key from the file
    try:
        assert again.services.settings.encryption_key == key
    finally:
        await again.services.db.client.drop_database(settings.db_name)
        await again.close()


async def started(settings: Settings, key: str) -> Runtime:
    runtime = await Runtime.start(settings.model_copy(update={"encryption_key": key}))
    await runtime.services.db.client.admin.command("ping")
    return runtime


async def raw_secrets(runtime: Runtime) -> list[str]:
    """Every Fernet token anywhere in the raw database."""
    db = runtime.services.db.db
    found: list[str] = []
    for name in await db.list_collection_names():
        async for document in db[name].find({}):
            found += re.findall(r"gAAAAA[A-Za-z0-9_=-]{70,}", bson.json_util.dumps(document))
    return found


async def webhook_status(runtime: Runtime, api_key: str, token: str) -> int:
    """A Twilio voice webhook for the org, signed with ``token``: 200 only if the stored token decrypts to it."""
    client = await start_server(runtime.services)
    try:
        params = call_params("+15550000002", account_sid=ACCOUNT_SID)
        return (await post_signed(client, f"/api/twilio/voice?api_key={api_key}", params, token=token)).status
    finally:
        await client.close()


@pytest.mark.scripted_providers
async def test_rotation_a_new_key_reads_the_old_data_and_rotate_key_leaves_only_the_new_key_needed(
    settings: Settings, tmp_path: Path, mongo_uri: str
) -> None:
    old, new = new_key(), new_key()
    first = await started(settings, old)
    client = await start_server(first.services)
    tenant = await make_tenant(client, first.services)
    provider = await client.post(
        "/api/dashboard/providers",
        headers=tenant.jwt,
        json={"category": "tts", "providerKey": "elevenlabs", "name": "V", "credentials": {"apiKey": PROVIDER_SECRET}},
    )
    assert provider.status == 201, await provider.text()
    provider_id = ObjectId((await provider.json())["_id"])
    twilio = {"twilio": {"accountSid": ACCOUNT_SID, "authToken": TWILIO_TOKEN}}
    assert (await client.patch("/api/dashboard/organization", headers=tenant.jwt, json=twilio)).status == 200
    await client.close()
    await first.close()

    async def still_works(runtime: Runtime) -> None:
        stored = await runtime.services.db.providers.find_one({"_id": provider_id})
        assert provider_credentials(runtime.services, stored) == {"apiKey": PROVIDER_SECRET}
        assert await webhook_status(runtime, tenant.api_key, TWILIO_TOKEN) == 200

    both = await started(settings, f"{new},{old}")  # the new key first: it encrypts, the old one still decrypts
    try:
        await still_works(both)
        assert len(await raw_secrets(both)) == 2
    finally:
        await both.close()

    env = clean_env(
        VOICEX_MONGODB_URI=mongo_uri,
        VOICEX_DB_NAME=settings.db_name,
        VOICEX_DATA_DIR=str(tmp_path / "admin"),
        VOICEX_ENCRYPTION_KEY=f"{new}, {old}",
    )
    rotated = run(["admin", "rotate-key"], env, tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "Re-encrypted 2 stored secrets with the newest key; 0 already were" in rotated.stdout
    assert "organizations.twilio.authToken: 1 re-encrypted" in rotated.stdout
    assert "providers.credentials: 1 re-encrypted" in rotated.stdout
    again = run(["admin", "rotate-key"], env, tmp_path)  # idempotent: nothing left to do
    assert again.returncode == 0, again.stderr
    assert "Re-encrypted 0 stored secrets with the newest key; 2 already were" in again.stdout

    only_new = await started(settings, new)
    try:
        await still_works(only_new)
        tokens = await raw_secrets(only_new)
        assert len(tokens) == 2 and all(SecretBox(new).rotate(token) is None for token in tokens)
    finally:
        await only_new.close()
    with pytest.raises(SetupError, match="VOICEX_ENCRYPTION_KEY differs"):
        await Runtime.start(settings.model_copy(update={"encryption_key": old}))  # a process left on the old key
    wrong = run(["admin", "rotate-key"], {**env, "VOICEX_ENCRYPTION_KEY": new_key()}, tmp_path)
    assert wrong.returncode == 2 and "none of the VOICEX_ENCRYPTION_KEY keys given" in wrong.stderr


# Finding 11: supply chain


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def locked(name: str) -> dict[str, tuple[Version, list[str]]]:
    """A lock file's pins: name -> (version, hashes)."""
    text = (ROOT / "requirements" / f"{name}.lock").read_text().replace("\\\n", " ")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = line.split(" --hash=")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)\s*(;.*)?", requirement.strip())
        assert match, f"{name}.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = (Version(match[2]), [option.split()[0] for option in options])
    return pins


@pytest.mark.parametrize(("lock", "extras"), [("server", ()), ("local", ("local",)), ("dev-local", ("dev", "local"))])
def test_each_lock_file_pins_every_declared_dependency_with_hashes(lock: str, extras: tuple[str, ...]) -> None:
    project = pyproject()["project"]
    declared = [Requirement(text) for text in project["dependencies"]]
    declared += [Requirement(text) for extra in extras for text in project["optional-dependencies"][extra]]
    pins = locked(lock)
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock}.lock lacks {requirement.name}"
        assert pins[name][0] in requirement.specifier, f"{lock}.lock: {name} {pins[name][0]} is not {requirement}"
    for name, (_, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", value) for value in hashes), name
    others = {canonicalize_name(Requirement(text).name) for text in project["optional-dependencies"]["dev"]}
    assert "dev" in extras or not others & set(pins), f"{lock}.lock holds dev tools"


def test_the_installs_take_their_dependencies_from_the_lock_files_with_hashes_required() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert '--require-hashes -r "$lock"' in bootstrap and "--no-deps -e ." in bootstrap
    assert "requirements/*.lock | sha256sum" in bootstrap  # a changed lock reinstalls (the stamp covers it)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'pip install --require-hashes -r "requirements/${VOICEX_EXTRAS:-server}.lock"' in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert not re.search(r"pip install \"?\.\[", dockerfile)  # no unpinned install of the extras


def test_cryptography_is_at_a_release_without_the_2024_advisories() -> None:
    floor = next(Requirement(text) for text in pyproject()["project"]["dependencies"] if text.startswith("crypto"))
    assert Version("43.0.1") not in floor.specifier and Version("44.0.1") in floor.specifier
    import cryptography

    assert Version(cryptography.__version__) >= Version("44.0.1")
    assert locked("server")["cryptography"][0] >= Version("44.0.1")


def test_a_tampered_model_file_is_refused_with_the_file_and_both_hashes_and_the_real_ones_load(
    tmp_path: Path,
) -> None:
    pytest.importorskip("piper")
    from providers.base import ProviderError
    from providers.local import models

    real = models.joe_voice_path()
    tampered = tmp_path / real.name
    shutil.copyfile(real, tampered)
    shutil.copyfile(f"{real}.json", f"{tampered}.json")
    with tampered.open("r+b") as handle:  # one byte of the weights, in the middle: the graph still parses
        handle.seek(tampered.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    expected, actual = (hashlib.sha256(path.read_bytes()).hexdigest() for path in (real, tampered))
    with pytest.raises(ProviderError) as refused:
        models.piper(str(tampered))
    message = str(refused.value)
    assert f"refusing to load model file {tampered}" in message
    assert f"its SHA-256 is {actual}, expected {expected}" in message

    from providers.local import model_hashes
    from providers.local.integrity import verify, verify_all

    assert model_hashes.PIPER_VOICES[real.name] == expected
    verify_all(models.whisper_dir(), model_hashes.WHISPER_TINY_EN)
    verify(models.smollm2_path(), model_hashes.GGUF)
    engine = models.piper()  # the real voice passes its check and speaks
    assert sum(len(piece) for piece in engine.synthesize("Checked.", 1.0)) > 0
