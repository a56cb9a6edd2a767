"""What a finished call reports: its record's transcript, turns, metrics, summary and usage (a ``CallResult``)."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.call_config import CallResult
from pipelines.context import Conversation
from pipelines.metrics import TurnLog, summarize
from pipelines.summary import CallSummary
from pipelines.usage import CallUsage


def call_errors(own: list[str], turn_log: TurnLog, stt: list[str], providers: Iterable[object]) -> list[str]:
    """Every fault of the call, once each: the session's, the turns', the STT's, and what fallback chains took
    over from (their ``failures``)."""
    errors = [*own, *turn_log.errors(), *stt]
    for provider in providers:
        errors.extend(getattr(provider, "failures", []))
    return list(dict.fromkeys(errors))


def call_report(
    end_reason: str,
    conversation: Conversation,
    turn_log: TurnLog,
    usage: CallUsage,
    summary: CallSummary,
    errors: list[str],
) -> CallResult:
    """``usage`` is what the vendors consumed; ``metrics["heard"]`` what the caller heard of it."""
    heard_chars = sum(len(entry.text) for entry in conversation.transcript if entry.role == "assistant")
    return CallResult(
        end_reason=end_reason,
        transcript=conversation.transcript_dicts(),
        turns=[turn.as_dict() for turn in turn_log.turns],
        metrics={
            **summarize(turn_log.turns),
            "heard": {"ttsChars": heard_chars},
            "estimatedTokens": usage.estimated_tokens,
        },
        summary=summary.summary,
        sentiment=summary.sentiment,
        usage={"tokens": usage.tokens, "ttsChars": usage.tts_chars},
        errors=errors,
    )
