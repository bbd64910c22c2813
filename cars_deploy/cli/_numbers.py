"""The one validation layer for numeric command-line options: argparse types that refuse, at parse time,
anything out of range or not finite, so that a bad number is one ``error:`` line and exit 2 before any
file or folder is created (argparse turns ``ArgumentTypeError`` into a usage error).

Each type is made by a small factory rather than by argparse's ``type=int`` plus checks later: a check
after parsing runs after some command already did work (``--layers 100000`` used to build for 45 s);
here the value never reaches the command. The network bounds come from ``space.networks`` so the
library's ``NetworkConfig.validate`` and the command line refuse the same sizes.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

from ..space.networks import MAX_C, MAX_CLASSES, MAX_INPUT_SIZE, MAX_LAYERS

__all__ = [
    "int_in",
    "float_in",
    "SEED",
    "CHANNELS",
    "LAYERS",
    "INPUT_SIZE",
    "CLASSES",
    "COUNT",
    "COUNT0",
    "EPOCHS",
    "BATCH",
    "WORKERS",
    "THREADS",
    "RATE",
    "NON_NEGATIVE",
    "PROBABILITY",
    "SECONDS",
    "PERCENTILE",
    "EPOCHS0",
    "POPULATION",
    "RECONNECTS",
    "VERIFY_INPUTS",
    "MAX_SEED",
]

#: Largest seed: numpy and torch seeds are 32-bit unsigned in every place a seed is used.
MAX_SEED = 2**32 - 1
#: Upper bound of plain counts (batches, rounds, runs, images): far above any real run, small enough that
#: nothing overflows or allocates by it.
_MAX_COUNT = 10**9


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a decimal integer in ``low..high``."""

    def parse(text: str) -> int:
        stripped = text.strip()
        # Refuse absurd literals before int() parses them (int() of 10**6 digits is slow and pointless).
        if len(stripped) > 24:
            raise argparse.ArgumentTypeError(f"{text[:30]!r}... is not an integer in {low}..{high}")
        try:
            value = int(stripped)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; expected {low}..{high}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in the interval from ``low`` to ``high`` (open where asked)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range; expected a number in {interval}")
        return value

    parse.__name__ = "number"
    return parse


SEED = int_in(0, MAX_SEED)  # random seeds
CHANNELS = int_in(2, MAX_C)  # --C
LAYERS = int_in(3, MAX_LAYERS)  # --layers
INPUT_SIZE = int_in(1, MAX_INPUT_SIZE)  # --input-size (the network checks the multiple it needs)
CLASSES = int_in(1, MAX_CLASSES)  # --classes / --num-classes
COUNT = int_in(1, _MAX_COUNT)  # positive counts: batches, rounds, runs, images, networks
COUNT0 = int_in(0, _MAX_COUNT)  # counts where 0 means none: warmup calls, Cutout side, reconnections
EPOCHS = int_in(1, 100_000)  # epochs (the paper's longest run is 600)
BATCH = int_in(1, 1_000_000)  # images or models per step or call
WORKERS = int_in(0, 256)  # data-loading processes
THREADS = int_in(1, 1024)  # intra-op / PyTorch threads
RATE = float_in(0.0, 1e3, low_open=True)  # learning rates, tolerances, offspring multiples: > 0
NON_NEGATIVE = float_in(0.0, 1e6)  # weight decay, loss weights, Celsius thresholds: >= 0
PROBABILITY = float_in(0.0, 1.0, high_open=True)  # drop-path and similar probabilities: [0, 1)
SECONDS = float_in(0.0, 7 * 24 * 3600.0, low_open=True)  # timeouts: > 0, at most a week
PERCENTILE = float_in(0.0, 100.0)  # percentiles
EPOCHS0 = int_in(0, 100_000)  # epochs where 0 is allowed (search warmup)
POPULATION = int_in(1, 100_000)  # population size, architectures per step (the config checks P >= 2)
RECONNECTS = int_in(0, 1000)  # reconnections after a dropped connection
VERIFY_INPUTS = int_in(1, 10_000)  # random input batches compared per exported format
