"""Provider faults during whole calls: the matrix behind ``scripts/provider_faults.py`` and its test.

Each case is one real call over the real server, placed by the simulated Twilio caller, on an agent configured
over the API whose providers are the vendors' official SDKs pointed (``baseUrl`` setting) at loopback servers
that speak each vendor's wire protocol: Deepgram for STT, Groq for the LLM, ElevenLabs for TTS. One category
is broken per case, in one of six ways, with or without a ``scripted`` fallback provider for that category.
The loopback Deepgram "transcribes" by script: whatever μ-law audio arrives, it answers the next scripted
utterance (interim after 800 bytes, final on ``Finalize``).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipelines.audio import pcm16_to_ulaw
from scripts.twilio_sim import CallConfig, CallScript, place_call, synthesize
from tests.loopback.deepgram_server import DeepgramLoopback, Utterance
from tests.loopback.elevenlabs_server import ElevenLabsServer
from tests.loopback.openai_server import OpenAILoopback
from tests.telephony import AUTH_TOKEN
from voicex.platform.embedded_db import free_port

CATEGORIES = ("stt", "llm", "tts")
FAULTS = ("refused", "http_5xx", "http_401", "timeout", "dropped", "garbage")
VENDORS = {"stt": "deepgram", "llm": "groq", "tts": "elevenlabs"}
MODELS = {"stt": "nova-2-phonecall", "llm": "llama-3.1-8b-instant", "tts": "21m00Tcm4TlvDq8ikWAM"}  # tts: a voice
KEYS = {"stt": "dg-test-key", "llm": "gsk-test-key", "tts": "xi-test-key"}
QUESTION = "What time do you open tomorrow?"
REPLY = "Hello there! How can I help?"  # what the loopback Groq streams
FALLBACK_REPLY = "Sure, I can help with that."  # the scripted LLM's reply
TIMEOUT_SEC = 1.5  # each vendor's timeoutSec setting: how long a stalled vendor is waited for
# Not one is a transcript: text that is not JSON, a Results of the wrong shape, one without a channel, a number.
_GARBAGE_STT = [
    "\x00not json{",
    '{"type": "Results", "channel": 42}',
    '{"type": "Results"}',
    '{"type": "Results", "channel": {"alternatives": [{"transcript": 5}]}}',
] * 5


@dataclass(frozen=True)
class Case:
    category: str
    fault: str
    fallback: bool

    @property
    def label(self) -> str:
        return f"{self.category}/{self.fault}/{'fallback' if self.fallback else 'alone'}"


@dataclass
class Outcome:
    """What the caller and the call record show for one case."""

    case: Case
    completed: bool = False  # the simulated call ended cleanly (no socket error, no protocol violation)
    heard: str = "nothing"  # reply, apology, reply + apology, nothing
    end_reason: str = "-"
    fault_recorded: bool = False
    errors: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.completed and self.heard != "nothing" and self.end_reason == "caller_hangup" and self.fault_recorded


def all_cases() -> list[Case]:
    return [Case(c, f, fb) for c in CATEGORIES for f in FAULTS for fb in (False, True)]


@cache
def question_audio() -> bytes:
    return synthesize(QUESTION)


def _tone_ulaw(seconds: float = 0.8, rate: int = 8000) -> bytes:
    """A 440 Hz tone in μ-law: the loopback ElevenLabs' "speech"."""
    pcm = bytearray()
    for n in range(int(seconds * rate)):
        pcm += int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(2, "little", signed=True)
    return pcm16_to_ulaw(bytes(pcm))


class Vendors:
    """The three loopback vendors of one case, healthy except for the one fault injected."""

    def __init__(self) -> None:
        self.deepgram = DeepgramLoopback(KEYS["stt"], utterances=[Utterance("what time", QUESTION)] * 50)
        self.openai = OpenAILoopback()
        self.openai.tokens = ["Hello", " there", "! How", " can I", " help?"]
        self.openai.stall_seconds = 30.0
        self.elevenlabs = ElevenLabsServer(api_key=KEYS["tts"], audio=_tone_ulaw())
        self.dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused

    async def __aenter__(self) -> Vendors:
        await self.deepgram.start()
        await self.openai.start()
        await self.elevenlabs.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.deepgram.close()
        await self.openai.close()
        await self.elevenlabs.close()

    def base_url(self, category: str) -> str:
        return {
            "stt": self.deepgram.base_url,
            "llm": self.openai.groq_base_url,
            "tts": self.elevenlabs.base_url,
        }[category]

    def inject(self, category: str, fault: str) -> None:
        """Break one vendor (``refused`` is a dead base URL, chosen when the providers are created)."""
        if fault == "refused":
            return
        if category == "stt":
            server = self.deepgram
            if fault == "http_5xx":
                server.handshake_status = 503
            elif fault == "http_401":
                server.api_key = "rotated-key"
            elif fault == "timeout":
                server.handshake_delay = 30.0
            elif fault == "dropped":
                server.drop_after_bytes, server.drops = 4000, 1000  # every connection dies after 0.5 s of audio
            elif fault == "garbage":
                server.greeting = _GARBAGE_STT
        elif category == "llm":
            modes = {"http_5xx": "server_error", "http_401": "unauthorized", "timeout": "stall_headers"}
            self.openai.mode = modes.get(fault) or {"dropped": "drop", "garbage": "malformed"}[fault]  # type: ignore[assignment]
        else:
            tts = self.elevenlabs
            if fault == "http_5xx":
                tts.mode, tts.error_status = "error", 500
            elif fault == "http_401":
                tts.api_key = "rotated-key"
            else:
                tts.mode = {"timeout": "stall_before_headers", "dropped": "drop", "garbage": "json_200"}[fault]  # type: ignore[assignment]


class FaultLab:
    """A tenant (enterprise plan: many custom providers and concurrent calls) whose agents use the loopbacks."""

    def __init__(self, client: Any, api_key: str) -> None:
        self.client = client
        self.headers = {"x-api-key": api_key}
        self.api_key = api_key
        self.scripted: dict[str, str] = {}

    async def setup(self) -> None:
        providers = await self._json("GET", "/api/dashboard/providers")
        self.scripted = {p["category"]: p["_id"] for p in providers if p["providerKey"] == "scripted"}
        assert set(self.scripted) == set(CATEGORIES), "the scripted providers must be enabled"

    async def _json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = await self.client.request(method, path, json=body, headers=self.headers)
        assert response.status == expect, f"{method} {path}: {response.status} {await response.text()}"
        return await response.json()

    async def make_agent(self, case: Case, vendors: Vendors, tag: str) -> str:
        """Three providers on the loopbacks (the broken one first in line) and an agent using them."""
        ids: dict[str, str] = {}
        for category in CATEGORIES:
            refused = case.category == category and case.fault == "refused"
            body = {
                "category": category,
                "providerKey": VENDORS[category],
                "name": f"{VENDORS[category]} {tag}",
                "credentials": {"apiKey": KEYS[category]},
                "settings": {
                    "baseUrl": vendors.dead_url if refused else vendors.base_url(category),
                    "timeoutSec": TIMEOUT_SEC,
                },
            }
            ids[category] = (await self._json("POST", "/api/dashboard/providers", body, expect=201))["_id"]
        agent: dict[str, Any] = {
            "name": f"Faults {tag}",
            "persona": {"systemPrompt": "Be brief.", "greeting": "Hello from Voicex."},
            **{f"{c}ProviderId": ids[c] for c in CATEGORIES},
            **{f"{c}ModelId": MODELS[c] for c in CATEGORIES},
        }
        if case.fallback:
            ref = {"providerId": self.scripted[case.category], "modelId": "scripted"}
            agent["fallbacks"] = {case.category: [ref]}
        return str((await self._json("POST", "/api/dashboard/agents", agent, expect=201))["_id"])

    async def finalized(self, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The call as GET /api/dashboard/calls/:id shows it once it is no longer active."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            call = await self._json("GET", f"/api/dashboard/calls/{call_id}")
            if call["status"] != "active" or loop.time() > deadline:
                return call  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)

    async def run(self, case: Case, tag: str) -> Outcome:
        outcome = Outcome(case)
        async with Vendors() as vendors:
            vendors.inject(case.category, case.fault)
            agent_id = await self.make_agent(case, vendors, tag)
            base = f"http://127.0.0.1:{self.client.server.port}"
            config = CallConfig(base, self.api_key, AUTH_TOKEN, agent_id=agent_id, timeout_s=15)
            script = (
                CallScript()
                .wait_for_agent_silence(timeout=20, audio_timeout=10)  # the greeting
                .say(question_audio())
                .wait_for_agent_silence(timeout=20, audio_timeout=10)  # the answer, or an apology
                .hangup()
            )
            result = await place_call(config, script)
            call_id = result.custom_parameters.get("callId")
            outcome.completed = result.outcome == "completed" and not result.violations
            outcome.problem = result.error or "; ".join(result.violations[:2])
            if call_id is None:
                return outcome
            record = await self.finalized(call_id)
        caller_heard = bool(result.turns) and result.turns[-1].latency_ms is not None
        outcome.heard = classify(record["transcript"]) if caller_heard else "nothing"
        outcome.end_reason = record.get("endReason") or "-"
        outcome.errors = list(record.get("errors") or [])
        outcome.fault_recorded = any(VENDORS[case.category] in error for error in outcome.errors)
        return outcome


def classify(transcript: list[dict[str, Any]]) -> str:
    """What the caller heard (the transcript keeps what marks say was played): an answer to the question, an
    apology at any point (a voice breaking off mid-greeting apologizes there), both, or nothing."""
    start = next((i for i, e in enumerate(transcript) if e["role"] == "user" or e.get("type") == "stt_down"), None)
    if start is None:
        return "nothing"
    said = " ".join(e["text"] for e in transcript[start + 1 :] if e["role"] == "assistant")
    reply = REPLY.split("!")[0] in said or FALLBACK_REPLY.split(",")[0] in said
    apology = any("Sorry" in e["text"] for e in transcript if e["role"] == "assistant")
    return {(True, True): "reply + apology", (True, False): "reply", (False, True): "apology"}.get(
        (reply, apology), "nothing"
    )


async def run_matrix(lab: FaultLab, cases: list[Case], concurrency: int = 3) -> list[Outcome]:
    """Run ``cases`` with at most ``concurrency`` calls at once; outcomes in the order of ``cases``."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, case: Case) -> Outcome:
        async with gate:
            return await lab.run(case, f"{index}-{case.label}")

    return list(await asyncio.gather(*(one(i, case) for i, case in enumerate(cases))))


def table(outcomes: list[Outcome]) -> list[str]:
    head = f"{'category':<8} {'fault':<9} {'fallback':<8} {'call':<9} {'caller heard':<15} {'end reason':<14} fault"
    head += " recorded"
    lines = [head, "-" * len(head)]
    for o in outcomes:
        c = o.case
        lines.append(
            f"{c.category:<8} {c.fault:<9} {'yes' if c.fallback else 'no':<8} "
            f"{'completed' if o.completed else 'FAILED':<9} {o.heard:<15} {o.end_reason:<14} "
            f"{'yes' if o.fault_recorded else 'NO'}"
        )
    return lines
