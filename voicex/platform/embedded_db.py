"""The embedded MongoDB-wire server: SecantusDB (WiredTiger) run as a child process on loopback.

Used when ``VOICEX_MONGODB_URI`` is unset, so ``voicex serve`` needs nothing installed beside Python.
It is a separate process (not a thread) so a slow query or a crash there never stalls the event loop,
and so the server code talks to it exactly as it talks to a real ``mongod``. Its files hold password hashes and
transcripts: it runs with umask 077, and the data dir is narrowed to 0700 dirs and 0600 files before each start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from voicex.platform.data_dir import (
    PRIVATE_FILE,
    PRIVATE_UMASK,
    make_private,
    private_dir,
    unusable_data_dir,
    write_private,
)
from voicex.platform.errors import EmbeddedDatabaseError

log = logging.getLogger(__name__)

_HOW_TO_USE_REAL_MONGO = (
    "Set VOICEX_MONGODB_URI to a MongoDB server instead (for example"
    " `docker run -p 27017:27017 mongo:8` and VOICEX_MONGODB_URI=mongodb://127.0.0.1:27017)."
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """Start, check and stop one SecantusDB process whose data lives in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 30.0,
        cache_size: str = "256M",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.cache_size = cache_size
        self._process: subprocess.Popen[bytes] | None = None
        self.attached = False

    @property
    def state_path(self) -> Path:
        """Where a running server records its pid and port, so other commands can attach to it."""
        return self.data_dir.parent / f"{self.data_dir.name}.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def uri(self) -> str:
        if self.port is None:
            raise EmbeddedDatabaseError("the embedded database has not been started")
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def has_data(self) -> bool:
        """Whether a database was ever created here (a running server's always has files)."""
        try:
            return self.data_dir.is_dir() and any(self.data_dir.iterdir())
        except OSError:
            return True  # there is something; start() reports what is wrong with it

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the server (or attach to the one already serving this data dir); returns its URI.

        Attaching lets ``voicex admin create`` run while ``voicex serve`` holds the data dir.
        """
        if self.running:
            return self.uri
        if self._attach():
            return self.uri
        try:
            private_dir(self.data_dir)
            os.chmod(self.data_dir.parent, 0o700)  # VOICEX_DATA_DIR: the state and log files sit beside db/
            narrowed = make_private(self.data_dir)
            for path in (self.state_path, self.log_path):
                if path.exists() and stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE:
                    os.chmod(path, PRIVATE_FILE)
                    narrowed += 1
        except OSError as exc:
            raise unusable_data_dir(self.data_dir, exc, _HOW_TO_USE_REAL_MONGO, EmbeddedDatabaseError) from exc
        if self.port is None:
            self.port = free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir),
            "--cache-size",
            self.cache_size,
            "--log-level",
            "WARNING",
        ]
        if narrowed:
            log.warning(
                "the data directory was readable by other users: narrowed to its owner",
                extra={"dataDir": str(self.data_dir.parent), "paths": narrowed},
            )
        log_file = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "ab")
        try:
            self._process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        except OSError as exc:
            raise EmbeddedDatabaseError(f"cannot run the embedded database ({exc}). {_HOW_TO_USE_REAL_MONGO}") from exc
        finally:
            log_file.close()
        self._wait_ready()
        write_private(self.state_path, json.dumps({"pid": self._process.pid, "port": self.port}))
        log.info("embedded database listening", extra={"uri": self.uri, "dataDir": str(self.data_dir)})
        return self.uri

    def _attach(self) -> bool:
        try:
            state = json.loads(self.state_path.read_text())
            pid, port = int(state["pid"]), int(state["port"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError, TypeError):
            return False
        previous, self.port = self.port, port
        if self._ping():
            self.attached = True
            log.info("attached to the running embedded database", extra={"uri": self.uri})
            return True
        self.port = previous
        return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedDatabaseError(
                    f"the embedded database exited with code {self._process.returncode} while starting:"
                    f" {self._log_tail()} (data dir {self.data_dir}). {_HOW_TO_USE_REAL_MONGO}"
                )
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedDatabaseError(
            f"the embedded database did not answer within {self.start_timeout:.0f} s: {self._log_tail()}."
            f" {_HOW_TO_USE_REAL_MONGO}"
        )

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port or 0), timeout=0.2):
                pass
        except OSError:
            return False
        client: MongoClient[dict[str, object]] = MongoClient(self.uri, serverSelectionTimeoutMS=1000)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout: float = 4.0) -> None:
        """Stop cleanly (SIGTERM lets WiredTiger checkpoint); kill if it overruns ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self.state_path.unlink()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded database did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
