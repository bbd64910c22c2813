"""Output folders of ``cars-train`` and ``cars-export``: checked for writability before any work starts.

Checking first means a run that cannot save its results fails in a second with one line, instead of
after hours of training, and leaves nothing behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import UserInputError

__all__ = ["prepare_output_dir"]


def prepare_output_dir(path: str | os.PathLike[str]) -> Path:
    """Creates ``path`` (and its parents) if needed and proves a file can be written in it.

    Raises ``UserInputError`` when the path is a file, lies under a file, or cannot be written; the
    probe file is removed again, and folders this call created are removed when the probe fails.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"output directory {path} is an existing file")
    created: list[Path] = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        for folder in created:  # deepest first; only folders this call made, and only if empty
            try:
                folder.rmdir()
            except OSError:
                pass
        raise UserInputError(f"cannot write to output directory {path}: {exc.strerror or exc}") from None
    return path
