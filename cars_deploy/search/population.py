"""The population: architectures (the connections ``C_i`` of section 3) with their measured objectives.

Each individual keeps its genotype, its validation accuracy on the current SuperNet, its accuracy on
the previous generation's SuperNet and the resulting accuracy increasing speed (the pNSGA-III term,
see ``search.evaluation``), its costs, and where it came from. A population converts to and from a
plain dict of lists (encoded genotypes as int lists) so that checkpoints load with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..space import Genotype

__all__ = ["Individual", "Population"]

@dataclass
class Individual:
    """One architecture and what is known about it."""

    genotype: Genotype  # the architecture
    origin: str = "initial"  # initial, random, crossover or mutation
    born: int = 0  # generation in which it was created
    accuracy: float = math.nan  # validation accuracy (fraction) on the current SuperNet
    previous_accuracy: float = math.nan  # validation accuracy on the previous generation's SuperNet
    speed: float = math.nan  # accuracy increasing speed: (accuracy - previous_accuracy) / E_param, per epoch
    costs: tuple[float, ...] = field(default_factory=tuple)  # the cost objectives, in config order


class Population(list[Individual]):
    """A list of individuals with array views of their objectives."""

    @property
    def genotypes(self) -> list[Genotype]:
        return [ind.genotype for ind in self]

    def accuracies(self) -> np.ndarray:
        return np.array([ind.accuracy for ind in self], dtype=np.float64)

    def speeds(self) -> np.ndarray:
        return np.array([ind.speed for ind in self], dtype=np.float64)

    def costs(self) -> np.ndarray:
        """``(n, M)`` array of cost objectives."""
        if not self:
            return np.zeros((0, 0))
        return np.array([ind.costs for ind in self], dtype=np.float64).reshape(len(self), -1)

    def to_state(self) -> dict[str, Any]:
        """Plain lists only (safe for ``torch.load(weights_only=True)``)."""
        return {
            "codes": [ind.genotype.encode().tolist() for ind in self],
            "origin": [ind.origin for ind in self],
            "born": [int(ind.born) for ind in self],
            "accuracy": [float(ind.accuracy) for ind in self],
            "previous_accuracy": [float(ind.previous_accuracy) for ind in self],
            "speed": [float(ind.speed) for ind in self],
            "costs": [[float(c) for c in ind.costs] for ind in self],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Population":
        """Inverse of ``to_state``; raises ``KeyError``/``GenotypeError`` on a malformed state."""
        columns = ("origin", "born", "accuracy", "previous_accuracy", "speed", "costs")
        n = len(state["codes"])
        if any(len(state[c]) != n for c in columns):
            raise KeyError("population columns have different lengths")
        return cls(
            Individual(
                genotype=Genotype.decode(state["codes"][i]),
                origin=str(state["origin"][i]),
                born=int(state["born"][i]),
                accuracy=float(state["accuracy"][i]),
                previous_accuracy=float(state["previous_accuracy"][i]),
                speed=float(state["speed"][i]),
                costs=tuple(float(c) for c in state["costs"][i]),
            )
            for i in range(n)
        )

    def subset(self, indices: Sequence[int]) -> "Population":
        return Population(self[int(i)] for i in indices)
