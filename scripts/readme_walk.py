"""Walk README.md's "Putting an agent on a real phone number" verbatim against a fresh server.

Every ```bash block of that section runs as written, in order, in one bash shell, the way a newcomer pastes
them; the simulated Twilio caller (scripts/twilio_caller.py, the section's last step) stands in for the phone.
The server is a fresh ``voicex serve`` on loopback with its own data dir; the shell gets the values the README
asks the reader to export (Twilio's Account SID, Auth Token and number; test values here).

    python -m scripts.readme_walk            # exit 0 when the walk ends with a completed call

The shell runs in a temporary folder that links the checkout's ``.venv`` (this interpreter's environment) and
``scripts/``, so the README's relative paths work and the checkout is left untouched.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Putting an agent on a real phone number"
TWILIO = {
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "readme-walk-auth-token-0123456789",
    "TWILIO_NUMBER": "+15005550006",
}


def bash_blocks(readme: str) -> list[str]:
    """The section's ```bash blocks, in order (```sh and other blocks are examples, not steps)."""
    start = readme.index(SECTION)
    following = readme.find("\n## ", start + len(SECTION))
    section = readme[start : following if following != -1 else len(readme)]
    return re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"voicex serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"voicex serve did not answer {url}/api/health within {timeout:g} s")


def walk(timeout: float) -> int:
    blocks = bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    if not blocks:
        print(f"readme_walk: no bash blocks under {SECTION!r}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="voicex-readme-") as tmp:
        folder = Path(tmp)
        (folder / ".venv").symlink_to(Path(sys.prefix))
        (folder / "scripts").symlink_to(ROOT / "scripts")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEX_")}
        env.update(VOICEX_DATA_DIR=str(folder / "data"), VOICEX_PORT=str(port), VOICEX_PUBLIC_URL=url)
        env.update(VOICEX_LOG_FORMAT="text", VOICEX_LOG_LEVEL="WARNING")
        log_path = folder / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "voicex", "serve"], cwd=folder, env=env, stdout=log, stderr=log
            )
        try:
            wait_healthy(url, server, timeout=60)
            shell_env = {**env, **TWILIO, "VOICEX": url, "PATH": f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '')}"}
            script = "set -euo pipefail\n" + "\n".join(blocks)
            started = time.monotonic()
            result = subprocess.run(
                ["bash", "-c", script], cwd=folder, env=shell_env, capture_output=True, text=True, timeout=timeout
            )
            print(result.stdout, end="")
            print(f"readme_walk: {len(blocks)} blocks in {time.monotonic() - started:.1f} s, exit {result.returncode}")
            last = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
            if result.returncode != 0 or last != ["completed"]:
                print(result.stderr[-4000:], file=sys.stderr)
                print(
                    f"--- server log (last lines) ---\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr
                )
                return 1
            return 0
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300, help="longest the walk may take (s)")
    args = parser.parse_args(argv)
    return walk(args.timeout)


if __name__ == "__main__":
    sys.exit(main())
