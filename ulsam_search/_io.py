"""Atomic file replacement, shared by every stage that rewrites a result file while others may read it."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it once written: readers see the old file or the new one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    yield temporary
    os.replace(temporary, path)
