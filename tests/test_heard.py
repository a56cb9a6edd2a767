"""Heard-text tracking from mark acknowledgements: never over-credit what the caller heard."""

from __future__ import annotations

from pipelines.heard import HeardTracker


def _send(tracker: HeardTracker, text: str, chunks: int, chunk_ms: int = 100) -> list[str]:
    segment = tracker.add_segment(text)
    marks = [tracker.chunk_sent(segment, chunk_ms) for _ in range(chunks)]
    segment.complete = True
    return marks


def test_fully_acknowledged_sentences_are_heard_in_order() -> None:
    tracker = HeardTracker()
    first = _send(tracker, "Hello there.", 3)
    second = _send(tracker, "How can I help you today?", 5)
    for name in first + second:
        assert tracker.acknowledged(name)
    assert tracker.heard_text() == "Hello there. How can I help you today?"
    assert tracker.all_played and tracker.unheard_from() is None


def test_partial_sentence_credits_words_rounded_down_less_one() -> None:
    tracker = HeardTracker()
    first = _send(tracker, "Sure.", 2)
    second = _send(tracker, "one two three four five six seven eight nine ten", 10)
    for name in first + second[:5]:  # half of the second sentence played
        tracker.acknowledged(name)
    assert tracker.heard_text() == "Sure. one two three four"
    assert tracker.unheard_from() == 1


def test_a_later_ack_implies_the_earlier_ones() -> None:
    tracker = HeardTracker()
    marks = _send(tracker, "a b c d", 4)
    assert tracker.acknowledged(marks[3])
    assert tracker.heard_text() == "a b c d"


def test_marks_echoed_after_clear_are_not_heard() -> None:
    tracker = HeardTracker()
    marks = _send(tracker, "one two three four five six seven eight nine ten", 10)
    tracker.acknowledged(marks[1])
    tracker.cleared()
    for name in marks[2:]:
        assert tracker.acknowledged(name) is False  # Twilio echoes them after clear: dropped audio
    assert tracker.heard_text() == "one"  # 2/10 of ten words = 2, less one
    assert tracker.all_played


def test_unknown_or_duplicate_marks_change_nothing() -> None:
    tracker = HeardTracker()
    marks = _send(tracker, "x y", 2)
    assert tracker.acknowledged("nonsense") is False
    tracker.acknowledged(marks[0])
    assert tracker.acknowledged(marks[0]) is False
    assert tracker.pending == 1


def test_a_segment_still_streaming_is_not_taken_for_whole() -> None:
    tracker = HeardTracker()
    segment = tracker.add_segment("This sentence is long enough to take about three seconds to say aloud.")
    name = tracker.chunk_sent(segment, 300)  # only the first 300 ms were sent so far, and heard
    tracker.acknowledged(name)
    heard = tracker.heard_text()
    assert len(heard.split()) <= 1
