"""The ``voicex`` command: ``serve``, ``demo``, ``admin create|reset-password|prune-providers|rotate-key``,
``--version``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from voicex import __version__
from voicex.platform.errors import VoicexError
from voicex.platform.logs import configure_logging
from voicex.platform.settings import Settings, load_settings

if TYPE_CHECKING:  # the command's start stays light: --version imports no aiohttp
    from voicex.platform.services import Services

EPILOG = """\
Settings come from VOICEX_* environment variables; see README.md.

exit status:
  0    success
  1    the action was refused (an email already taken, no such user, a password too short)
  2    a configuration or environment error: a bad setting or argument, a config file, the data
       directory, the database, the port, or secrets that differ from the other processes on the
       database; the message names the setting and the fix
  130  interrupted
"""

ADMIN_HELP = """\
Admin commands work on the running server's database: run them from the folder where you run
`voicex serve` (its ./data), or with the same VOICEX_DATA_DIR, or VOICEX_MONGODB_URI and VOICEX_DB_NAME.
They never create a database and change nothing but what they are asked to.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicex",
        description="Voicex: put an AI voice agent on a phone line (Twilio Media Streams).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicex {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (embedded database unless VOICEX_MONGODB_URI is set)")
    serve.add_argument("--host", help="listen address (VOICEX_HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (VOICEX_PORT, default 3001)")
    serve.add_argument(
        "--workers", type=int, help="server processes sharing the port (VOICEX_WORKERS; default 0: one per core)"
    )

    demo = commands.add_parser(
        "demo", help="run the server offline and place a simulated phone call to a demo agent (prints the transcript)"
    )
    demo.add_argument("--port", type=int, help="port for the demo server (default: a free one)")
    demo.add_argument("--wav", type=Path, help="where to write what the caller heard (default: DATA_DIR/demo-call.wav)")

    admin = commands.add_parser(
        "admin",
        help="platform administration on the running server's database",
        description=ADMIN_HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    create = admin_commands.add_parser("create", help="create the platform admin (activates organizations)")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="at least 8 characters; prompted for when omitted")
    create.add_argument("--name", default="Platform admin")
    reset = admin_commands.add_parser("reset-password", help="set a new password for a user (platform admin or any)")
    reset.add_argument("--email", required=True)
    reset.add_argument("--password", help="at least 8 characters; prompted for when omitted")
    prune = admin_commands.add_parser(
        "prune-providers",
        help="deactivate the global providers this catalog no longer has (a server start only adds and updates)",
    )
    prune.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    admin_commands.add_parser(
        "rotate-key",
        help="re-encrypt every stored secret with the newest VOICEX_ENCRYPTION_KEY key (the first of the list)",
    )
    return parser


async def _password(given: str | None) -> str:
    """``--password``, else asked twice on the terminal (off the event loop: the driver's monitors keep running)."""
    if given is not None:
        return given
    first = await asyncio.to_thread(getpass.getpass, "Password: ")
    if await asyncio.to_thread(getpass.getpass, "Repeat the password: ") != first:
        raise VoicexError("the passwords do not match")
    return first


async def _create(args: argparse.Namespace, services: Services) -> int:
    from voicex.server.admin import create_platform_admin

    user = await create_platform_admin(services.db, args.email, await _password(args.password), args.name)
    print(f"Created platform admin {user['email']} ({user['_id']})")
    return 0


async def _reset_password(args: argparse.Namespace, services: Services) -> int:
    from voicex.server.admin import reset_password

    user = await reset_password(services.db, args.email, await _password(args.password))
    role = "platform admin" if user.get("platformAdmin") else "user"
    print(f"Set a new password for {role} {user['email']} ({user['_id']})")
    return 0


async def _prune_providers(args: argparse.Namespace, services: Services) -> int:
    from voicex.catalog.global_providers import agents_using, prune_global_providers

    settings = services.settings
    basis = (
        f"the catalog in {settings.config_dir.absolute()} with VOICEX_ENABLE_SCRIPTED_PROVIDERS="
        f"{str(settings.enable_scripted_providers).lower()}"
    )
    stale = await prune_global_providers(services.db, services.catalog, dry_run=args.dry_run)
    if not stale:
        print(f"Nothing to deactivate: every active global provider is in {basis}.")
        return 0
    print(f"{'Would deactivate' if args.dry_run else 'Deactivated'} {len(stale)} global providers not in {basis}:")
    for provider in stale:
        print(f"  {provider['name']} ({provider['providerKey']}, {provider['category']}, id {provider['_id']})")
    agents = await agents_using(services.db, stale)
    if agents:
        state = "would pause" if args.dry_run else "are paused"
        print(f"{agents} agents use them and {state} until they are moved to other providers.")
    return 0


async def _rotate_key(args: argparse.Namespace, services: Services) -> int:
    from voicex.server.admin import rotate_key
    from voicex.store.rekey import CURRENT, REKEYED, UNREADABLE

    report = await rotate_key(services.db, services.settings)
    totals = {what: sum(counts[what] for counts in report.values()) for what in (REKEYED, CURRENT, UNREADABLE)}
    for field, counts in sorted(report.items()):
        print(f"  {field}: " + ", ".join(f"{counts[what]} {what}" for what in (REKEYED, CURRENT, UNREADABLE)))
    print(
        f"Re-encrypted {totals[REKEYED]} stored secrets with the newest key; {totals[CURRENT]} already were;"
        f" {totals[UNREADABLE]} could not be decrypted by any key."
    )
    if totals[UNREADABLE]:
        print("Keep the old keys until those are re-entered: the key that encrypted them is not in the list.")
        return 1
    print("Every stored secret now decrypts with the newest key alone: the older keys may be removed.")
    return 0


ADMIN_ACTIONS: dict[str, Callable[[argparse.Namespace, Services], Awaitable[int]]] = {
    "create": _create,
    "reset-password": _reset_password,
    "prune-providers": _prune_providers,
    "rotate-key": _rotate_key,
}


async def _admin(args: argparse.Namespace, settings: Settings) -> int:
    """Attach to the server's database (never creating one), run the action, let go."""
    from voicex.server.runtime import Runtime

    runtime = await Runtime.start(settings, role="admin")
    try:
        return await ADMIN_ACTIONS[args.admin_command](args, runtime.services)
    finally:
        await runtime.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    overrides: dict[str, object] = {}
    if args.command == "serve":
        overrides = {key: value for key in ("host", "port", "workers") if (value := getattr(args, key)) is not None}
    try:
        settings = load_settings(**overrides)
        quiet_demo = args.command == "demo" and "VOICEX_LOG_LEVEL" not in os.environ
        configure_logging(
            "WARNING" if quiet_demo else settings.log_level,  # the demo prints its own report
            fmt=settings.log_format,
            third_party_level=settings.third_party_log_level,
        )
        if args.command == "serve":
            from voicex.server.serve import run
            from voicex.server.workers import supervise, worker_count

            count = worker_count(settings)
            if count > 1 and settings.worker_id is None:
                return asyncio.run(supervise(settings, count))
            run(settings)
            return 0
        if args.command == "demo":
            from voicex.server.demo import run_demo

            return asyncio.run(run_demo(settings, args.port, args.wav))
        return asyncio.run(_admin(args, settings))
    except VoicexError as exc:
        print(f"voicex: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
