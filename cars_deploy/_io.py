"""Atomic file writes: results, tables and checkpoints are never left half-written.

Each writer puts the data in a temporary file in the destination's folder, flushes it to disk, then
renames it over the destination (``os.replace`` is atomic on POSIX) and syncs the folder, so a killed
process (or a power cut) leaves either the old file or the new one. A process killed mid-write leaves its
temporary file (``.NAME.XXXXXXXX.tmp``) behind; ``remove_stale_temps`` deletes those when the next job
starts in the folder, under the folder's lock (``cars_deploy._locks``), so no live writer's file is touched.
"""
from __future__ import annotations

import io
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_torch_save",
    "default_file_mode",
    "fsync_dir",
    "json_safe",
    "remove_stale_temps",
    "safe_torch_load",
    "temp_file",
]

#: ``tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")``'s names: 8 characters from its alphabet.
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def json_safe(value: Any) -> Any:
    """``value`` made writable as strict JSON: NaN and infinities become null (JSON has neither), numpy
    scalars Python numbers, tuples lists and mapping keys strings; anything else is returned as is."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):  # numpy scalars: int, float, bool
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def default_file_mode() -> int:
    """The permissions a plain ``open`` gives a new file: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Writes ``data`` to ``path`` atomically, creating the parent folder if needed.

    The file gets ``mode`` if given, else the permissions a plain ``open`` would give (0666 less the
    umask) rather than the owner-only 0600 of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path)
    try:
        os.chmod(tmp, mode if mode is not None else default_file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def temp_file(path: Path) -> tuple[int, str]:
    """``mkstemp`` beside ``path``, named ``.NAME.XXXXXXXX.tmp``: the one pattern ``remove_stale_temps`` removes."""
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flushes ``folder``'s entries (a rename is durable only once its folder is synced); a no-op where
    folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike[str], names: Iterable[str] | None = None) -> list[Path]:
    """Deletes the temporary files that killed atomic writers left in ``folder``: only ``.NAME.XXXXXXXX.tmp``
    files (``temp_file``'s pattern), and with ``names`` only those of these destination names. Call it
    while holding the folder's (or the file's) lock, so that no live writer's temporary is removed.
    Returns the files removed."""
    folder = Path(folder)
    wanted = set(names) if names is not None else None
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or (wanted is not None and match["name"] not in wanted):
            continue
        try:
            if entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed.append(entry)
        except OSError:
            pass
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` to ``path`` atomically; keep ``obj`` loadable with ``weights_only=True``."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def safe_torch_load(source: str | os.PathLike[str] | io.BytesIO, *, name: str, map_location: Any = "cpu") -> Any:
    """``torch.load(..., weights_only=True)``; a truncated, corrupt or unsafe file is a one-line
    ``CheckpointError`` naming ``name`` and the first sentence of torch's reason."""
    import pickle
    import zipfile

    import torch

    from .errors import CheckpointError

    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"cannot read {name}: {exc.strerror or exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError) as exc:
        # A cut-off zip archive surfaces as an OSError (EINVAL on seek) or a RuntimeError of the zip
        # reader, whose later sentences are advice for PyTorch developers: keep the first one.
        reason = " ".join(str(exc).split()).split(". ")[0][:160] or type(exc).__name__
        raise CheckpointError(f"{name} is truncated or corrupt and cannot be read ({reason})") from None
