"""Atomic file replacement, shared by every stage that rewrites a result file while others may read it; and the
one CSV reader that turns a file which is not a table into bad input.

A writer killed at any instant leaves the old file or the new one, never part of one: data goes to a temporary
file beside the target, is flushed to disk (``fsync``), and then renamed over the target, and the rename itself is
flushed by syncing the folder. Temporaries carry their writer's host and process id, so two writers never share
one and the leftovers of a killed writer are recognised and removed by the next writer on that host.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

_OWNER = re.compile(r"\.(\d+)@([^/]+)\.tmp$")


def absolute(path: str | os.PathLike) -> Path:
    """``path`` against the working folder, ``~`` expanded: what every stage and every Ray trial is given."""
    return Path(path).expanduser().resolve()


def read_csv(path: Path, refusal: str, **options) -> "pd.DataFrame":
    """``pandas.read_csv`` that refuses a file that is not a CSV table (garbled, empty, not text) as bad input:
    ``refusal`` (which names the file) followed by pandas' first line, e.g. ``runs/x/trials.csv: not a trials table
    (Error tokenizing data ...)``."""
    import pandas as pd  # pandas only where a table is read

    try:
        return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{refusal} ({str(error).splitlines()[0]})") from None


def require_columns(table: "pd.DataFrame", columns, refusal: str, hint: str = "") -> None:
    """Refuse ``table`` as bad input when it lacks any of ``columns``: ``refusal (missing columns: ...)hint``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InvalidInput(f"{refusal} (missing columns: {', '.join(missing)}){hint}")


def require_numbers(table: "pd.DataFrame", columns, refusal: str) -> None:
    """Refuse ``table`` as bad input when a value of ``columns`` is missing or not a number."""
    import pandas as pd

    if table[list(columns)].apply(pd.to_numeric, errors="coerce").isna().any().any():
        raise InvalidInput(refusal)


def temporary_name(path: Path, kind: str = "") -> Path:
    """A hidden name beside ``path`` owned by this process: ``.<name>.[<kind>.]<pid>@<host>.tmp``."""
    return path.with_name(f".{path.name}.{kind + '.' if kind else ''}{os.getpid()}@{socket.gethostname()}.tmp")


def _writer_died(name: str) -> bool:
    """Whether the temporary ``name`` was left by a process of this host that no longer runs."""
    owner = _OWNER.search(name)
    if owner is None or owner.group(2) != socket.gethostname():
        return False
    try:
        os.kill(int(owner.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def remove_leftovers(path: Path) -> None:
    """Delete the temporaries (files or folders) of ``path`` whose writer died on this host."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if _writer_died(leftover.name):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): a folder can be replaced
    with no instant at which neither is there. False where the system cannot (then nothing happened)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    return renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it once written: readers see the old file or the new one."""
    path = Path(path)
    remove_leftovers(path)
    temporary = temporary_name(path)
    try:
        yield temporary
        fsync_path(temporary)
        os.replace(temporary, path)
        fsync_path(path.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
