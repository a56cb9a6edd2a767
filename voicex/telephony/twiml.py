"""TwiML answers, generated with the twilio package's own classes (exact element and attribute names)."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, Stream, VoiceResponse


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


def stream_url(public_url: str, path: str = "/api/twilio/stream") -> str:
    """``wss://`` for an ``https://`` public URL (what Twilio requires); ``ws://`` for local http."""
    if public_url.startswith("https://"):
        return "wss://" + public_url.removeprefix("https://") + path
    return "ws://" + public_url.removeprefix("http://") + path
