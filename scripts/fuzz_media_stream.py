"""Fuzz Twilio Media Streams against a real Voicex server and print the counts.

Starts the server in this process (embedded database, scripted providers, loopback only), admits every
fuzzed stream with a signed webhook on an enterprise-plan tenant, and places normal calls on another tenant
while the fuzzing runs. Exits 1 unless: 0 server crashes, 0 errors logged, every call finalized, every normal
call answered with 0 protocol violations.

    .venv/bin/python -m scripts.fuzz_media_stream --messages 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from scripts.media_fuzz import ErrorLog, Target, generate_plans, run_campaign
from scripts.media_fuzz.bystander import keep_calling
from scripts.twilio_sim import CallConfig
from tests.telephony import AUTH_TOKEN, make_line, start_server
from voicex.platform.settings import load_settings
from voicex.server.runtime import Runtime

MAX_ROUNDS = 20


async def campaign(messages: int, concurrency: int, seed: int | None, data_dir: Path) -> int:
    settings = load_settings(data_dir=data_dir, db_name=f"fuzz_{uuid.uuid4().hex[:8]}", enable_scripted_providers=True)
    runtime = await Runtime.start(settings)
    server = await start_server(runtime.services)
    svc = runtime.services
    try:
        base = f"http://127.0.0.1:{server.server.port}"
        fuzz_line = await make_line(server, svc, plan="enterprise")
        normal_line = await make_line(server, svc)
        target = Target(base, fuzz_line.tenant.api_key, AUTH_TOKEN, fuzz_line.number, svc.db)
        normal = CallConfig(base, normal_line.tenant.api_key, AUTH_TOKEN, to_number=normal_line.number)
        plans, rounds, started = [], 0, time.monotonic()
        while sum(plan.size for plan in plans) < messages and rounds < MAX_ROUNDS:
            plans += generate_plans(100, seed=None if seed is None else seed + rounds)
            rounds += 1
        print(f"generated {len(plans)} stream plans in {time.monotonic() - started:.1f} s", flush=True)
        done = asyncio.Event()
        with ErrorLog() as errors:
            bystander = asyncio.create_task(keep_calling(normal, svc.db, done, max_calls=100))
            report = await run_campaign(target, plans, concurrency)
            done.set()
            normal_report = await bystander
        health = await server.get("/api/health")
        crashed = health.status != 200
        with_traceback = sum(1 for record in errors.records if record.exc_info)
        print("\n".join(report.lines()))
        print(normal_report.line())
        print(f"errors logged       {len(errors.records)} ({with_traceback} with a traceback)")
        print(f"server crashes      {int(crashed)} (health after the run: {health.status})")
        for line in [*errors.summary()[:10], *report.failures[:10], *normal_report.problems[:10]]:
            print("  !", line)
        ok = (
            not crashed
            and not errors.records
            and not report.not_finalized
            and not report.failures
            and report.messages >= messages
            and normal_report.calls == normal_report.answered == normal_report.completed
            and normal_report.violations == 0
            and not normal_report.problems
        )
        return 0 if ok else 1
    finally:
        await server.close()
        await svc.db.client.drop_database(settings.db_name)
        await runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="at least this many fuzzed messages")
    parser.add_argument("--concurrency", type=int, default=8, help="fuzzed streams open at once")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voicex-fuzz-") as tmp:
        return asyncio.run(campaign(args.messages, args.concurrency, args.seed, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
