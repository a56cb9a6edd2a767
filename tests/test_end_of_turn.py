"""The words-only completeness judgement behind ``turnDetection: model`` (pipelines/end_of_turn.py)."""

from __future__ import annotations

import pytest

from pipelines.end_of_turn import Verdict, judge


@pytest.mark.parametrize(
    "text",
    ["What time do you open tomorrow?", "I'd like to book a cleaning.", "Thanks, bye!", "my zip is 9 4 1 0 7."],
)
def test_finished_sentences_are_complete(text: str) -> None:
    assert judge(text) is Verdict.COMPLETE


@pytest.mark.parametrize(
    "text",
    [
        "and then I",
        "I was wondering if",
        "so the thing is um",
        "I'd like to book a",
        "My number is 4 1 5.",  # a punctuated pause in a phone number is still a phone number in progress
        "my number is four one five, five five five",
        "it's spelled J O H",
        "can you,",
    ],
)
def test_unfinished_thoughts_are_incomplete(text: str) -> None:
    assert judge(text) is Verdict.INCOMPLETE


@pytest.mark.parametrize("text", ["", "  ", "yes", "sure thing", "the address is twenty two", "42"])
def test_anything_else_is_left_to_the_silence(text: str) -> None:
    assert judge(text) is Verdict.UNKNOWN


def test_a_whole_phone_number_completes_the_thought() -> None:
    assert judge("my number is four one five five five five one two one two.") is Verdict.COMPLETE
