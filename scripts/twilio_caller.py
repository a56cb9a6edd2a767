"""Call a Voicex server the way Twilio would, without a phone: speak, listen, measure, print a per-turn table.

    python scripts/twilio_caller.py --base-url http://127.0.0.1:3001 --api-key vx_... --auth-token TOKEN \\
        --say "Hi, what are your opening hours?" --say "Thanks, bye." --wav heard.wav [--calls 5]

``--say`` text is spoken with espeak-ng; ``--say-wav`` speaks a WAV file instead (both may repeat, in order).
Before the first utterance the caller waits briefly for a greeting; after each it waits for the agent's reply to
finish. The exit status is 0 only when every call completed with no protocol violations.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repo root importable for ``scripts.twilio_sim``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.twilio_sim import (
    CallConfig,
    CallerAudio,
    CallResult,
    CallScript,
    RunSummary,
    caller_audio,
    format_call,
    format_summary,
    place_call,
    synthesize,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simulated Twilio caller for Voicex.")
    parser.add_argument("--base-url", default="http://127.0.0.1:3001", help="where the server listens")
    parser.add_argument("--public-url", help="VOICEX_PUBLIC_URL of the server, if different (signatures use it)")
    parser.add_argument("--api-key", required=True, help="the vx_... key put in the webhook URL")
    parser.add_argument("--agent-id", help="agentId query parameter (else the server picks by the To number)")
    parser.add_argument("--auth-token", required=True, help="Twilio auth token the server validates against")
    parser.add_argument(
        "--account-sid", help="AccountSid to send (the organization's stored one, which the server checks; else random)"
    )
    parser.add_argument("--from", dest="from_number", default="+14155550123", help="caller number")
    parser.add_argument("--to", dest="to_number", default="+15005550006", help="the agent's number")
    parser.add_argument("--say", action="append", default=[], help="text to speak (espeak-ng); repeatable")
    parser.add_argument("--say-wav", action="append", default=[], help="WAV file to speak; repeatable")
    parser.add_argument("--wav", help="write what the caller heard here (call N>1: file-2.wav, ...)")
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls")
    parser.add_argument("--stagger-ms", type=int, default=0, help="start calls this far apart")
    parser.add_argument(
        "--greeting-timeout",
        type=float,
        default=6.0,
        help="how long to wait for a greeting (a cold server loads models)",
    )
    parser.add_argument("--reply-timeout", type=float, default=20.0, help="how long to wait for each reply")
    parser.add_argument("--quiet-ms", type=int, default=800, help="agent silence that counts as 'reply over'")
    return parser.parse_args(argv)


def utterances(args: argparse.Namespace) -> list[CallerAudio]:
    clips = [caller_audio(synthesize(text)) for text in args.say]
    return clips + [caller_audio(Path(path)) for path in args.say_wav]


def build_script(args: argparse.Namespace, clips: list[CallerAudio]) -> CallScript:
    script = CallScript().wait_for_agent_silence(args.reply_timeout, args.quiet_ms, audio_timeout=args.greeting_timeout)
    for clip in clips:
        script.silence(200).say(clip).wait_for_agent_silence(args.reply_timeout, args.quiet_ms)
    return script.hangup()


def wav_path(base: str | None, index: int, calls: int) -> Path | None:
    if base is None:
        return None
    path = Path(base)
    return path if calls == 1 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


async def run(args: argparse.Namespace) -> RunSummary:
    config = CallConfig(
        base_url=args.base_url,
        api_key=args.api_key,
        auth_token=args.auth_token,
        account_sid=args.account_sid,
        agent_id=args.agent_id,
        public_url=args.public_url,
        from_number=args.from_number,
        to_number=args.to_number,
        timeout_s=max(10.0, args.reply_timeout),
    )
    clips = utterances(args)

    async def one(i: int) -> CallResult:
        await asyncio.sleep(i * args.stagger_ms / 1000)
        return await place_call(config, build_script(args, clips), wav_path=wav_path(args.wav, i, args.calls))

    return RunSummary(list(await asyncio.gather(*(one(i) for i in range(args.calls)))))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.calls < 1:
        print("--calls must be at least 1", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(run(args))
    except (RuntimeError, OSError) as exc:  # espeak-ng missing, unreadable WAV
        print(f"twilio_caller: {exc}", file=sys.stderr)
        return 2
    for i, result in enumerate(summary.results):
        print(format_call(result, label=f"{i + 1} " if args.calls > 1 else ""))
    if args.calls > 1:
        print(format_summary(summary))
    ok = all(r.outcome == "completed" and not r.violations for r in summary.results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
