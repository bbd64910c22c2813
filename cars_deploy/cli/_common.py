"""What every console script shares: a one-line-error argument parser and the exit-code contract.

Exit 0 on success, 2 on bad input (``UserInputError``, argparse errors) and 1 on failure
(``DeviceError`` or anything unexpected), each with one line on stderr; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Callable, NoReturn, Sequence

from ..errors import CarsError

__all__ = ["CliParser", "run_command"]


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit code 2."""

    def __init__(self, *args: object, **kwargs: object) -> None:
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
    return " ".join(text.split())
