"""The ``voicex`` command run as a user runs it, for process-level tests: a clean environment, a started server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicex.platform.embedded_db import free_port

VOICEX = [sys.executable, "-m", "voicex"]


def clean_env(**extra: str) -> dict[str, str]:
    """The machine's environment without any VOICEX_* variable, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOICEX_")}
    env.update(extra)
    return env


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``voicex ARGS``, to completion, with its output captured."""
    return subprocess.run([*VOICEX, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def http(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, JSON body) of one request; HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@dataclass
class Server:
    """A started ``voicex serve``; its stderr (the logs) goes to a file so a chatty server never blocks on a pipe."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, fragment: str, limit_s: float = 120) -> str:
        """The first log line containing ``fragment``; AssertionError if none comes in time."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and self.process.poll() is None:
            for line in self.log().splitlines():
                if fragment in line:
                    return line
            time.sleep(0.2)
        raise AssertionError(f"no log line with {fragment!r}; log: {self.log()[-2000:]}")

    def stop(self) -> int:
        """Ctrl+C, as a user stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_serve(env: dict[str, str], cwd: Path, limit_s: float = 60, extra: tuple[str, ...] = ()) -> Server:
    """``voicex serve`` on a free loopback port, once /api/health answers; AssertionError with its log otherwise."""
    port = free_port()
    log_path = cwd / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*VOICEX, "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if http("GET", f"{server.url}/api/health")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(f"voicex serve did not start (exit {process.returncode}): {server.log()[-2000:]}")
