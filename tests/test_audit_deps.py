"""The dependency audit's verdict: known vulnerabilities fail; unreachable data is reported, never called clean."""

from __future__ import annotations

from scripts.audit_deps import summarize


def test_a_known_vulnerability_fails_and_names_the_fix() -> None:
    report, code = summarize(
        [
            {"name": "aiohttp", "version": "3.9.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.9.2"]}]},
            {"name": "orjson", "version": "3.10.0", "vulns": []},
        ]
    )
    assert code == 1
    assert "VULNERABLE aiohttp 3.9.0: GHSA-xxxx (fixed in 3.9.2)" in report
    assert "2 of 2 packages audited, 1 vulnerable" in report


def test_packages_that_could_not_be_looked_up_are_not_audited_not_clean() -> None:
    report, code = summarize(
        [{"name": "aiohttp", "skip_reason": "Dependency not found on PyPI"}, {"name": "orjson", "vulns": []}]
    )
    assert code == 0
    assert "1 of 2 packages audited, 0 vulnerable" in report
    assert "1 packages NOT AUDITED" in report and "aiohttp" in report
