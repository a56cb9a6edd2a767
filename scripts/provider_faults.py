"""Provider faults during whole calls: every (STT, LLM, TTS) × (refused, 5xx, 401, timeout, dropped, garbage)
case, with and without a fallback provider, over the real server and the simulated Twilio caller.

Starts the server in this process (embedded database, scripted providers enabled, loopback vendors only) and
prints one row per case. Exits 1 unless every call completed, the caller heard a reply or an apology, the call
ended as ``caller_hangup`` and the fault is in the call record's errors.

    .venv/bin/python -m scripts.provider_faults [--concurrency 3] [--category stt] [--fault timeout]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

from scripts.fault_matrix import CATEGORIES, FAULTS, FaultLab, all_cases, question_audio, run_matrix, table
from tests.factories import make_tenant
from tests.telephony import start_server
from voicex.platform.settings import load_settings
from voicex.server.runtime import Runtime


async def matrix(categories: list[str], faults: list[str], concurrency: int, data_dir: Path) -> int:
    settings = load_settings(
        data_dir=data_dir,
        db_name=f"faults_{uuid.uuid4().hex[:8]}",
        enable_scripted_providers=True,
        log_level="ERROR",
        egress_allow="127.0.0.1",  # the org's providers point at the loopback vendors
    )
    runtime = await Runtime.start(settings)
    server = await start_server(runtime.services)
    try:
        tenant = await make_tenant(server, runtime.services, plan="enterprise")
        lab = FaultLab(server, tenant.api_key)
        await lab.setup()
        question_audio()
        cases = [case for case in all_cases() if case.category in categories and case.fault in faults]
        started = time.monotonic()
        outcomes = await run_matrix(lab, cases, concurrency)
        print("\n".join(table(outcomes)))
        failed = [o for o in outcomes if not o.ok]
        elapsed = time.monotonic() - started
        print(f"\n{len(outcomes) - len(failed)}/{len(outcomes)} cases as expected in {elapsed:.0f} s")
        for outcome in failed:
            print(f"  ! {outcome.case.label}: {outcome.problem or 'see errors'}; errors: {outcome.errors}")
        return 1 if failed else 0
    finally:
        await server.close()
        await runtime.services.db.client.drop_database(settings.db_name)
        await runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=3, help="calls at once (default 3)")
    parser.add_argument("--category", choices=CATEGORIES, action="append", help="only these categories")
    parser.add_argument("--fault", choices=FAULTS, action="append", help="only these faults")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the faults are expected: their warnings would drown the table
    with tempfile.TemporaryDirectory(prefix="voicex-faults-") as tmp:
        return asyncio.run(
            matrix(args.category or list(CATEGORIES), args.fault or list(FAULTS), args.concurrency, Path(tmp))
        )


if __name__ == "__main__":
    sys.exit(main())
