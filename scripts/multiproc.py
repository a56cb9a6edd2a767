"""Real ``voicex serve`` processes sharing one database, and tenants made through their HTTP API.

Used by the crash and contention scripts. The database runs on its own (an embedded SecantusDB started here,
or a given MongoDB URI), so ``kill -9`` of a server hits only the server, as when one of several production
servers dies. Every server gets the same JWT secret and encryption key, like a real fleet, so a stream token
issued by one is accepted by another.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from bson import ObjectId

from scripts.twilio_sim import TwimlAnswer, inbound_call_params, new_sid, parse_twiml, sign, voice_url
from scripts.twilio_sim.webhook import post_voice_webhook
from voicex.platform.embedded_db import EmbeddedMongo, free_port
from voicex.store.db import Database

ROOT = Path(__file__).resolve().parents[1]
_names = itertools.count(1)


@dataclass
class ServerProcess:
    """One ``voicex serve`` child process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer; then reap the zombie."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class Org:
    org_id: ObjectId
    api_key: str
    token: str

    @property
    def key(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}


@dataclass
class Cluster:
    """A database and the servers started on it; ``uri`` None starts an embedded database of its own."""

    uri: str | None = None
    db_name: str = field(default_factory=lambda: f"voicex_{secrets.token_hex(4)}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voicex-multiproc-")))
    twilio_token: str = field(default_factory=lambda: secrets.token_hex(16))
    servers: list[ServerProcess] = field(default_factory=list)
    _embedded: EmbeddedMongo | None = None
    _db: Database | None = None
    _secrets: dict[str, str] = field(
        default_factory=lambda: {
            "VOICEX_JWT_SECRET": secrets.token_urlsafe(48),
            "VOICEX_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
    )

    async def __aenter__(self) -> Cluster:
        if self.uri is None:
            self._embedded = EmbeddedMongo(self.workdir / "db", port=free_port())
            self.uri = await asyncio.to_thread(self._embedded.start)
        self._db = Database(self.uri, self.db_name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()
        if self._db is not None:
            await self._db.client.drop_database(self.db_name)
            await self._db.close()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)

    @property
    def db(self) -> Database:
        assert self._db is not None, "use the cluster as an async context manager"
        return self._db

    async def start_server(self, port: int | None = None, workers: int = 1) -> ServerProcess:
        """Start a server (on ``port``, e.g. a crashed one's; ``workers`` processes) until /api/health answers."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICEX_")}
        env = clean | self._secrets
        env |= {
            "VOICEX_HOST": "127.0.0.1",
            "VOICEX_PORT": str(port),
            "VOICEX_PUBLIC_URL": url,
            "VOICEX_DATA_DIR": str(self.workdir / f"data-{port}"),
            "VOICEX_MONGODB_URI": self.uri or "",
            "VOICEX_DB_NAME": self.db_name,
            "VOICEX_ENABLE_SCRIPTED_PROVIDERS": "true",
            "VOICEX_TWILIO_AUTH_TOKEN": self.twilio_token,
            "VOICEX_RATE_LIMIT_IP_PER_MINUTE": "1000000",
            "VOICEX_RATE_LIMIT_PER_MINUTE": "1000000",
            "VOICEX_LOG_LEVEL": "WARNING",
            "VOICEX_WARM_LOCAL_MODELS": "false",  # scripted providers only: no embedded models to load
            "VOICEX_WORKERS": str(workers),  # 1: one process per server, so kill -9 hits exactly its calls
        }
        log_path = self.workdir / f"server-{port}-{next(_names)}.log"
        with log_path.open("wb") as log:
            cmd = [sys.executable, "-m", "voicex", "serve"]
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=log)  # noqa: ASYNC220
        server = ServerProcess(proc, port, log_path)
        await asyncio.to_thread(_wait_healthy, server)
        self.servers.append(server)
        return server

    async def make_org(self, http: aiohttp.ClientSession, server: ServerProcess, plan: str) -> Org:
        """Sign up through the API, activate the org on ``plan`` (as a platform admin would), make an API key."""
        n = f"{next(_names)}-{secrets.token_hex(3)}"
        signup = {"name": f"Owner {n}", "email": f"owner{n}@example.com", "password": f"pw-{n}-long-enough"}
        body = await _json(http.post(f"{server.url}/api/auth/signup", json=signup | {"orgName": f"Org {n}"}), 201)
        org_id = ObjectId(body["organization"]["_id"])
        await self.db.organizations.update_one({"_id": org_id}, {"$set": {"status": "active", "planSlug": plan}})
        jwt = {"Authorization": f"Bearer {body['token']}"}
        key = await _json(http.post(f"{server.url}/api/dashboard/api-keys", json={"name": "k"}, headers=jwt), 201)
        return Org(org_id, key["rawKey"], body["token"])

    async def make_agent(
        self, http: aiohttp.ClientSession, server: ServerProcess, org: Org, **fields: Any
    ) -> aiohttp.ClientResponse:
        """POST an agent on the global scripted providers; the response is returned unread."""
        providers = await _json(http.get(f"{server.url}/api/dashboard/providers", headers=org.key), 200)
        scripted = {p["category"]: p["_id"] for p in providers if p["providerKey"] == "scripted"}
        body = {
            "name": f"Agent {next(_names)}",
            "persona": {"systemPrompt": "Be brief.", "greeting": "Hello from Voicex."},
            **{f"{c}ProviderId": scripted[c] for c in ("stt", "llm", "tts")},
            **{f"{c}ModelId": "scripted" for c in ("stt", "llm", "tts")},
            **fields,
        }
        return await http.post(f"{server.url}/api/dashboard/agents", json=body, headers=org.key)

    async def voice_webhook(
        self, http: aiohttp.ClientSession, server: ServerProcess, org: Org, agent_id: str, call_sid: str
    ) -> TwimlAnswer:
        """Twilio's signed voice webhook for a new call; the answer opens a stream (admitted) or says and hangs up."""
        url = voice_url(server.url, org.api_key, agent_id)
        params = inbound_call_params("AC" + "0" * 32, call_sid, "+14155550123", "+15005550006")
        reply = await post_voice_webhook(http, url, url, params, self.twilio_token, timeout=60)
        if reply.status != 200:
            raise RuntimeError(f"voice webhook answered {reply.status}: {reply.body[:200]}")
        return parse_twiml(reply.body, url)

    async def status_callback(
        self, http: aiohttp.ClientSession, server: ServerProcess, org: Org, call_sid: str, status: str = "completed"
    ) -> int:
        """Twilio's signed status callback for ``call_sid`` (ends a call whose stream never started)."""
        url = f"{server.url}/api/twilio/status?api_key={org.api_key}"
        params = inbound_call_params("AC" + "0" * 32, call_sid, "+14155550123", "+15005550006")
        params |= {"CallStatus": status, "SequenceNumber": "9", "CallDuration": "1"}
        headers = {"X-Twilio-Signature": sign(self.twilio_token, url, params)}
        async with http.post(url, data=params, headers=headers) as response:
            return response.status


def new_call_sid() -> str:
    return new_sid("CA")


async def _json(request: Any, expected: int) -> Any:
    async with request as response:
        body = await response.json()
        if response.status != expected:
            raise RuntimeError(f"{response.method} {response.url} answered {response.status}: {body}")
        return body


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_tail: Callable[[], str], limit_s: float = 60.0) -> None:
    """Until a started ``voicex serve`` answers /api/health; RuntimeError with its log if it exits or stalls."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log_tail()}")
        try:
            urllib.request.urlopen(f"{url}/api/health", timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer /api/health within {limit_s:.0f} s: {log_tail()}")


def _wait_healthy(server: ServerProcess, limit_s: float = 60.0) -> None:
    try:
        wait_healthy(server.url, server.proc, server.log_tail, limit_s)
    except RuntimeError:
        server.stop()
        raise
