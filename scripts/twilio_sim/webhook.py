"""The voice webhook as Twilio sends it: SIDs, the full inbound parameter set, the signature, and the TwiML answer.

Facts follow docs/twilio-protocol.md §3 (signature) and §4.1 (parameters). The signature is computed with the official
``twilio`` package, so a server that validates with ``RequestValidator`` sees exactly what a real call sends.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
from twilio.request_validator import RequestValidator

VOICE_PATH = "/api/twilio/voice"
WEBHOOK_USER_AGENT = "TwilioProxy/1.1"  # what Twilio's webhook requests carry


def new_sid(prefix: str) -> str:
    """A 34-character Twilio SID: two-letter prefix (AC, CA, MZ, ...) + 32 lowercase hex digits."""
    if len(prefix) != 2:
        raise ValueError(f"SID prefix must be two letters, got {prefix!r}")
    return prefix + secrets.token_hex(16)


def inbound_call_params(account_sid: str, call_sid: str, from_number: str, to_number: str) -> dict[str, str]:
    """Every parameter of a ringing inbound call, empty geo fields included (they count in the signature)."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": from_number,
        "Caller": from_number,
        "To": to_number,
        "Called": to_number,
    }
    for who in ("From", "To", "Caller", "Called"):
        for geo in ("City", "State", "Zip"):
            params[f"{who}{geo}"] = ""
        params[f"{who}Country"] = "US"
    return params


def sign(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    """X-Twilio-Signature for ``url`` (byte-exact, query included) and the decoded POST params."""
    return RequestValidator(auth_token).compute_signature(url, params or {})


def voice_url(base_url: str, api_key: str, agent_id: str | None = None) -> str:
    """``{base}/api/twilio/voice?api_key=...[&agentId=...]``: the webhook URL configured on the number."""
    query = {"api_key": api_key}
    if agent_id:
        query["agentId"] = agent_id
    return base_url.rstrip("/") + VOICE_PATH + "?" + urlencode(query)


@dataclass(frozen=True)
class TwimlAnswer:
    """What the server told Twilio to do: open a stream (``stream_url`` set) or speak and hang up."""

    stream_url: str | None
    parameters: dict[str, str] = field(default_factory=dict)
    said: str = ""
    hangup: bool = False


def parse_twiml(xml_text: str, request_url: str) -> TwimlAnswer:
    """Read the TwiML verbs that matter to a caller; a relative Stream url resolves like Twilio's (to wss/ws).

    Raises ValueError for TwiML that is not a ``<Response>`` or that streams with ``<Start>`` (unidirectional).
    """
    root = ET.fromstring(xml_text)
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    if root.find("Start/Stream") is not None:
        raise ValueError("TwiML uses <Start><Stream> (unidirectional); Voicex needs <Connect><Stream>")
    said = " ".join((say.text or "").strip() for say in root.iter("Say")).strip()
    hangup = root.find("Hangup") is not None
    stream = root.find("Connect/Stream")
    if stream is None:
        return TwimlAnswer(stream_url=None, said=said, hangup=hangup)
    url = stream.get("url")
    if not url:
        raise ValueError("<Stream> has no url")
    if not url.startswith(("ws://", "wss://")):
        absolute = urlsplit(urljoin(request_url, url))
        url = urlunsplit(absolute._replace(scheme="wss" if absolute.scheme == "https" else "ws"))
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
    return TwimlAnswer(stream_url=url, parameters=parameters, said=said, hangup=hangup)


@dataclass(frozen=True)
class WebhookReply:
    status: int
    body: str
    signed_url: str


async def post_voice_webhook(
    session: aiohttp.ClientSession,
    post_url: str,
    signed_url: str,
    params: dict[str, str],
    auth_token: str,
    timeout: float = 10.0,
) -> WebhookReply:
    """POST the form to ``post_url`` signed over ``signed_url`` (the public URL the server believes it has)."""
    headers = {"X-Twilio-Signature": sign(auth_token, signed_url, params), "User-Agent": WEBHOOK_USER_AGENT}
    async with session.post(
        post_url, data=params, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        return WebhookReply(response.status, await response.text(), signed_url)


def connect_url(stream_url: str, public_url: str, base_url: str) -> str:
    """Where to actually open the socket: the TwiML URL, re-homed to ``base_url`` when the public URL is a stand-in.

    A server configured with ``VOICEX_PUBLIC_URL=https://voice.example.com`` answers ``wss://voice.example.com/...``;
    a local test still signs that URL but dials the server it can reach.
    """
    if public_url.rstrip("/") == base_url.rstrip("/"):
        return stream_url
    stream, public, base = urlsplit(stream_url), urlsplit(public_url), urlsplit(base_url)
    if stream.hostname != public.hostname or (stream.port or None) != (public.port or None):
        return stream_url
    scheme = "wss" if base.scheme == "https" else "ws"
    return urlunsplit(stream._replace(scheme=scheme, netloc=base.netloc))
