"""TwiML answers, generated with the twilio package's own classes (exact element and attribute names)."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

STREAM_PREFIX = "/api/twilio/stream"  # + /{callId}/{token}: Twilio allows no query string in a <Stream> url


def connect_stream(stream_url: str, parameters: dict[str, str]) -> str:
    """Open a bidirectional Media Stream; when the server closes it, the call hangs up."""
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    connect.append(stream)
    response.append(connect)
    response.hangup()
    return str(response.to_xml())


def refuse(message: str) -> str:
    """Say why the call cannot be taken, then hang up: never a 500, never a hanging call."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response.to_xml())


def redirect(url: str) -> str:
    """Hand the call to another URL: Twilio posts the same webhook there (signed for that URL) and follows it."""
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return str(response.to_xml())


def call_stream_path(call_id: str, token: str) -> str:
    """The stream's path for one call: the upgrade's token is checked (and signed by Twilio) before the 101."""
    return f"{STREAM_PREFIX}/{call_id}/{token}"


def stream_url(public_url: str, path: str = STREAM_PREFIX) -> str:
    """``wss://`` for an ``https://`` public URL (what Twilio requires); ``ws://`` for local http."""
    if public_url.startswith("https://"):
        return "wss://" + public_url.removeprefix("https://") + path
    return "ws://" + public_url.removeprefix("http://") + path
