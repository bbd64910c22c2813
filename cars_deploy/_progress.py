"""Progress bars for long work: tqdm on a terminal, silent when stderr is not a TTY (CI, pipes, logs)."""
from __future__ import annotations

import sys
from typing import Any, Iterable, TypeVar

from tqdm.auto import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> "tqdm[T]":
    """``tqdm(iterable, **kwargs)``, disabled unless stderr is a terminal (``disable`` may override)."""
    kwargs.setdefault("disable", not sys.stderr.isatty())
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
