"""Fuzz the HTTP API of a running Voicex server with schemathesis and print the counts.

Signs up a fresh organization, has the platform admin activate it, then sends generated valid and invalid
requests to every operation in ``/api/openapi.json`` as the platform admin, the org admin (JWT), an API key
and anonymously. Exits 1 on any 5xx, error body other than ``{"error": ...}``, or response that does not
conform to the schema. The platform admin comes from ``voicex admin create``.

    .venv/bin/python -m scripts.fuzz_http --base-url http://127.0.0.1:3001 \\
        --admin-email admin@example.com --admin-password '...' --examples 25
"""

from __future__ import annotations

import argparse
import sys
import time

from scripts.http_fuzz import credentials, fuzz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:3001")
    parser.add_argument("--admin-email", required=True, help="a platform admin (voicex admin create)")
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--examples", type=int, default=25, help="generated requests per operation, mode and identity")
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/")
    started = time.monotonic()
    report = fuzz(base, credentials(base, args.admin_email, args.admin_password), examples=args.examples)
    print("\n".join(report.lines()))
    print(f"elapsed             {time.monotonic() - started:.1f} s")
    return 0 if report.server_errors == 0 and not report.findings else 1


if __name__ == "__main__":
    sys.exit(main())
