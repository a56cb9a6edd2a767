"""Dependency audit for scripts/test.sh: pip-audit over the installed packages, summarized.

Fails (exit 1) only on known vulnerabilities. A package pip-audit could not look up (PyPI's per-version JSON
API or the network unavailable, as on machines that reach only the package index) is not a finding; it is
reported loudly as NOT AUDITED with a count, so "no vulnerabilities" is never claimed for what was not checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [
            sys.executable, "-m", "pip_audit", "--local", "--skip-editable", "--vulnerability-service", "pypi",
            "--progress-spinner", "off", "--timeout", "30", "--format", "json", "--output", str(report),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if not report.exists():
            print(f"voicex: pip-audit did not run (exit {done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        dependencies = json.loads(report.read_text())["dependencies"]
    verdict, code = summarize(dependencies)
    print(verdict, file=sys.stderr if code else sys.stdout)
    return code


def summarize(dependencies: list[dict[str, Any]]) -> tuple[str, int]:
    """pip-audit's JSON ``dependencies`` → (the report's lines, exit code: 1 only for known vulnerabilities)."""
    skipped = [d["name"] for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    lines = []
    for dep in vulnerable:
        ids = ", ".join(f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['?'])})" for v in dep["vulns"])
        lines.append(f"voicex: VULNERABLE {dep['name']} {dep.get('version', '')}: {ids}")
    audited = len(dependencies) - len(skipped)
    lines.append(f"voicex: pip-audit: {audited} of {len(dependencies)} packages audited, {len(vulnerable)} vulnerable")
    if skipped:
        lines.append(
            f"voicex: WARNING: {len(skipped)} packages NOT AUDITED: PyPI's vulnerability data was unreachable "
            f"for them (e.g. {', '.join(skipped[:3])}). This run proves nothing about their known vulnerabilities."
        )
    return "\n".join(lines), 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
