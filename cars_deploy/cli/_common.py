"""What every console script shares: a one-line-error argument parser and the exit-code contract.

Exit 0 on success, 2 on bad input (``UserInputError``, argparse errors) and 1 on failure
(``DeviceError`` or anything unexpected), each with one line on stderr; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Sequence

from ..errors import CarsError

__all__ = ["CliParser", "run_command", "out_folder", "out_prefix", "removed_if_failed"]


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, keeping the line breaks written into a flag's help (one line per choice)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        lines: list[str] = []
        for part in text.splitlines():
            lines += super()._split_lines(part, width)
        return lines


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit code 2, and whose flag help
    may hold line breaks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.add_argument("--debug", action="store_true", help="show full tracebacks on errors")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_command(
    prog: str, main: Callable[[argparse.Namespace], int | None], parser: CliParser, argv: Sequence[str] | None
) -> int:
    """Parses ``argv`` and runs ``main``, turning this package's errors into one line and an exit code."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    if not args.debug:
        # Library deprecation chatter (torch.jit, fvcore) is noise to a user of the command.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    try:
        return int(main(args) or 0)
    except CarsError as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback without --debug
        if args.debug:
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "Original Traceback" in text:
        # Re-raised from a DataLoader worker: the message embeds the worker's traceback; keep its last
        # line, the worker's own error, without the exception's module path.
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        name, _, message = last.partition(": ")
        text = message if message and name.replace(".", "").replace("_", "").isalnum() else last
    return " ".join(text.split())


def out_folder(text: str) -> Path:
    """An argparse type for an output folder: refused at once when empty, when it is an existing file, or
    when it lies under a file (``a.txt/run``), instead of failing after the work is done."""
    path = _out_path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is an existing file, not a folder")
    return path


def out_prefix(text: str) -> Path:
    """An argparse type for an output file prefix (``PATH`` of ``PATH.csv`` + ``PATH.json``): refused at
    once when empty, when it names a folder, or when it lies under a file."""
    path = _out_path(text)
    if path.is_dir() or text.endswith(("/", "\\")):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name such as {str(path / 'NAME')!r}")
    return path


def _out_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not an output path")
    if "\0" in text or len(text) > 4096:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}... is not a usable path")
    path = Path(text).expanduser()
    for parent in path.parents:  # the nearest existing folder above must be a folder, not a file
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text!r} lies under {str(parent)!r}, which is a file, not a folder")
            break
    return path


@contextlib.contextmanager
def removed_if_failed(path: Path) -> Iterator[None]:
    """Removes the folders of ``path`` that this command creates, if it then fails while they are still
    empty: a failed command leaves nothing it created. Folders that held anything are kept (they may
    hold a checkpoint to resume from)."""
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
