"""Who has the turn: a pure state machine fed one 20 ms VAD decision at a time, with an injected clock.

No asyncio, no sleeps, no wall clock: every method takes ``now_ms`` and returns the events it caused, so a
test can script any sequence of speech and silence and expect exact transitions.

States
    LISTENING        the agent is silent and so is the caller (or the caller has not spoken long enough yet)
    CALLER_SPEAKING  confirmed caller speech
    CALLER_PAUSED    the caller stopped; the turn ends after ``silence_timeout_ms`` of silence unless they resume
    AGENT_SPEAKING   the agent's audio is playing; caller speech may barge in per the sensitivity rule

Events: SpeechStarted, EndOfTurn, BargeIn, InterruptionConfirmed, FalseInterruption, Acknowledged, SilenceTimeout.

Only caller silence ends a turn here: the recognizer's own endpointing (``endpointing_ms``, finals at shorter
pauses) never does, so a hesitation keeps the turn open however many finals it produced. ``SilenceTimeout`` is
the other silence: ``idle_timeout_ms`` of it after the agent finished (a reprompt, then the goodbye).

Barge-in has two stages because a backchannel ("uh-huh") and the start of a real interruption sound the same
until words arrive, while the agent must go quiet within ~250 ms: ``BargeIn`` pauses the agent (its audio is
flushed at the far end but kept), then ``InterruptionConfirmed`` (words that are not backchannels) makes the
agent give up its turn, or ``FalseInterruption`` (no such words in time) lets it carry on where it stopped.
Before the first stage, words that come within ``wordWaitMs`` decide alone: backchannels only (``Acknowledged``)
leave the agent talking, other words stop it for good at once.

Under ``turnDetection: model`` the silence that ends a turn depends on the caller's words so far
(:mod:`pipelines.end_of_turn`): shorter after a complete thought, longer after an unfinished one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pipelines.end_of_turn import Verdict, judge
from pipelines.noise_floor import NoiseFloor, frame_dbfs
from pipelines.turn_settings import TurnSettings, meaningful_words

FRAME_MS = 20
MAX_TAIL_TRIM_MS = 80  # a level estimate never moves the end of speech back by more than this
# …except on a quiet line (floor 30 dB under the caller), where the level is exact: a VAD's own tail may all go
QUIET_LINE_TAIL_TRIM_MS = 160
_QUIET_LINE_SNR_DB = 30.0
_LEVEL_DECAY = 10 ** (-0.25 / 20)  # the caller's level: recent speech peaks, fading 0.25 dB a frame
_ONSET_JUMP_DB = 10.0  # a frame this much louder than the one before, at the caller's level, may be an onset
_ONSET_HOLD_FRAMES = 4  # …for as long as a VAD takes to call an onset (60-80 ms), while the sound stays up
_FLOOR_MARGIN_DB = 3.0  # this far over the line's noise floor counts as sound


class TurnState(Enum):
    LISTENING = "listening"
    CALLER_SPEAKING = "caller_speaking"
    CALLER_PAUSED = "caller_paused"
    AGENT_SPEAKING = "agent_speaking"


@dataclass(frozen=True)
class SpeechStarted:
    at_ms: int
    onset_ms: int


@dataclass(frozen=True)
class EndOfTurn:
    at_ms: int
    speech_end_ms: int
    after_barge_in: bool


@dataclass(frozen=True)
class BargeIn:
    at_ms: int
    onset_ms: int


@dataclass(frozen=True)
class InterruptionConfirmed:
    """Words that are not backchannels came with the barge-in: the agent gives up its turn."""

    at_ms: int


@dataclass(frozen=True)
class FalseInterruption:
    """A barge-in paused the agent but no words (other than backchannels) followed: the agent should resume."""

    at_ms: int


@dataclass(frozen=True)
class Acknowledged:
    """The caller said only a backchannel ("uh-huh", "yeah") while the agent spoke: it talks on, unpaused."""

    at_ms: int


@dataclass(frozen=True)
class SilenceTimeout:
    """``idle_timeout_ms`` of silence while it was the caller's turn to speak (after the agent, or at the start)."""

    at_ms: int
    count: int  # consecutive timeouts without caller speech


Event = SpeechStarted | EndOfTurn | BargeIn | InterruptionConfirmed | FalseInterruption | Acknowledged | SilenceTimeout


class _Candidate:
    """Accumulates speech that may become a turn or a barge-in; short gaps (VAD flicker) are tolerated."""

    __slots__ = ("acknowledged", "gap_ms", "onset_ms", "speech_ms", "words")

    def __init__(self) -> None:
        self.onset_ms: int | None = None
        self.speech_ms = 0
        self.gap_ms = 0
        self.words = 0
        self.acknowledged = False  # STT heard only backchannels in it ("uh-huh", "yeah")

    def reset(self) -> None:
        self.onset_ms, self.speech_ms, self.gap_ms, self.words, self.acknowledged = None, 0, 0, 0, False

    def speech(self, now_ms: int) -> None:
        if self.onset_ms is None:
            self.onset_ms = now_ms
        self.speech_ms += FRAME_MS
        self.gap_ms = 0

    def silence(self, max_gap_ms: int) -> None:
        if self.onset_ms is not None:
            self.gap_ms += FRAME_MS
            if self.gap_ms > max_gap_ms:
                self.reset()


class TurnDetector:
    def __init__(self, settings: TurnSettings, now_ms: int = 0, *, wait_for_caller: bool = True) -> None:
        """``wait_for_caller`` arms the idle timer at once (callee_first); otherwise the agent speaks first."""
        self.settings = settings
        self.state = TurnState.LISTENING
        self._candidate = _Candidate()
        self._last_speech_end_ms = now_ms
        self._turn_after_barge_in = False
        self._silence_since: int | None = now_ms if wait_for_caller else None
        self._silence_count = 0
        self._fi_deadline: int | None = None  # false-interruption check after a barge-in
        self._deferred_eot: EndOfTurn | None = None
        self._verdict = Verdict.UNKNOWN  # turnDetection "model": is the caller's thought complete so far?
        # Tail trim: a frame VAD keeps saying "speech" for 50-150 ms after the last word; the frame level
        # (RMS) tells where the sound really faded, so the silence that ends the turn can count from there.
        self._trim_ratio = 10 ** (-settings.tail_trim_db / 20) if settings.tail_trim_db else 0.0
        self._speech_level = 0.0
        self._floor = NoiseFloor()
        self._level_db = -120.0  # the previous frame's level
        self._rising = False
        self._rise_frames = 0  # frames left in which a sound that rose suddenly still holds the turn open
        self._loud_end_ms = now_ms

    @property
    def awaiting_words(self) -> bool:
        """A barge-in paused the agent and words have not yet told whether it was real."""
        return self._fi_deadline is not None

    @property
    def last_speech_end_ms(self) -> int:
        return self._last_speech_end_ms

    # --- inputs -------------------------------------------------------------------------------------

    def on_frame(self, now_ms: int, is_speech: bool, level: float | None = None) -> list[Event]:
        """One 20 ms frame starting at ``now_ms``; ``is_speech`` is the VAD's decision for it.

        ``level`` (the frame's RMS, any linear unit) enables the tail trim when ``tail_trim_db`` is set.
        """
        events: list[Event] = []
        end_ms = now_ms + FRAME_MS
        if level is not None and self._trim_ratio:
            self._track_level(end_ms, is_speech, level)
        state = self.state
        if state is TurnState.CALLER_SPEAKING:
            if is_speech:
                self._last_speech_end_ms = end_ms
            else:
                self.state = TurnState.CALLER_PAUSED
                self._candidate.reset()
                if self._trim_ratio:
                    cap = QUIET_LINE_TAIL_TRIM_MS if self._quiet_line() else MAX_TAIL_TRIM_MS
                    self._last_speech_end_ms = max(self._loud_end_ms, self._last_speech_end_ms - cap)
        elif state is TurnState.CALLER_PAUSED:
            self._paused_frame(now_ms, end_ms, is_speech, events)
        elif state is TurnState.AGENT_SPEAKING:
            self._agent_speaking_frame(now_ms, end_ms, is_speech, events)
        else:
            self._listening_frame(now_ms, end_ms, is_speech, events)
        self._timers(end_ms, events)
        return events

    def on_transcript(self, text: str, is_final: bool, now_ms: int) -> list[Event]:
        """STT output: words decide ``low`` barge-ins and tell real interruptions from noise."""
        words = meaningful_words(text, self.settings.backchannels)
        events: list[Event] = []
        candidate = self._candidate
        if candidate.onset_ms is not None:
            candidate.words = max(candidate.words, words)
            if not words and text.strip() and not candidate.acknowledged:
                candidate.acknowledged = True
                if self.state is TurnState.AGENT_SPEAKING:
                    events.append(Acknowledged(at_ms=now_ms))
        if self.settings.turn_detection == "model" and self.state is not TurnState.AGENT_SPEAKING:
            self._verdict = judge(text)
        if self._fi_deadline is not None and words:  # backchannels alone do not confirm a barge-in
            self._fi_deadline = None
            events.append(InterruptionConfirmed(at_ms=now_ms))
            if self._deferred_eot is not None:
                events.append(self._deferred_eot)
                self._deferred_eot = None
        elif (
            self._fi_deadline is not None
            and is_final
            and self.state is TurnState.CALLER_PAUSED
            and self._candidate.onset_ms is None
        ):  # the caller stopped and STT's final has no real words: resume now rather than at the deadline
            self._false_interruption(now_ms, events)
        if self.state is TurnState.AGENT_SPEAKING:
            self._maybe_barge_in(now_ms, events)
        return events

    def tick(self, now_ms: int) -> list[Event]:
        """Run the timers without a frame (the transport may go quiet)."""
        events: list[Event] = []
        self._timers(now_ms, events)
        return events

    def agent_started(self, now_ms: int) -> None:
        """The agent's audio started playing (or resumed)."""
        self.state = TurnState.AGENT_SPEAKING
        self._candidate.reset()
        self._silence_since = None
        self._deferred_eot = None
        self._fi_deadline = None
        self._verdict = Verdict.UNKNOWN

    def agent_finished(self, now_ms: int) -> None:
        """The agent's audio finished playing: the caller's silence now counts toward the idle timeout."""
        if self.state is TurnState.AGENT_SPEAKING:
            self.state = TurnState.LISTENING
        self._silence_since = now_ms

    def rearm_silence_timer(self, now_ms: int) -> None:
        """A caller turn produced no reply (e.g. nothing was transcribed): wait for the caller again."""
        if self.state is TurnState.LISTENING:
            self._silence_since = now_ms

    def _track_level(self, end_ms: int, is_speech: bool, level: float) -> None:
        level_db = frame_dbfs(level)
        # A sudden rise may be the caller resuming before the VAD has said so (its onset lags a frame or two,
        # while the trimmed end does not): the turn does not end on such a frame.
        loud = level >= self._speech_level * self._trim_ratio
        if level_db - self._level_db >= _ONSET_JUMP_DB and loud:
            self._rise_frames = _ONSET_HOLD_FRAMES
        elif self._rise_frames:
            self._rise_frames = self._rise_frames - 1 if loud else 0
        self._rising = self._rise_frames > 0
        self._level_db = level_db
        self._floor.update(level_db)  # minimum statistics: a talker's frames do not lift it
        if not is_speech:
            return
        self._speech_level = max(level, self._speech_level * _LEVEL_DECAY)
        floor = self._floor.floor_dbfs
        if level >= self._speech_level * self._trim_ratio and (floor is None or level_db >= floor + _FLOOR_MARGIN_DB):
            self._loud_end_ms = end_ms

    def _quiet_line(self) -> bool:
        """The floor is far under the caller, or there is none yet (digital silence between words, a call's start)."""
        floor = self._floor.floor_dbfs
        return floor is None or frame_dbfs(self._speech_level) - floor >= _QUIET_LINE_SNR_DB

    # --- per-state frame handling --------------------------------------------------------------------

    def _listening_frame(self, now_ms: int, end_ms: int, is_speech: bool, events: list[Event]) -> None:
        candidate = self._candidate
        if not is_speech:
            candidate.silence(self.settings.speech_gap_ms)
            return
        candidate.speech(now_ms)
        if candidate.speech_ms >= self.settings.speech_start_ms:
            onset = candidate.onset_ms if candidate.onset_ms is not None else now_ms
            # The caller goes on while a barge-in's turn waits for words: still that turn, still waiting.
            after_barge_in, self._deferred_eot = self._deferred_eot is not None, None
            self._start_caller_turn(end_ms, after_barge_in=after_barge_in)
            events.append(SpeechStarted(at_ms=end_ms, onset_ms=onset))

    def _paused_frame(self, now_ms: int, end_ms: int, is_speech: bool, events: list[Event]) -> None:
        candidate = self._candidate
        if is_speech:
            candidate.speech(now_ms)
            if candidate.speech_ms >= self.settings.speech_start_ms:  # the caller resumed after a hesitation
                self.state = TurnState.CALLER_SPEAKING
                self._last_speech_end_ms = end_ms
                candidate.reset()
                return
        else:
            candidate.silence(self.settings.speech_gap_ms)
        # Speech that may be the caller resuming holds the turn open until it is confirmed or dismissed;
        # a dismissed blip does not restart the count, which still runs from the last confirmed speech.
        if (
            candidate.onset_ms is None
            and not self._rising
            and end_ms - self._last_speech_end_ms >= self._turn_silence_ms()
        ):
            self._end_turn(end_ms, events)

    def _turn_silence_ms(self) -> int:
        """The silence that ends this turn: ``silenceTimeoutMs``, or under ``turnDetection: model`` shorter after a
        complete thought and longer after an unfinished one (:mod:`pipelines.end_of_turn`)."""
        settings = self.settings
        if self._verdict is Verdict.COMPLETE:
            return min(settings.complete_silence_ms, settings.silence_timeout_ms)
        if self._verdict is Verdict.INCOMPLETE:
            return max(settings.incomplete_silence_ms, settings.silence_timeout_ms)
        return settings.silence_timeout_ms

    def _agent_speaking_frame(self, now_ms: int, end_ms: int, is_speech: bool, events: list[Event]) -> None:
        if is_speech:
            self._candidate.speech(now_ms)
            self._maybe_barge_in(end_ms, events)
        else:
            self._candidate.silence(self.settings.speech_gap_ms)

    # --- transitions ---------------------------------------------------------------------------------

    def _maybe_barge_in(self, now_ms: int, events: list[Event]) -> None:
        candidate, rule = self._candidate, self.settings.barge_in
        if candidate.onset_ms is None or candidate.speech_ms < rule.min_speech_ms:
            return
        if candidate.words < rule.min_words:
            return
        if not candidate.words:
            if candidate.acknowledged:  # "uh-huh", "yeah": the caller is listening, the agent talks on
                return
            if candidate.speech_ms < rule.min_speech_ms + rule.word_wait_ms:  # words may still tell, soon
                return
        onset = candidate.onset_ms
        words = candidate.words
        self._start_caller_turn(now_ms, after_barge_in=True)
        events.append(BargeIn(at_ms=now_ms, onset_ms=onset))
        if words:
            events.append(InterruptionConfirmed(at_ms=now_ms))
        else:  # words will tell whether this was a real interruption
            self._fi_deadline = now_ms + self.settings.false_interruption_timeout_ms

    def _start_caller_turn(self, end_ms: int, *, after_barge_in: bool) -> None:
        self.state = TurnState.CALLER_SPEAKING
        self._last_speech_end_ms = end_ms
        self._turn_after_barge_in = after_barge_in
        self._candidate.reset()
        self._silence_since = None
        self._silence_count = 0

    def _end_turn(self, now_ms: int, events: list[Event]) -> None:
        self.state = TurnState.LISTENING
        self._candidate.reset()
        self._verdict = Verdict.UNKNOWN
        event = EndOfTurn(
            at_ms=now_ms, speech_end_ms=self._last_speech_end_ms, after_barge_in=self._turn_after_barge_in
        )
        if self._fi_deadline is not None:  # no words yet after a barge-in: wait for them or the deadline
            self._deferred_eot = event
        else:
            events.append(event)

    def _false_interruption(self, now_ms: int, events: list[Event]) -> None:
        self._fi_deadline = None
        self._deferred_eot = None
        if self.state in (TurnState.CALLER_SPEAKING, TurnState.CALLER_PAUSED):
            self.state = TurnState.LISTENING
        self._candidate.reset()
        events.append(FalseInterruption(at_ms=now_ms))

    def _timers(self, now_ms: int, events: list[Event]) -> None:
        if self._fi_deadline is not None and now_ms >= self._fi_deadline:
            self._false_interruption(now_ms, events)
        if (
            self._silence_since is not None
            and self.state is TurnState.LISTENING
            and self._candidate.onset_ms is None
            and now_ms - self._silence_since >= self.settings.idle_timeout_ms
        ):
            self._silence_count += 1
            self._silence_since = now_ms
            events.append(SilenceTimeout(at_ms=now_ms, count=self._silence_count))
