"""Logs for people and machines: JSON or text lines, each call's lines naming the call, quiet probes, 4xx lines
that say why, and DEBUG that shows the engine's turns rather than the libraries' chatter."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from scripts.twilio_sim import CallConfig, SimulatedCall, synthesize
from tests.telephony import AUTH_TOKEN, make_line, post_signed
from tests.voicex_process import clean_env, start_serve
from voicex.platform.errors import SettingsError
from voicex.platform.logs import OWN_LOGGERS, configure_logging
from voicex.platform.settings import load_settings


class Capture:
    """The server's own log set-up (voicex.platform.logs.configure_logging) writing into a buffer."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def start(self, level: str = "INFO", **options: Any) -> None:
        self.buffer = io.StringIO()
        configure_logging(level, stream=self.buffer, **{"fmt": "json", **options})

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.buffer.getvalue().splitlines() if line.startswith("{")]

    def access(self, path: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "voicex.access" and line["path"] == path]


@pytest.fixture
def capture() -> Iterator[Capture]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    own = {name: logging.getLogger(name).level for name in OWN_LOGGERS}
    yield Capture()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, own_level in own.items():
        logging.getLogger(name).setLevel(own_level)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_for_a_terminal_json_otherwise(capture: Capture) -> None:
    log = logging.getLogger("voicex.test_logs")
    terminal = Terminal()
    configure_logging("INFO", stream=terminal)
    log.info("%s %s %d", "GET", "/api/plans", 200, extra={"method": "GET", "status": 200, "remote": "127.0.0.1"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed", extra={"error": "a reason with spaces"})
    first, second, *traceback = terminal.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO    voicex\.test_logs: GET /api/plans 200  remote=127\.0\.0\.1",
        first,
    ), first
    assert second.endswith('ERROR   voicex.test_logs: it failed  error="a reason with spaces"'), second
    assert traceback[0].startswith("Traceback") and traceback[-1] == "ValueError: boom"

    piped = io.StringIO()  # a file, a pipe, a log collector
    configure_logging("INFO", stream=piped)
    log.info("hello", extra={"count": 3})
    entry = orjson.loads(piped.getvalue())
    assert (entry["level"], entry["logger"], entry["msg"], entry["count"]) == ("INFO", "voicex.test_logs", "hello", 3)

    forced = Terminal()
    configure_logging("INFO", stream=forced, fmt="json")
    log.info("hello")
    assert orjson.loads(forced.getvalue())["msg"] == "hello"


def test_log_settings_are_checked_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEX_LOG_FORMAT", "yaml")
    with pytest.raises(SettingsError, match="VOICEX_LOG_FORMAT"):
        load_settings()
    monkeypatch.setenv("VOICEX_LOG_FORMAT", "Text")
    monkeypatch.setenv("VOICEX_THIRD_PARTY_LOG_LEVEL", "debug")
    settings = load_settings()
    assert (settings.log_format, settings.third_party_log_level) == ("text", "DEBUG")
    monkeypatch.setenv("VOICEX_THIRD_PARTY_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError, match="VOICEX_THIRD_PARTY_LOG_LEVEL"):
        load_settings()


async def test_probes_and_scrapes_log_at_debug_and_other_requests_at_info(client, capture: Capture) -> None:
    probes = ("/api/health", "/api/ready", "/metrics")
    capture.start("INFO")
    for path in (*probes, "/api/plans"):
        assert (await client.get(path)).status == 200, path
    assert [line["path"] for line in capture.lines() if line["logger"] == "voicex.access"] == ["/api/plans"]

    capture.start("DEBUG")
    for path in probes:
        await client.get(path)
    for path in probes:
        assert [line["level"] for line in capture.access(path)] == ["DEBUG"], path


async def test_an_error_line_says_why_and_never_the_credential(client, capture: Capture) -> None:
    capture.start("INFO")
    wrong_key = "vx_" + "7" * 48
    refused = await client.get("/api/dashboard/agents", headers={"x-api-key": wrong_key})
    missing = await client.get("/api/no/such/thing")
    assert (refused.status, missing.status) == (401, 404)
    [line] = capture.access("/api/dashboard/agents")
    reason = (await refused.json())["error"]
    assert line["status"] == 401 and line["error"] == reason and line["msg"].endswith(reason)
    assert capture.access("/api/no/such/thing")[0]["error"] == "not found"
    assert wrong_key not in capture.buffer.getvalue()


async def test_debug_shows_our_lines_and_only_warnings_of_third_parties(client, capture: Capture) -> None:
    capture.start("DEBUG")
    for path in ("/api/ready", "/api/setup/status", "/api/plans"):
        await client.get(path)
    lines = capture.lines()
    assert any(line["level"] == "DEBUG" and line["logger"] == "voicex.access" for line in lines)
    noise = [
        line for line in lines if not line["logger"].startswith(OWN_LOGGERS) and line["level"] in ("DEBUG", "INFO")
    ]
    assert noise == [], noise[:3]

    capture.start("DEBUG", third_party_level="DEBUG")  # the separate knob: VOICEX_THIRD_PARTY_LOG_LEVEL
    await client.get("/api/setup/status")
    assert any(line["logger"].startswith("pymongo") for line in capture.lines())


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.scripted_providers
async def test_every_line_of_a_call_names_the_call_and_debug_shows_its_turns(server, services, capture) -> None:
    capture.start("DEBUG")
    line = await make_line(server, services)
    base = f"http://127.0.0.1:{server.server.port}"
    config = CallConfig(base_url=base, api_key=line.tenant.api_key, auth_token=AUTH_TOKEN, to_number=line.number)
    call = SimulatedCall(config)
    assert await call.dial()
    assert await call.wait_for_agent_silence(timeout=10)  # the greeting
    await call.say(synthesize("Hello, what time do you open tomorrow?"))
    assert await call.wait_for_agent_silence(timeout=10)  # the answer
    await call.hangup()
    result = call.result()
    await call.close()
    ids = {"callId": result.custom_parameters["callId"], "callSid": result.call_sid}
    status = {"CallSid": result.call_sid, "CallStatus": "completed", "SequenceNumber": "9", "CallDuration": "4"}
    answered = await post_signed(server, f"/api/twilio/status?api_key={line.tenant.api_key}", status)
    assert answered.status == 204
    stream_path = urlsplit(call.answer.stream_url if call.answer else "").path  # /api/twilio/stream/{callId}/{token}
    stream, token = stream_path.rsplit("/", 1)[0] + "/…", stream_path.rsplit("/", 1)[1]
    await _until(lambda: capture.access(stream))  # written once the stream's call is finalized, its token left out
    assert not any(token in str(entry) for entry in capture.lines())  # a credential, even single-use, is not logged

    for path, status in (("/api/twilio/voice", 200), (stream, 101), ("/api/twilio/status", 204)):
        [access] = capture.access(path)
        assert {key: access.get(key) for key in ids} == ids, path
        assert access["status"] == status, path
    engine = [entry for entry in capture.lines() if entry["logger"].startswith(("pipelines.", "providers."))]
    for entry in engine:
        assert {key: entry.get(key) for key in ids} == ids, entry
    said = [entry["msg"] for entry in engine]
    for event in ("caller speech started", "end of turn", "reply started", "reply finished"):
        assert event in said, f"no DEBUG line for {event!r}: {said}"
    answer = next(entry for entry in engine if entry["msg"] == "reply finished" and entry.get("turn") == 1)
    assert answer["e2e_latency"] > 0
    others = [entry for entry in capture.lines() if entry.get("callId") not in (None, ids["callId"])]
    assert others == []


@pytest.mark.slow
def test_voicex_serve_logs_as_its_settings_say(mongo_uri: str, tmp_path) -> None:
    token = "scrape-token-3f9c2a7b1d5e8640"
    env = clean_env(
        VOICEX_MONGODB_URI=mongo_uri,
        VOICEX_DB_NAME=f"test_{uuid.uuid4().hex[:12]}",
        VOICEX_DATA_DIR=str(tmp_path / "data"),
        VOICEX_WARM_LOCAL_MODELS="false",
        VOICEX_LOG_LEVEL="debug",
        VOICEX_LOG_FORMAT="text",  # stderr is a file here, so JSON unless asked
        VOICEX_METRICS_TOKEN=token,
    )
    server = start_serve(env, tmp_path)
    try:
        assert http_status(f"{server.url}/metrics") == 401
        assert http_status(f"{server.url}/metrics", {"Authorization": f"Bearer {token}"}) == 200
        probe = server.wait_for_log("GET /api/health 200")
        refused = server.wait_for_log("GET /metrics 401")
    finally:
        server.stop()
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} DEBUG   voicex\.access: GET /api/health 200  ", probe), probe
    assert "INFO    voicex.access: GET /metrics 401: metrics require" in refused, refused
    lines = server.log().splitlines()
    assert not [line for line in lines if line.startswith("{")], "JSON lines despite VOICEX_LOG_FORMAT=text"
    assert not [line for line in lines if " DEBUG   pymongo" in line], (
        "third-party DEBUG lines at VOICEX_LOG_LEVEL=debug"
    )
    assert token not in server.log()


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
