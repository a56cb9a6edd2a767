"""An operator can tell why Twilio's requests fail: the URL a signature was checked against, what looks wrong
about VOICEX_PUBLIC_URL, and why a call was refused."""

from __future__ import annotations

import logging

import pytest

from tests.telephony import call_params, make_line, post_signed
from voicex.telephony.signature import public_url_hints

pytestmark = pytest.mark.scripted_providers


def test_hints_name_what_differs_between_the_public_url_and_the_request() -> None:
    checked = "http://voice.example.com/api/twilio/voice?api_key=vx_1"
    assert public_url_hints(None, checked, {})[0].startswith("VOICEX_PUBLIC_URL is not set")
    tls = public_url_hints("http://voice.example.com", checked, {"X-Forwarded-Proto": "https"})
    assert tls == ["the request reached the proxy over https, but VOICEX_PUBLIC_URL uses http"]
    host = public_url_hints("http://voice.example.com", checked, {"Host": "other.example.com"})
    assert host == ["the request was for host other.example.com, but VOICEX_PUBLIC_URL names voice.example.com"]
    prefix = public_url_hints("http://voice.example.com", checked, {"X-Forwarded-Prefix": "/voicex"})
    assert prefix == ["the proxy stripped the path prefix /voicex: add it to VOICEX_PUBLIC_URL"]
    # A stream upgrade is checked against wss://: behind TLS that is right, not a hint.
    upgrade = "wss://voice.example.com/api/twilio/stream"
    fine = public_url_hints(
        "https://voice.example.com", upgrade, {"X-Forwarded-Proto": "https", "Host": "voice.example.com:443"}
    )
    assert len(fine) == 1 and "primary token" in fine[0]  # nothing differs: the remaining usual causes


async def test_a_refused_signature_and_a_refused_call_are_logged_with_why(server, services, caplog) -> None:
    caplog.set_level(logging.INFO)
    line = await make_line(server, services)
    path = f"/api/twilio/voice?api_key={line.tenant.api_key}"
    forged = await post_signed(server, path, call_params(line.number), token="not-the-auth-token")
    assert forged.status == 403
    [refused] = [r for r in caplog.records if r.getMessage().startswith("Twilio signature refused")]
    assert refused.levelno == logging.WARNING
    port = server.server.port
    shown = f"http://127.0.0.1:{port}/api/twilio/voice?api_key={line.tenant.api_key[:11]}…"
    assert f"checked against {shown}" in refused.getMessage()
    assert line.tenant.api_key not in refused.getMessage() + str(refused.__dict__)  # never the key itself

    unknown = await post_signed(server, path, call_params("+15550009999"))
    assert unknown.status == 200 and "<Say>" in await unknown.text()
    [no_agent] = [r for r in caplog.records if r.getMessage().startswith("call refused")]
    assert (
        no_agent.levelno == logging.WARNING
        and no_agent.getMessage() == "call refused: no agent for the number +15550009999"
    )
