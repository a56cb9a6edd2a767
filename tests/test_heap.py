"""``voicex serve`` settles the heap once it is up: full collections then skip everything that existed at start-up
and come rarely, while the garbage calls make (reference cycles) is still collected.

Run in a child interpreter: freezing is process-wide and would change every other test's collector.
"""

from __future__ import annotations

import json
import subprocess
import sys

from voicex.platform.gc_tuning import FULL_COLLECTION_AFTER

CHILD = """
import gc, json
import voicex.platform.gc_tuning as gc_tuning

startup = [{"module state": i} for i in range(5000)]
gc_tuning.settle()
tracked_after_settle = len(gc.get_objects())

class Turn:
    pass

def a_call():
    turn = Turn()
    turn.me = turn  # a reference cycle: only the collector frees it
    return id(turn)

ids = {a_call() for _ in range(200)}
collected = gc.collect()
alive = {id(o) for o in gc.get_objects() if isinstance(o, Turn)}
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "tracked_after_settle": tracked_after_settle,
    "threshold": gc.get_threshold(),
    "collected": collected,
    "cycles_left": len(ids & alive),
}))
"""


def test_settle_freezes_start_up_spaces_full_collections_and_still_frees_call_garbage() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60)
    report = json.loads(out.stdout)
    # What existed at start-up is out of the collector's walk (the 5,000 start-up dicts among it) …
    assert report["frozen"] >= 5000
    assert report["tracked_after_settle"] < 1000
    # … full collections wait for 100 middle-generation ones, not 10 …
    assert report["threshold"][2] == FULL_COLLECTION_AFTER == 100
    # … and the cycles a call leaves behind are still freed.
    assert report["collected"] >= 200
    assert report["cycles_left"] == 0
