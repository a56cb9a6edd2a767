"""The ``voicex`` command: ``serve``, ``admin create``, ``--version``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from voicex import __version__
from voicex.errors import VoicexError
from voicex.logs import configure_logging
from voicex.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicex",
        description="Voicex: put an AI voice agent on a phone line (Twilio Media Streams).",
        epilog="Settings come from VOICEX_* environment variables; see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"voicex {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (embedded database unless VOICEX_MONGODB_URI is set)")
    serve.add_argument("--host", help="listen address (VOICEX_HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (VOICEX_PORT, default 3001)")

    demo = commands.add_parser(
        "demo", help="run the server offline and place a simulated phone call to a demo agent (prints the transcript)"
    )
    demo.add_argument("--port", type=int, help="port for the demo server (default: a free one)")
    demo.add_argument("--wav", type=Path, help="where to write what the caller heard (default: DATA_DIR/demo-call.wav)")

    admin = commands.add_parser("admin", help="platform administration")
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    create = admin_commands.add_parser("create", help="create the platform admin (activates organizations)")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="at least 8 characters; prompted for when omitted")
    create.add_argument("--name", default="Platform admin")
    return parser


async def _admin_create(args: argparse.Namespace, overrides: dict[str, object]) -> int:
    from voicex.admin import create_platform_admin
    from voicex.runtime import Runtime

    password = args.password if args.password is not None else getpass.getpass("Password: ")
    runtime = await Runtime.start(load_settings(**overrides))
    try:
        user = await create_platform_admin(runtime.services.db, args.email, password, args.name)
    finally:
        await runtime.close()
    print(f"Created platform admin {user['email']} ({user['_id']})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    overrides: dict[str, object] = {}
    if args.command == "serve":
        overrides = {key: value for key in ("host", "port") if (value := getattr(args, key)) is not None}
    try:
        settings = load_settings(**overrides)
        quiet_demo = args.command == "demo" and "VOICEX_LOG_LEVEL" not in os.environ
        configure_logging("WARNING" if quiet_demo else settings.log_level)  # the demo prints its own report
        if args.command == "serve":
            from voicex.serve import run

            run(settings)
            return 0
        if args.command == "demo":
            from voicex.demo import run_demo

            return asyncio.run(run_demo(settings, args.port, args.wav))
        return asyncio.run(_admin_create(args, overrides))
    except VoicexError as exc:
        print(f"voicex: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
