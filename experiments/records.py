"""The results folder of an experiment (``experiments/results/<experiment>/``), written atomically.

Raw results are tables (CSV) and one-record-per-line files (JSONL); each write replaces the whole file
through a temporary file and a rename (``cars_deploy._io``), so a run killed at any moment leaves
either the previous file or the new one. Per-item results are appended record by record
(``ResultsDir.append``), which is what lets a re-run skip what is already done.

A results folder remembers the settings that produced it (``settings.json``); opening it with other
settings is refused, so results of two scales never mix in one table.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from cars_deploy._io import atomic_write_bytes, atomic_write_text, json_safe
from cars_deploy.errors import UserInputError

__all__ = ["ResultsDir"]


class ResultsDir:
    """One experiment's results folder, bound to the settings that fill it."""

    SETTINGS = "settings.json"

    def __init__(self, path: str | Path, settings: Mapping[str, Any]):
        """Creates ``path`` if needed; raises ``UserInputError`` if it holds results of other settings."""
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise UserInputError(f"--out {self.path} exists and is not a folder")
        self.settings = json_safe(dict(settings))
        saved_path = self.path / self.SETTINGS
        if saved_path.is_file():
            try:
                saved = json.loads(saved_path.read_text())
            except ValueError:
                raise UserInputError(f"{saved_path} is not valid JSON; delete it or choose another --out") from None
            changed = sorted(k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k))
            if changed:
                shown = "; ".join(f"{k}: {saved.get(k)!r} -> {self.settings.get(k)!r}" for k in changed[:4])
                raise UserInputError(
                    f"{self.path} holds results of other settings ({shown}); choose another --out or delete that folder"
                )
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.write_json(self.SETTINGS, self.settings)

    def file(self, name: str) -> Path:
        return self.path / name

    # ----- writers ---------------------------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> Path:
        path = self.file(name)
        atomic_write_text(path, json.dumps(json_safe(data), indent=2) + "\n")
        return path

    def write_csv(self, name: str, table: pd.DataFrame, *, digits: int = 6) -> Path:
        """The table, floats rounded to ``digits`` decimals (keeps committed files small and diffable)."""
        path = self.file(name)
        atomic_write_text(path, table.round(digits).to_csv(index=False))
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.file(name)
        atomic_write_text(path, text)
        return path

    def write_jsonl(self, name: str, records: Iterable[Mapping[str, Any]]) -> Path:
        path = self.file(name)
        atomic_write_text(path, "".join(json.dumps(json_safe(r), separators=(",", ":")) + "\n" for r in records))
        return path

    def write_jsonl_gz(self, name: str, records: Iterable[Mapping[str, Any]]) -> Path:
        """Like ``write_jsonl``, gzip-compressed (a search history is ~10x smaller); the gzip header carries
        no time stamp, so the same records give the same bytes."""
        path = self.file(name)
        text = "".join(json.dumps(json_safe(r), separators=(",", ":")) + "\n" for r in records)
        atomic_write_bytes(path, gzip.compress(text.encode(), mtime=0))
        return path

    def append(self, name: str, record: Mapping[str, Any]) -> None:
        """Adds one record to the JSONL file ``name`` (rewritten atomically with the new line)."""
        self.write_jsonl(name, [*self.read_jsonl(name), record])

    # ----- readers ---------------------------------------------------------------------------------
    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.file(name)
        if not path.is_file():
            return []
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except ValueError:
            raise UserInputError(f"{path} has a line that is not JSON; delete that line (or the file) to redo it") from None

    def read_jsonl_gz(self, name: str) -> list[dict[str, Any]] | None:
        """The records of a ``write_jsonl_gz`` file, or None when there is none."""
        path = self.file(name)
        if not path.is_file():
            return None
        try:
            return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines() if line.strip()]
        except (OSError, EOFError, ValueError):
            raise UserInputError(f"{path} is not a gzip-compressed JSONL file; delete it to redo it") from None

    def add_seconds(self, key: str, seconds: float) -> None:
        """Accumulates wall time spent on ``key`` over runs and resumes, in ``timing.json``."""
        path = self.file("timing.json")
        timing = json.loads(path.read_text()) if path.is_file() else {}
        timing[key] = round(float(timing.get(key, 0.0)) + seconds, 1)
        self.write_json("timing.json", timing)
