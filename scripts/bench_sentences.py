"""Sentence splitter throughput: token-by-token pushes, and a flood of whitespace (must stay linear)."""

from __future__ import annotations

import time

from pipelines.sentences import SentenceSplitter


def main() -> None:
    text = "Your appointment with Dr. Patel is on Monday at 3:30 p.m., e.g. after lunch. Does that work for you? " * 500
    splitter = SentenceSplitter()
    started = time.perf_counter()
    pushes = 0
    for index in range(0, len(text), 3):
        splitter.push(text[index : index + 3])
        pushes += 1
    tokens_sec = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(50_000):
        splitter.push(" ")
    flood_sec = time.perf_counter() - started
    print(f"token pushes: {pushes} in {tokens_sec * 1000:.1f} ms ({tokens_sec / pushes * 1e6:.2f} µs each)")
    print(f"whitespace flood: 50000 pushes in {flood_sec * 1000:.1f} ms ({flood_sec / 50_000 * 1e6:.2f} µs each)")


if __name__ == "__main__":
    main()
