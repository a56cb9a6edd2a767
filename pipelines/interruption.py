"""Which words confirm a barge-in: also those the recognizer delivered just before it registered.

A barge-in pauses the agent and waits for words (not backchannels) before the agent gives up its reply
(pipelines/turn_detector.py). The detector credits words to speech in progress only from transcripts that arrive
once that speech has started. A recognizer sends an utterance's words when it has them, and then may send nothing
new until the utterance's final: an interim can come before the barge-in registered (it heard sound before the VAD
called it speech: a soft onset, or a line noise floor that the recognizer takes for sound and the VAD does not), and
its final only after the caller stopped, or later still while the line's noise keeps the utterance open. Waiting for
*new* words then turned a real interruption into a false one: no words within falseInterruptionTimeoutMs, the agent
resumed its old reply over the caller and the interruption went unanswered; the caller heard the old reply come
back up to a second after the barge-in instead of an answer at silenceTimeoutMs (scripts/bench/barge_in.py
``--reply-smoke``). So when a barge-in starts waiting, the words of the utterance in progress are offered at once.
"""

from __future__ import annotations

from pipelines.stt_stream import SttStream
from pipelines.turn_detector import Event, TurnDetector


def words_in_progress(detector: TurnDetector, stt: SttStream, now_ms: int) -> list[Event]:
    """What the detector makes of the words STT already has for the utterance in progress, if a barge-in is waiting
    for words (an InterruptionConfirmed when they are not backchannels); nothing otherwise."""
    text = stt.open_text
    if not text or not detector.awaiting_words:
        return []
    return detector.on_transcript(text, False, now_ms)
