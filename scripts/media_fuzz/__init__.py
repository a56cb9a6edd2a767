"""Media Streams fuzzing: hypothesis-generated malformed Twilio traffic against a real Voicex server."""

from scripts.media_fuzz.campaign import ErrorLog, Report, Target, generate_plans, run_campaign, run_stream
from scripts.media_fuzz.strategies import Frame, StreamPlan, stream_plans

__all__ = [
    "ErrorLog",
    "Frame",
    "Report",
    "StreamPlan",
    "Target",
    "generate_plans",
    "run_campaign",
    "run_stream",
    "stream_plans",
]
