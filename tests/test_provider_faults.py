"""Provider faults during whole calls: STT (Deepgram), LLM (Groq) and TTS (ElevenLabs) broken in turn.

Real server, simulated Twilio caller, the vendors' SDKs against loopback servers (scripts/fault_matrix.py).
A representative part of the matrix runs here, a pre-output and a mid-stream fault per category, with and
without a fallback; ``python -m scripts.provider_faults`` runs all 36 cases.
"""

from __future__ import annotations

import pytest

from scripts.fault_matrix import Case, FaultLab, run_matrix, table
from tests.factories import make_tenant

pytestmark = [pytest.mark.slow, pytest.mark.scripted_providers]

CASES = [
    # category, fault, fallback?, what the caller hears after the question
    ("stt", "http_401", True, "reply"),  # the scripted recognizer takes the call
    ("stt", "dropped", False, "apology"),  # no recognizer left: the agent says it cannot hear
    ("stt", "garbage", True, "reply"),  # the fallback takes over mid-call
    ("llm", "timeout", True, "reply"),  # the fallback answers after one stalled request
    ("llm", "refused", False, "apology"),
    # mid-reply, but in the answer held back while the turn-ending silence ran (preemptive generation): nothing was
    # heard yet, so the fallback answers afresh (with preemptiveGeneration off the caller hears an apology)
    ("llm", "dropped", True, "reply"),
    ("tts", "http_5xx", False, "reply"),  # the emergency voice speaks the answer
    ("tts", "dropped", True, "reply + apology"),  # the voice broke off mid-sentence
]


async def test_every_fault_leaves_a_call_that_goes_on_ends_normally_and_records_the_fault(server, services) -> None:
    tenant = await make_tenant(server, services, plan="enterprise")
    lab = FaultLab(server, tenant.api_key)
    await lab.setup()
    outcomes = await run_matrix(lab, [Case(c, f, fb) for c, f, fb, _ in CASES], concurrency=4)
    report = "\n".join(table(outcomes))
    for outcome, (_, _, _, heard) in zip(outcomes, CASES, strict=True):
        label = outcome.case.label
        assert outcome.completed, (label, outcome.problem, report)
        assert outcome.heard == heard, (label, outcome.errors, report)
        assert outcome.end_reason == "caller_hangup", (label, report)
        assert outcome.fault_recorded, (label, outcome.errors, report)
