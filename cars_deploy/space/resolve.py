"""Turns what a user types for a genotype into a ``Genotype``: a published name, a file, DARTS notation,
JSON, or a row of a search's Pareto set (``RUN/pareto.csv:ROW``)."""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import GenotypeError
from .genotype import Genotype, parse_genotype, read_genotype_file
from .genotypes import GENOTYPES

__all__ = ["resolve_genotype", "describe_genotype_spec"]

#: Largest pareto.csv read (a Pareto set of a few hundred rows is tens of kB).
_MAX_CSV_BYTES = 64 << 20
_CSV_ROW = re.compile(r"^(?P<path>.+\.csv):(?P<row>\d+)$")


def resolve_genotype(spec: str) -> Genotype:
    """A genotype from a name (``CARS_H``), a ``.json``/text file, ``RUN/pareto.csv:ROW`` (0-based data
    row), or the DARTS notation / JSON text itself; ``GenotypeError`` with one line otherwise."""
    spec = spec.strip()
    if spec in GENOTYPES:
        return GENOTYPES.get(spec)
    if spec.startswith(("Genotype(", "{")):
        return parse_genotype(spec)
    match = _CSV_ROW.match(spec)
    if match:
        if len(match["row"]) > 9:
            raise GenotypeError(f"{match['path']}: row number {match['row'][:12]}... is too large")
        return _genotype_from_csv(Path(match["path"]), int(match["row"]))
    if _is_file(spec):
        return read_genotype_file(Path(spec))
    raise GenotypeError(
        f"{spec[:80]!r} is not a published genotype name, an existing file, RUN/pareto.csv:ROW, or a "
        f"Genotype(...) string; names: {', '.join(GENOTYPES.names())}"
    )


def _genotype_from_csv(path: Path, row: int) -> Genotype:
    import pandas as pd

    try:
        if path.stat().st_size > _MAX_CSV_BYTES:
            raise GenotypeError(f"{path} is larger than {_MAX_CSV_BYTES >> 20} MiB; it is not a search's pareto.csv")
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise GenotypeError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise GenotypeError(f"cannot read {path}: {exc}") from None
    if "genotype" not in table.columns:
        raise GenotypeError(f"{path} has no 'genotype' column")
    if not 0 <= row < len(table):
        raise GenotypeError(f"{path} has rows 0..{len(table) - 1}; row {row} does not exist")
    return parse_genotype(str(table["genotype"].iloc[row]))


def describe_genotype_spec(spec: str) -> str:
    """A short label for a genotype spec: the name when it is one, else ``custom``."""
    spec = spec.strip()
    if spec in GENOTYPES:
        return spec
    if _CSV_ROW.match(spec):
        return spec
    return Path(spec).stem if _is_file(spec) else "custom"


def _is_file(spec: str) -> bool:
    try:
        return Path(spec).is_file()
    except OSError:  # e.g. a genotype string longer than a file name may be
        return False
