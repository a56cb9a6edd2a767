"""SentenceSplitter: the exact clauses TTS gets, the same however the LLM chunked its tokens."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from pipelines.sentences import SentenceSplitter


def split(chunks: list[str], min_chars: int = 20, max_chars: int = 250) -> list[str]:
    splitter = SentenceSplitter(min_chars=min_chars, max_chars=max_chars)
    out: list[str] = []
    for chunk in chunks:
        out += splitter.push(chunk)
    return out + splitter.flush()


def chunkings(text: str) -> Iterator[list[str]]:
    """Whole, per character, fixed and random sizes, and every cut in two ("Dr" | ". Smith", "3." | "5")."""
    yield [text]
    yield list(text)
    for size in (2, 3, 5):
        yield [text[i : i + size] for i in range(0, len(text), size)]
    for seed in range(4):
        rng = random.Random(seed)
        pieces: list[str] = []
        i = 0
        while i < len(text):
            step = rng.randint(1, 7)
            pieces.append(text[i : i + step])
            i += step
        yield pieces
    for cut in range(1, len(text)):
        yield [text[:cut], text[cut:]]


def assert_splits(text: str, expected: list[str], **limits: int) -> None:
    for chunks in chunkings(text):
        assert "".join(chunks) == text
        assert split(chunks, **limits) == expected, chunks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hello there, how are you doing today? I am fine, thanks for asking. See you.",
            ["Hello there, how are you doing today?", "I am fine, thanks for asking.", "See you."],
        ),
        (
            'She said "I will come tomorrow." Then she left the room.',
            ['She said "I will come tomorrow."', "Then she left the room."],
        ),
        ("(This one is in brackets.) The next one is not.", ["(This one is in brackets.)", "The next one is not."]),
        (
            "Really?! That is amazing news for all of us. Yes!",
            ["Really?!", "That is amazing news for all of us.", "Yes!"],
        ),
        ("Open the file config.yaml.Then restart the server.", ["Open the file config.yaml.Then restart the server."]),
        ('"Are you sure?" she asked. "Yes," he said.', ['"Are you sure?" she asked.', '"Yes," he said.']),
        ("This is odd. but the model wrote it. Fine.", ["This is odd. but the model wrote it.", "Fine."]),
    ],
)
def test_sentence_ends(text: str, expected: list[str]) -> None:
    assert_splits(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith and Mr. Jones met Mrs. Brown and Ms. Lee at St. Mary's church. They talked for an hour.",
            ["Dr. Smith and Mr. Jones met Mrs. Brown and Ms. Lee at St. Mary's church.", "They talked for an hour."],
        ),
        (
            "The game was Jets vs. Giants on Sunday night. Prof. Adams Sr. and Tom Adams Jr. Went home.",
            ["The game was Jets vs. Giants on Sunday night.", "Prof. Adams Sr. and Tom Adams Jr. Went home."],
        ),
        (
            "The price rose 3.5 percent to 1,000.25 dollars in v2.0 today. Next year it may fall.",
            ["The price rose 3.5 percent to 1,000.25 dollars in v2.0 today.", "Next year it may fall."],
        ),
        (
            "Bring something sweet e.g. apples or pears. Or bring something savory i.e. cheese. That is all.",
            ["Bring something sweet e.g. apples or pears.", "Or bring something savory i.e. cheese.", "That is all."],
        ),
        ("Bring some fruit e.g. Fuji apples today.", ["Bring some fruit e.g. Fuji apples today."]),
        (
            "Here is the first sentence. We sell apples, pears, etc. and more fruit. The shop opens at 9 a.m. on"
            " weekdays. The shop closes at 5 p.m. Come by soon! We also stock nuts, seeds, etc. Ask us.",
            [
                "Here is the first sentence.",
                "We sell apples, pears, etc. and more fruit.",
                "The shop opens at 9 a.m. on weekdays.",
                "The shop closes at 5 p.m.",
                "Come by soon! We also stock nuts, seeds, etc.",
                "Ask us.",
            ],
        ),
        ("The store closes at 5 P.M. Come by soon!", ["The store closes at 5 P.M.", "Come by soon!"]),
        (
            "I live in the U.S. It is big. We moved here in May.",
            ["I live in the U.S. It is big.", "We moved here in May."],
        ),
        (
            "I love the books by J. R. R. Tolkien very much. He wrote many.",
            ["I love the books by J. R. R. Tolkien very much.", "He wrote many."],
        ),
        ("So do I. What about you?", ["So do I.", "What about you?"]),
        ("Take the bus No. 5 to get there. It runs often.", ["Take the bus No. 5 to get there.", "It runs often."]),
        ("The answer is No. We cannot do that today.", ["The answer is No.", "We cannot do that today."]),
        (
            "Well... maybe we could try that again later. Or not... Who knows?",
            ["Well... maybe we could try that again later.", "Or not... Who knows?"],
        ),
        (
            "Hmm… let me think about it for a second. Okay… Done!",
            ["Hmm… let me think about it for a second.", "Okay… Done!"],
        ),
        (
            "Visit www.example.com or email help@voicex.io for details. We reply within a day.",
            ["Visit www.example.com or email help@voicex.io for details.", "We reply within a day."],
        ),
        ("Go to example.com. Then click the login button.", ["Go to example.com.", "Then click the login button."]),
    ],
)
def test_abbreviations_numbers_initials_urls_do_not_split(text: str, expected: list[str]) -> None:
    assert_splits(text, expected)


def test_chunks_cutting_abbreviations_and_numbers() -> None:
    chunks = ["We met D", "r", ". Sm", "ith at 3", ".", "5 p", ".m. e", ".g", ". after lunch. ", "Then we left."]
    assert split(chunks) == ["We met Dr. Smith at 3.5 p.m. e.g. after lunch.", "Then we left."]


def test_a_clause_waits_for_the_next_non_space_character() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello there, how are you doing?") == []
    assert splitter.push(" \n ") == []
    assert splitter.push("I") == ["Hello there, how are you doing?"]
    assert splitter.push("t costs 3.") == []
    assert splitter.push("5 dollars") == []
    assert splitter.flush() == ["It costs 3.5 dollars"]


def test_a_short_first_sentence_goes_out_alone() -> None:
    assert_splits("Hi. How are you?", ["Hi.", "How are you?"])
    assert_splits(
        "Sure! I can help you book that. Does that work?", ["Sure!", "I can help you book that.", "Does that work?"]
    )


def test_later_short_sentences_merge_with_the_next() -> None:
    assert_splits("Hi. Ok. Fine. Sure thing, my friend.", ["Hi.", "Ok. Fine. Sure thing, my friend."])


def test_a_first_sentence_needs_two_letters_or_digits() -> None:
    assert_splits("Q? Nobody knows what that stands for.", ["Q? Nobody knows what that stands for."])


def test_only_the_first_clause_ends_at_a_comma() -> None:
    assert_splits(
        "Well, to answer your question properly, we need more data. After that, we can talk about it more.",
        ["Well, to answer your question properly,", "we need more data. After that, we can talk about it more."],
    )


def test_first_clause_ends_at_colon_semicolon_and_dash() -> None:
    assert_splits(
        "Here is the thing you asked about: the store is open; it closes late.",
        ["Here is the thing you asked about:", "the store is open; it closes late."],
    )
    assert_splits(
        "My honest answer to that—and I mean it—is yes.", ["My honest answer to that—", "and I mean it—is yes."]
    )
    assert_splits(
        "My honest answer to that - I mean it - is yes.", ["My honest answer to that -", "I mean it - is yes."]
    )


def test_min_chars_zero_splits_every_sentence() -> None:
    assert_splits("Yes, ok. No. Maybe, later.", ["Yes,", "ok.", "No.", "Maybe, later."], min_chars=0)


def test_flush_starts_a_new_reply() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hi. How are you") == ["Hi."]
    assert splitter.flush() == ["How are you"]
    assert splitter.flush() == []
    assert splitter.push("Hi. How are you?") == ["Hi."]  # a new reply: the first clause may be short again
    assert splitter.push(" Fine") == []
    assert splitter.flush() == ["How are you? Fine"]


def test_chinese_sentence_ends_need_no_space() -> None:
    assert_splits("你好。今天天气很好！我们去公园吧？", ["你好。", "今天天气很好！", "我们去公园吧？"], min_chars=5)
    assert_splits("你好。今天天气很好！我们去公园吧？", ["你好。", "今天天气很好！我们去公园吧？"])


def test_max_chars_cuts_at_the_last_pause_then_whitespace() -> None:
    assert_splits(
        "Okay. One two three four, five six seven eight nine ten eleven twelve thirteen.",
        ["Okay.", "One two three four,", "five six seven eight nine ten eleven", "twelve thirteen."],
        min_chars=10,
        max_chars=40,
    )


def test_max_chars_ignores_a_pause_shorter_than_min_chars() -> None:
    assert_splits(
        "Okay. A, bbbbbbb ccccccc ddddddd eeeeeee fffffff ggggggg.",
        ["Okay.", "A, bbbbbbb ccccccc ddddddd eeeeeee", "fffffff ggggggg."],
        min_chars=10,
        max_chars=40,
    )


def test_max_chars_cuts_a_word_without_whitespace() -> None:
    assert_splits("x" * 100, ["x" * 40, "x" * 40, "x" * 20], min_chars=10, max_chars=40)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Here are your options:\n\n- Apples\n- Pears\n1. Bananas\n\nPick one please.",
            ["Here are your options:", "Apples", "Pears", "1. Bananas", "Pick one please."],
        ),
        ("Steps to follow\n1. Open the app\n2. Sign in", ["Steps to follow", "1. Open the app", "2. Sign in"]),
        ("Options\n- Apples\n* Pears\n2) Plums", ["Options", "Apples", "Pears", "2) Plums"]),
        (
            "Title here\n\nThe body text starts here and goes on.",
            ["Title here", "The body text starts here and goes on."],
        ),
        (
            "This line goes on\nto the next line. It is done now.",
            ["This line goes on to the next line.", "It is done now."],
        ),
        ("## Summary\nThe plan is simple and it works well.", ["Summary", "The plan is simple and it works well."]),
        ("First part of the answer.\n\n---\n\nSecond part.", ["First part of the answer.", "Second part."]),
        ("1.5 liters is enough for today. Thanks.", ["1.5 liters is enough for today.", "Thanks."]),
        ("Brr.\n-5 degrees outside today. Stay warm.", ["Brr.", "-5 degrees outside today.", "Stay warm."]),
    ],
)
def test_newlines_lists_and_headings(text: str, expected: list[str]) -> None:
    assert_splits(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "This is **very** important. Read the `config` file and use __init__ or my_var. I like C# a _lot_.",
            ["This is very important.", "Read the config file and use init or my var.", "I like C# a lot."],
        ),
        ("**Note.** The next sentence follows here.", ["Note.", "The next sentence follows here."]),
        ("### *Step one*\nOpen the app and sign in.", ["Step one", "Open the app and sign in."]),
    ],
)
def test_markdown_is_stripped_but_words_kept(text: str, expected: list[str]) -> None:
    assert_splits(text, expected)


@pytest.mark.parametrize("text", ["", "   \n\n  \t \n ", "** __ ``", "\n\n- \n"])
def test_nothing_to_speak_gives_no_clauses(text: str) -> None:
    assert_splits(text, [])


def test_no_pushes_and_empty_pushes() -> None:
    splitter = SentenceSplitter()
    assert splitter.flush() == []
    assert splitter.push("") == []
    assert splitter.flush() == []


@pytest.mark.parametrize(("min_chars", "max_chars"), [(-1, 250), (20, 20), (30, 10)])
def test_invalid_limits_are_refused(min_chars: int, max_chars: int) -> None:
    with pytest.raises(ValueError, match="min_chars"):
        SentenceSplitter(min_chars=min_chars, max_chars=max_chars)


_FRAGMENTS = [
    "Hello", "there", "Dr.", "Mr.", "3.5", "1,000.25", "e.g.", "i.e.", "etc.", "J.", "U.S.", "No.", "5", "p.m.",
    "word.", "word!", "why?", "wait...", "so…", "end.)", '"quote."', "a,", "b;", "c:", "—", "-", "example.com",
    "**bold**", "_em_", "`code`", "##", "\n", "\n\n", "\n- ", "\n1. ", "\n# ", "I.", "lower", "Upper", "你好。",
    "x" * 30, "sentence", "words", "  ", "C#", "my_var", " " * 40, "\n" + " " * 40,
]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_random_replies_are_chunking_independent_lossless_and_bounded(seed: int) -> None:
    rng = random.Random(seed)
    text = " ".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(5, 80)))
    limits = rng.choice([{}, {"min_chars": 0, "max_chars": 30}, {"min_chars": 10, "max_chars": 60}])
    expected = split([text], **limits)
    for chunks in [list(text), *list(chunkings(text))[2:9]]:
        assert split(chunks, **limits) == expected, chunks
    assert [ch for ch in "".join(expected) if ch.isalnum()] == [ch for ch in text if ch.isalnum()]
    max_chars = limits.get("max_chars", 250)
    assert all(clause and len(clause) <= max_chars + 2 for clause in expected)  # + a quote/bracket after the end


def test_a_long_reply_and_a_flood_of_whitespace_split_correctly() -> None:
    """Correctness only: speed is measured by scripts/bench_sentences.py, never asserted in tests."""
    text = "Your appointment with Dr. Patel is on Monday at 3:30 p.m., e.g. after lunch. Does that work for you? " * 500
    splitter = SentenceSplitter()
    clauses = [clause for i in range(0, len(text), 3) for clause in splitter.push(text[i : i + 3])]
    for _ in range(25_000):  # after "you?": quadratic if every push re-read the pending whitespace
        clauses += splitter.push(" ")
    clauses += splitter.flush()
    clauses += splitter.push("\n")
    for _ in range(25_000):  # the same at the start of a line
        clauses += splitter.push(" ")
    clauses += splitter.flush()
    assert len(clauses) == 1000
    assert clauses[0] == "Your appointment with Dr. Patel is on Monday at 3:30 p.m.,"  # first clause: early
