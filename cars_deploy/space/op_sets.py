"""The op sets a search draws from: the space of the published models, or DARTS' full space.

Not one of the 256 edges of the 16 published CARS genotypes (nor of DARTS V1/V2) is ``none``: DARTS
derives its cells without it, and vega's decoder drops it, so a network with a ``none`` edge lies
outside the space the paper's results describe. Sampling, mutation and random offspring therefore draw
from the 7 other ops by default (``published``); ``darts`` keeps all 8, as section 3.4 samples them.
Encodings, cost tables and the block enumerator span all 8 either way, so a genotype of one set is
read, counted and timed the same in both.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import UserInputError
from .primitives import PRIMITIVES

__all__ = ["DEFAULT_OP_SET", "OP_SETS", "PUBLISHED_OPS", "op_set", "primitive_indices"]

#: The 7 ops of the published genotypes: every DARTS op but ``none``.
PUBLISHED_OPS: tuple[str, ...] = tuple(op for op in PRIMITIVES if op != "none")

#: Op-set name -> the ops drawn, in ``PRIMITIVES`` order.
OP_SETS: dict[str, tuple[str, ...]] = {"published": PUBLISHED_OPS, "darts": PRIMITIVES}

#: What a search draws from unless told otherwise.
DEFAULT_OP_SET = "published"


def op_set(name: str) -> tuple[str, ...]:
    """The ops of the op set ``name``; ``UserInputError`` naming the known sets otherwise."""
    try:
        return OP_SETS[name]
    except KeyError:
        raise UserInputError(f"unknown op set {name!r}; expected one of {', '.join(OP_SETS)}") from None


def primitive_indices(ops: Sequence[str]) -> tuple[int, ...]:
    """Each op's index in ``PRIMITIVES`` (the op field of ``Genotype.encode()``)."""
    return tuple(PRIMITIVES.index(op) for op in ops)
