"""The data directory: why it cannot be used, in words, and keeping it private to the user that runs Voicex.

The data dir is written first by the generated secrets and then by the embedded database; whichever meets the
problem first must say the same thing, naming ``VOICEX_DATA_DIR`` and the fix rather than raising an OSError.
It holds password hashes, transcripts and secrets, so it is created 0700 with 0600 files, and whatever an older
version (or a wide umask) left readable is narrowed at every start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from voicex.platform.errors import SetupError


def file_in_the_way(path: Path) -> Path | None:
    """The path itself or the first parent that exists as something other than a directory (a regular file)."""
    return next((part for part in (path, *path.parents) if part.exists() and not part.is_dir()), None)


def unusable_data_dir(path: Path, exc: OSError, hint: str = "", error: type[SetupError] = SetupError) -> SetupError:
    """The error for an OSError met creating or writing ``path`` (the data dir or a directory inside it)."""
    where = path.absolute()
    blocker = file_in_the_way(where)
    reason = f"{blocker} is a file, not a directory" if blocker is not None else exc.strerror or str(exc)
    message = (
        f"cannot use the data directory {where} ({reason}). Set VOICEX_DATA_DIR to a directory this user can write"
        " (it is created if missing; the default is ./data in the folder voicex runs from)."
    )
    return error(f"{message} {hint}".strip())


PRIVATE_DIR = 0o700  # the data dir holds password hashes, transcripts and secrets: its owner only
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077  # for the embedded database's process: what it creates is born private


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents as 0700 directories, and make ``path`` itself 0700 if it exists.

    ``Path.mkdir(parents=True)`` would create the parents with the process's umask (usually 0755).
    """
    missing = [part for part in path.parents if not part.exists()]
    for part in reversed(missing):
        part.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    path.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # FileExistsError if a file is in the way
    os.chmod(path, PRIVATE_DIR)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file (also when the file already existed with wider bits)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE)
        handle.write(text)


def make_private(root: Path) -> int:
    """Take group and other bits off ``root`` and everything under it (dirs 0700, files 0600); returns how many
    changed. Symbolic links are not followed: what they point to is not the data dir's."""
    changed = 0
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name, mode in [(directory, PRIVATE_DIR)] + [(os.path.join(directory, f), PRIVATE_FILE) for f in files]:
            status = os.lstat(name)
            if stat.S_ISLNK(status.st_mode) or stat.S_IMODE(status.st_mode) == mode:
                continue
            os.chmod(name, mode)
            changed += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
    return changed
