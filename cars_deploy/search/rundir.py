"""The run directory of a search (DESIGN.md): what a user opens after ``cars-search --out RUN``.

```
RUN/config.json      the SearchConfig (and the software versions that ran it)
RUN/history.jsonl    one line per generation: every individual evaluated, its genotype and objectives
RUN/population.csv   the current population
RUN/pareto.csv       its Pareto set on (accuracy, objective costs); rows are RUN/pareto.csv:ROW genotypes
RUN/checkpoint.pt    the resumable state (search.checkpoint)
RUN/plots/*.png      population per generation and the Pareto front (search.plots)
```

Every file is rewritten atomically (temporary file + rename) after each generation (the tables, history
and plots by ``search.run_writer.RunWriter``, the checkpoint by ``search.checkpoint``), so a killed
search never leaves a half-written table; ``history.jsonl`` is rendered from the history held in the
checkpoint, so a resumed run never repeats or loses a line. The checkpoint is the commit point: it is
written before the tables and history of its generation, and a resume re-renders them from it, so they
are never ahead of it. One process at a time works in a run folder: ``RunDir.lock`` holds its lock
(``cars_deploy._locks``) and then removes the temporary files a killed writer left.
"""
from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy
import pandas as pd
import torch

from .. import __version__
from .._io import atomic_write_text, remove_stale_temps
from .._locks import HeldLock, hold_lock
from ..errors import UserInputError
from .config import SearchConfig

__all__ = ["RunDir", "REPORT_COLUMNS", "PLOTS"]

#: The PNG files under RUN/plots.
PLOTS: tuple[str, ...] = ("population.png", "pareto.png")

#: Columns every population / Pareto table has, in order (plus one column per extra objective).
REPORT_COLUMNS: tuple[str, ...] = (
    "genotype",
    "accuracy",
    "params",
    "mult_adds",
    "latency_ms",
    "objective",
    "accuracy_speed",
    "previous_accuracy",
    "origin",
    "born",
)


class RunDir:
    """Paths and atomic writers of one search run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def population_path(self) -> Path:
        return self.path / "population.csv"

    @property
    def pareto_path(self) -> Path:
        return self.path / "pareto.csv"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def plots_path(self) -> Path:
        return self.path / "plots"

    def lock(self) -> HeldLock:
        """Takes this run's lock, refused with a ``UserInputError`` naming the process that holds it;
        then deletes the temporary files of killed atomic writes in the folder and its plots (only the
        ``.NAME.XXXXXXXX.tmp`` files of ``_io``). Creates nothing."""
        held = hold_lock(self.path, what=f"search run {self.path}")
        for folder in (self.path, self.plots_path):
            remove_stale_temps(folder)
        return held

    @classmethod
    def check_new(cls, path: str | Path) -> "RunDir":
        """Raises ``UserInputError`` unless ``path`` can hold a new run (absent, or a folder without one)."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UserInputError(f"--out {run.path} exists and is not a folder")
        if run.config_path.exists() or run.checkpoint_path.exists():
            raise UserInputError(
                f"{run.path} already holds a search; continue it with --resume {run.path} or choose another --out"
            )
        return run

    @classmethod
    def require_new(cls, path: str | Path) -> None:
        """``check_new`` for a caller that needs only the refusal: rank 0 of a distributed search runs it
        and shares its (JSON) result, so it returns nothing."""
        cls.check_new(path)

    @classmethod
    def create(cls, path: str | Path, config: SearchConfig, *, overwrite: bool = False) -> "RunDir":
        """A new run in ``path`` (created, or empty) with its config written; see ``check_new``.
        ``overwrite`` first deletes the files of a run already there (only those, nothing else)."""
        if overwrite:
            cls(path).clear()
        run = cls.check_new(path)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> tuple["RunDir", SearchConfig]:
        """An existing run and its saved config, for ``--resume``."""
        run = cls(path)
        if not run.config_path.is_file():
            raise UserInputError(f"{run.path} is not a search run (no config.json); start one with --out {run.path}")
        try:
            data = json.loads(run.config_path.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise UserInputError(
                f"{run.config_path} is unreadable or not a search config ({exc}); the run cannot be resumed "
                f"(start it over with --out {run.path} --overwrite)"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("search"), dict):
            raise UserInputError(
                f"{run.config_path} is unreadable or not a search config (no 'search' object); the run cannot be resumed"
            )
        # The one place a saved config is read: types by from_dict, ranges by validate, each naming the file.
        config = SearchConfig.from_dict(data["search"], where=str(run.config_path))
        try:
            config.validate()
        except UserInputError as exc:
            raise UserInputError(f"{run.config_path}: {exc}") from None
        return run, config

    def clear(self) -> None:
        """Deletes this run's own files (config, history, tables, checkpoint, plots) if present."""
        for path in (self.config_path, self.history_path, self.population_path, self.pareto_path, self.checkpoint_path):
            path.unlink(missing_ok=True)
        for name in PLOTS:
            (self.plots_path / name).unlink(missing_ok=True)
        if self.plots_path.is_dir() and not any(self.plots_path.iterdir()):
            self.plots_path.rmdir()

    def write_config(self, config: SearchConfig) -> None:
        """config.json: the search config and the versions of the software that runs it."""
        data = {
            "search": config.to_dict(),
            "software": {
                "cars_deploy": __version__,
                "torch": torch.__version__,
                "numpy": numpy.__version__,
                "python": platform.python_version(),
            },
        }
        atomic_write_text(self.config_path, json.dumps(data, indent=2) + "\n")

    def write_history(self, records: Sequence[Mapping[str, Any]]) -> None:
        """One JSON object per generation (NaN written as null)."""
        text = "".join(json.dumps(_json_safe(record), separators=(",", ":")) + "\n" for record in records)
        atomic_write_text(self.history_path, text)

    def read_history(self) -> list[dict[str, Any]]:
        if not self.history_path.is_file():
            return []
        records = []
        for number, line in enumerate(self.history_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise UserInputError(f"{self.history_path} line {number} is not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise UserInputError(f"{self.history_path} line {number} must be a JSON object, got {type(record).__name__}")
            records.append(record)
        return records

    def write_table(self, which: str, table: pd.DataFrame) -> None:
        """``which`` is ``population`` or ``pareto``."""
        path = {"population": self.population_path, "pareto": self.pareto_path}[which]
        atomic_write_text(path, table.to_csv(index=False))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
