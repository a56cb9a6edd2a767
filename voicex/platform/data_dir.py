"""Why the data directory cannot be used, in words: one message for every place that writes into it.

The data dir is written first by the generated secrets and then by the embedded database; whichever meets the
problem first must say the same thing, naming ``VOICEX_DATA_DIR`` and the fix rather than raising an OSError.
"""

from __future__ import annotations

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
