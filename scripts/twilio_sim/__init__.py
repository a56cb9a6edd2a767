"""A simulated Twilio caller: test Voicex end to end without a phone.

It posts the signed voice webhook with a real inbound parameter set, follows the TwiML into a bidirectional
Media Stream, streams caller audio in real time, plays the agent's audio like Twilio's buffer (marks, clear),
checks every server message against the documented shapes, and measures voice-to-voice latency and barge-in
reaction per turn. Protocol facts: docs/twilio-protocol.md.
"""

from scripts.twilio_sim.call import CallConfig, SimulatedCall
from scripts.twilio_sim.caller_audio import CallerAudio, LineNoise, caller_audio, read_wav, silence_audio, synthesize
from scripts.twilio_sim.messages import TwilioMessages, Violation, parse_server_message
from scripts.twilio_sim.playback import PlaybackBuffer
from scripts.twilio_sim.results import CallResult, RunSummary, TurnMetrics, format_call, format_summary, percentile
from scripts.twilio_sim.script import (
    BargeInAfter,
    CallScript,
    Dtmf,
    Hangup,
    Say,
    Silence,
    WaitClosed,
    WaitForAgentAudio,
    WaitForAgentSilence,
    place_call,
    run_calls,
)
from scripts.twilio_sim.webhook import TwimlAnswer, inbound_call_params, new_sid, parse_twiml, sign, voice_url

__all__ = [
    "BargeInAfter",
    "CallConfig",
    "CallResult",
    "CallScript",
    "CallerAudio",
    "Dtmf",
    "Hangup",
    "LineNoise",
    "PlaybackBuffer",
    "RunSummary",
    "Say",
    "Silence",
    "SimulatedCall",
    "TurnMetrics",
    "TwilioMessages",
    "TwimlAnswer",
    "Violation",
    "WaitClosed",
    "WaitForAgentAudio",
    "WaitForAgentSilence",
    "caller_audio",
    "format_call",
    "format_summary",
    "inbound_call_params",
    "new_sid",
    "parse_server_message",
    "parse_twiml",
    "percentile",
    "place_call",
    "read_wav",
    "run_calls",
    "sign",
    "silence_audio",
    "synthesize",
    "voice_url",
]
