"""The conversation as the LLM sees it, and the transcript as the call record keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from providers.base import ChatMessage


@dataclass(frozen=True)
class Persona:
    system_prompt: str = "You are a helpful voice assistant on a phone call."
    greeting: str = "Hello! How can I help you today?"
    personality: str = ""
    language: str = "en"
    guardrails: str = ""


_PHONE_STYLE = (
    "You are speaking on a phone call: answer in one to three short spoken sentences, no lists, no markdown,"
    " no emoji; spell out symbols and numbers the way a person would say them."
)


def system_prompt(persona: Persona) -> str:
    """The agent's prompt: its own instructions, then personality, guardrails, language, and phone style."""
    parts = [persona.system_prompt.strip()]
    if persona.personality.strip():
        parts.append(f"Personality: {persona.personality.strip()}")
    if persona.guardrails.strip():
        parts.append(f"Rules you must always follow: {persona.guardrails.strip()}")
    if persona.language and persona.language.lower() not in ("en", "en-us", "en-gb", "english"):
        parts.append(f"Always answer in this language: {persona.language}.")
    parts.append(_PHONE_STYLE)
    return "\n\n".join(part for part in parts if part)


@dataclass
class TranscriptEntry:
    role: str  # "user" | "assistant" | "event"
    text: str
    at_ms: int
    interrupted: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"role": self.role, "text": self.text, "atMs": self.at_ms}
        if self.interrupted:
            entry["interrupted"] = True
        if self.data:
            entry.update(self.data)
        return entry


class Conversation:
    """Chat messages for the LLM plus the call's transcript (with events such as DTMF and barge-ins)."""

    def __init__(self, persona: Persona, max_messages: int = 40) -> None:
        self.system = ChatMessage("system", system_prompt(persona))
        self.messages: list[ChatMessage] = []
        self.transcript: list[TranscriptEntry] = []
        self.max_messages = max_messages

    def add_user(self, text: str, at_ms: int) -> None:
        self.messages.append(ChatMessage("user", text))
        self.transcript.append(TranscriptEntry("user", text, at_ms))

    def amend_last_user(self, text: str) -> None:
        """A late, fuller final transcript for the turn already answered: keep the better text."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                self.messages[index] = ChatMessage("user", text)
                break
        for entry in reversed(self.transcript):
            if entry.role == "user":
                entry.text = text
                break

    def add_assistant(self, text: str, at_ms: int, *, interrupted: bool = False) -> None:
        """What the caller heard of a reply (possibly truncated by a barge-in)."""
        if not text.strip():
            if interrupted:
                self.transcript.append(TranscriptEntry("assistant", "", at_ms, interrupted=True))
            return
        self.messages.append(ChatMessage("assistant", text))
        self.transcript.append(TranscriptEntry("assistant", text, at_ms, interrupted=interrupted))

    def add_event(self, text: str, at_ms: int, **data: Any) -> None:
        self.transcript.append(TranscriptEntry("event", text, at_ms, data=data))

    def for_llm(self) -> list[ChatMessage]:
        return [self.system, *self.messages[-self.max_messages :]]

    def transcript_dicts(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self.transcript]
