"""README.md's "Putting an agent on a real phone number", walked verbatim (scripts/readme_walk.py): every bash
block against a fresh `voicex serve`, the simulated Twilio caller in place of a phone, ending in a completed call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.readme_walk import bash_blocks

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_section_is_a_walk_of_copy_paste_steps() -> None:
    blocks = bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    text = "\n".join(blocks)
    for step in ("voicex admin create", "/api/auth/signup", "/api/admin/organizations/", "/api/dashboard/agents",
                 "/api/dashboard/api-keys", "scripts/twilio_caller.py"):  # fmt: skip
        assert step in text, step


def test_the_readme_walk_ends_with_a_completed_call() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.readme_walk", "--timeout", "240"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=330,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "completed" in lines and any(line.startswith("call CA") and line.endswith(": completed") for line in lines)
    assert "violations 0" in result.stdout
