"""One process per run folder and per latency table: an OS file lock (``filelock``) held for the whole job.

Two ``cars-profile`` runs on one table, or two ``cars-search --resume`` of one run, would share their
partial files and overwrite each other's results. Every command that writes a run folder, a training
folder or a latency table first takes that target's lock; a second process is refused at once with a
one-line ``UserInputError`` (exit 2) naming the holder: its pid, host, command and start time, which the
holder writes into a small ``LOCK.info`` file beside the lock (removed when it releases the lock).

The lock is ``flock``/``LockFileEx`` through ``filelock``: the operating system releases it when the
holding process dies, however it dies, so a stale lock never blocks a rerun. Lock files live in the
user's cache folder (``<user cache>/cars-deploy/locks/NAME-HASH.lock``, keyed by the target's absolute
path), not beside the target: a lock file must outlive its holder (deleting it on release would let a
waiting process lock a file no longer in place), and the user's folders then keep only what a command
writes on purpose; a refused or failed command leaves nothing there. The cost: processes of two users,
or of two hosts sharing a network folder, do not see each other's locks. Locks are re-entrant inside
one process (``filelock``'s singleton locks): a command that holds a table's lock for its whole job
can call ``build_table``, which takes the same lock again.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from .errors import UserInputError

__all__ = ["HeldLock", "hold_lock", "lock_path"]

_guard = threading.Lock()  # serialises the held-count bookkeeping of the process-wide singleton locks


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target`` (a run folder, a table's CSV, an export's base name), which need not
    exist yet: ``<lock folder>/NAME-HASH.lock``, HASH from its absolute path (symbolic links resolved)."""
    resolved = Path(target).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in resolved.name)[:40] or "root"
    return _lock_dir() / f"{name}-{digest}.lock"


def _lock_dir() -> Path:
    """``<user cache>/cars-deploy/locks`` (private, 0700), or a per-user folder under the temporary
    folder when the cache cannot be written."""
    import platformdirs

    for folder in (Path(platformdirs.user_cache_dir("cars-deploy")) / "locks",
                   Path(tempfile.gettempdir()) / f"cars-deploy-locks-{os.getuid() if hasattr(os, 'getuid') else 0}"):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            return folder
        except OSError:
            continue
    raise UserInputError("cannot create a folder for lock files (the user cache and the temporary folder are not writable)")


class HeldLock:
    """A lock this process holds; ``release()`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, lock: FileLock, info: Path) -> None:
        self._lock = lock
        self._info = info
        self._released = False

    @property
    def path(self) -> Path:
        return Path(self._lock.lock_file)

    def release(self) -> None:
        """Gives the lock back (once; later calls do nothing); the last holder in this process removes
        the info file."""
        with _guard:
            if self._released:
                return
            self._released = True
            self._lock.release()
            if not self._lock.is_locked:
                self._info.unlink(missing_ok=True)

    def __enter__(self) -> "HeldLock":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def hold_lock(target: str | os.PathLike[str], *, what: str) -> HeldLock:
    """Takes the lock of ``target`` (``lock_path``) without waiting; ``what`` names the locked thing in
    the refusal (``"search run RUN"``, ``"latency table T.csv"``). Creates nothing beside ``target``.

    Raises ``UserInputError`` (exit 2) naming the process that holds it."""
    path = lock_path(target)
    info = path.with_name(path.name + ".info")
    lock = FileLock(str(path), timeout=0, is_singleton=True, thread_local=False)
    with _guard:
        first = not lock.is_locked
        try:
            lock.acquire()
        except Timeout:
            raise UserInputError(f"{what} is in use by {_holder(info)}; wait for it to finish or stop it") from None
        except OSError as exc:
            raise UserInputError(f"cannot lock {what} ({path}: {exc.strerror or exc})") from None
        if first:
            try:
                info.write_text(json.dumps(_me()) + "\n")
            except OSError:  # the lock holds without its description; a refusal then says less
                pass
    return HeldLock(lock, info)


def _me() -> dict[str, object]:
    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    return {
        "pid": os.getpid(),
        "host": platform.node(),
        "command": command[:300],
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _holder(info: Path) -> str:
    """``process 123 on HOST (cars-profile ..., since 2026-...)``, or a plain description when the
    holder has not written (or could not write) its info file yet."""
    try:
        data = json.loads(info.read_text())
        pid, host, command, started = int(data["pid"]), str(data["host"]), str(data["command"]), str(data["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    command = " ".join(command.split())[:120]
    return f"process {pid} on {host} (`{command}`, since {started})"
