"""The one validation layer for numeric command-line options: argparse types that refuse, at parse time,
anything out of range or not finite, so that a bad number is one ``error:`` line and exit 2 before any
file or folder is created (argparse turns ``ArgumentTypeError`` into a usage error).

Each type is a small callable dataclass (its bounds readable, e.g. by the tests) rather than argparse's
``type=int`` plus checks later: a check
after parsing runs after some command already did work (``--layers 100000`` used to build for 45 s);
here the value never reaches the command. The network bounds come from ``space.networks`` so the
library's ``NetworkConfig.validate`` and the command line refuse the same sizes.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from ..space.networks import MAX_C, MAX_CLASSES, MAX_INPUT_SIZE, MAX_LAYERS

__all__ = [
    "IntRange",
    "FloatRange",
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


@dataclass(frozen=True)
class IntRange:
    """An argparse type: a decimal integer in ``low..high``."""

    low: int  # smallest accepted value
    high: int  # largest accepted value

    def __call__(self, text: str) -> int:
        stripped = text.strip()
        # Refuse absurd literals before int() parses them (int() of 10**6 digits is slow and pointless).
        if len(stripped) > 24:
            raise argparse.ArgumentTypeError(f"{text[:30]!r}... is not an integer in {self.low}..{self.high}")
        try:
            value = int(stripped)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; expected {self.low}..{self.high}")
        return value


@dataclass(frozen=True)
class FloatRange:
    """An argparse type: a finite number between ``low`` and ``high`` (excluded where ``*_open``)."""

    low: float  # lower bound
    high: float  # upper bound
    low_open: bool = False  # True: ``low`` itself is refused
    high_open: bool = False  # True: ``high`` itself is refused

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = value <= self.low if self.low_open else value < self.low
        too_high = value >= self.high if self.high_open else value > self.high
        if too_low or too_high:
            interval = f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
            raise argparse.ArgumentTypeError(f"{value:g} is out of range; expected a number in {interval}")
        return value


SEED = IntRange(0, MAX_SEED)  # random seeds
CHANNELS = IntRange(2, MAX_C)  # --C
LAYERS = IntRange(3, MAX_LAYERS)  # --layers
INPUT_SIZE = IntRange(1, MAX_INPUT_SIZE)  # --input-size (the network checks the multiple it needs)
CLASSES = IntRange(1, MAX_CLASSES)  # --classes / --num-classes
COUNT = IntRange(1, _MAX_COUNT)  # positive counts: batches, rounds, runs, images, networks
COUNT0 = IntRange(0, _MAX_COUNT)  # counts where 0 means none: warmup calls, Cutout side, reconnections
EPOCHS = IntRange(1, 100_000)  # epochs (the paper's longest run is 600)
BATCH = IntRange(1, 1_000_000)  # images or models per step or call
WORKERS = IntRange(0, 256)  # data-loading processes
THREADS = IntRange(1, 1024)  # intra-op / PyTorch threads
RATE = FloatRange(0.0, 1e3, low_open=True)  # learning rates, tolerances, offspring multiples: > 0
NON_NEGATIVE = FloatRange(0.0, 1e6)  # weight decay, loss weights, Celsius thresholds: >= 0
PROBABILITY = FloatRange(0.0, 1.0, high_open=True)  # drop-path and similar probabilities: [0, 1)
SECONDS = FloatRange(0.0, 7 * 24 * 3600.0, low_open=True)  # timeouts: > 0, at most a week
PERCENTILE = FloatRange(0.0, 100.0)  # percentiles
LIMIT = FloatRange(0.0, 1e9, low_open=True)  # budgets (ms, millions of params or mult-adds): > 0
EPOCHS0 = IntRange(0, 100_000)  # epochs where 0 is allowed (search warmup)
POPULATION = IntRange(1, 100_000)  # population size, architectures per step (the config checks P >= 2)
RECONNECTS = IntRange(0, 1000)  # reconnections after a dropped connection
VERIFY_INPUTS = IntRange(1, 10_000)  # random input batches compared per exported format
