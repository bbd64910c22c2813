"""``LatencyTable``: one device's block latencies, as a CSV plus a JSON sidecar.

The CSV has one row per block: the key columns (``kind, C_in, C_out, H, W, stride``), ``latency_ms``
(the low-percentile latency with the per-call overhead subtracted, see ``protocol.py``), the spread
(``p10_ms, p50_ms, p90_ms, iqr_ms``), the ``overhead_ms`` subtracted and the ``rounds`` and ``runs``
behind it. The sidecar (``NAME.json``) describes how the table was made: device facts, runtime,
threads, CPU mask, runner, protocol, networks, temperatures, raw round samples, the command that
made it, and a ``calibration`` slot the latency predictor fills.

The pair is written so that a kill at any point leaves the old table or the new one, never a mix: the
new CSV goes to ``.NAME.csv.pending``, then the sidecar (which records the new CSV's SHA-256) replaces
the old one - the commit point - and the pending CSV is renamed over ``NAME.csv``. A reader that finds a
pending CSV matching the sidecar reads it (the save was committed); the next writer, holding the table's
lock (``lock_table``), finishes such a save or discards an uncommitted one. ``load`` validates both
files, so a damaged table is a one-line error naming the problem.
A table is named by a path (``latency_tables/NAME``, with or without ``.csv``) or, for the tables
shipped with the package, by its bare name.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._io import atomic_write_text, fsync_dir, remove_stale_temps
from .._locks import HeldLock, hold_lock
from ..errors import UserInputError
from ..space.networks import NetworkConfig
from .blocks import BLOCK_KINDS, BlockKey

__all__ = [
    "LatencyTable",
    "TableError",
    "MissingBlockError",
    "KEY_COLUMNS",
    "VALUE_COLUMNS",
    "FORMAT",
    "table_files",
    "lock_table",
    "resolve_table",
    "builtin_table_dirs",
    "network_flags",
]

KEY_COLUMNS: tuple[str, ...] = ("kind", "C_in", "C_out", "H", "W", "stride")
VALUE_COLUMNS: tuple[str, ...] = ("latency_ms", "p10_ms", "p50_ms", "p90_ms", "iqr_ms", "overhead_ms", "rounds", "runs")
#: The sidecar's ``format`` field.
FORMAT = "cars-deploy latency table v1"


class TableError(UserInputError):
    """A latency table that is missing, unreadable or inconsistent."""


class MissingBlockError(UserInputError):
    """A block the caller needs has no row in the table."""

    def __init__(self, message: str, key: BlockKey) -> None:
        super().__init__(message)
        self.key = key


#: Types of the sidecar fields readers use (absent or null is allowed: older tables lack some).
_SIDECAR_TYPES: dict[str, tuple[type, ...]] = {
    "settings": (dict,),
    "device": (dict,),
    "protocol": (dict,),
    "networks": (list,),
    "overhead_ms": (int, float),
    "samples_ms": (dict,),
    "temperatures": (dict,),
    "events": (dict,),
    "runs": (list,),
    "calibration": (dict,),
}


def network_flags(config: NetworkConfig) -> list[str]:
    """The ``cars-profile`` flags selecting network ``config`` (only those differing from its kind's default)."""
    default = NetworkConfig.imagenet() if config.kind == "imagenet" else NetworkConfig.cifar()
    flags = ["--network", config.kind]
    for field_name, flag in (("C", "--C"), ("layers", "--layers"), ("input_size", "--input-size"), ("num_classes", "--classes")):
        if getattr(config, field_name) != getattr(default, field_name):
            flags += [flag, str(getattr(config, field_name))]
    return flags


def builtin_table_dirs() -> list[Path]:
    """Folders searched for a table given by bare name: the repository's ``latency_tables/`` (source
    checkouts and editable installs) and ``<prefix>/share/cars-deploy/latency_tables`` (wheels)."""
    return [Path(__file__).resolve().parents[2] / "latency_tables", Path(sys.prefix) / "share" / "cars-deploy" / "latency_tables"]


def table_files(base: str | Path) -> tuple[Path, Path]:
    """``(NAME.csv, NAME.json)`` for ``NAME``, ``NAME.csv`` or ``NAME.json``."""
    base = Path(base)
    if base.suffix in (".csv", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")


def _pending(csv: Path) -> Path:
    return csv.with_name(f".{csv.name}.pending")


def _committed(csv: Path, meta: Any) -> Path | None:
    """The pending CSV of ``csv`` when the sidecar ``meta`` committed it (a save killed after its commit
    point), else None."""
    pending = _pending(csv)
    digest = meta.get("csv_sha256") if isinstance(meta, dict) else None
    try:
        return pending if digest and hashlib.sha256(pending.read_bytes()).hexdigest() == digest else None
    except OSError:
        return None


def lock_table(base: str | Path, *, also: Sequence[Path] = ()) -> HeldLock:
    """Holds the lock of the table ``base`` (``cars_deploy._locks``; one process per table), then finishes
    or discards a save a kill interrupted and deletes the temporary files killed atomic writes left for
    the table's files and ``also`` (its partial file). Refused with a one-line ``UserInputError`` naming
    the holder."""
    csv, sidecar = table_files(base)
    held = hold_lock(csv, what=f"latency table {csv}")
    pending = _pending(csv)
    remove_stale_temps(csv.parent, {csv.name, sidecar.name, pending.name, *(p.name for p in also)})
    if pending.exists():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            meta = None
        if _committed(csv, meta) is not None:
            os.replace(pending, csv)  # committed before the kill: finish the save
            fsync_dir(csv.parent)
        else:
            pending.unlink()  # killed before its commit point: the old pair stands
    return held


def resolve_table(spec: str | Path) -> Path:
    """The CSV of the table named ``spec``: a path, or a bare name of a shipped table."""
    csv, _ = table_files(spec)
    if csv.is_file() or _pending(csv).is_file():
        return csv
    if len(Path(spec).parts) == 1:
        for folder in builtin_table_dirs():
            candidate, _ = table_files(folder / Path(spec).name)
            if candidate.is_file():
                return candidate
    shipped = sorted({p.stem for d in builtin_table_dirs() if d.is_dir() for p in d.glob("*.csv")})
    raise TableError(f"latency table {spec} not found (looked for {csv}); shipped tables: {', '.join(shipped) or 'none'}")


@dataclass
class LatencyTable:
    """Block latencies of one device/runtime/threads setting, with the sidecar that describes them."""

    frame: pd.DataFrame  # one row per block: KEY_COLUMNS + VALUE_COLUMNS
    meta: dict[str, Any] = field(default_factory=dict)  # the sidecar
    path: Path | None = None  # the CSV it was loaded from or saved to

    # ----- construction ---------------------------------------------------------------------------
    @classmethod
    def empty(cls, meta: Mapping[str, Any] | None = None) -> "LatencyTable":
        frame = pd.DataFrame({c: pd.Series(dtype="object" if c == "kind" else "float64") for c in KEY_COLUMNS + VALUE_COLUMNS})
        return cls(frame=_typed(frame), meta={"format": FORMAT, **dict(meta or {})})

    @classmethod
    def load(cls, spec: str | Path) -> "LatencyTable":
        """Reads and validates the table named ``spec`` (see ``resolve_table``); ``TableError`` if damaged."""
        csv = resolve_table(spec)
        _, sidecar = table_files(csv)
        try:
            meta = json.loads(sidecar.read_text())
        except FileNotFoundError:
            raise TableError(f"latency table {csv} has no sidecar {sidecar.name}; rebuild it with cars-profile") from None
        except (OSError, ValueError) as exc:
            raise TableError(f"sidecar {sidecar} is unreadable: {exc}") from None
        try:
            frame = pd.read_csv(_committed(csv, meta) or csv, dtype={"kind": str})
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise TableError(f"latency table {csv} is unreadable: {exc}") from None
        if isinstance(meta, dict):
            meta.pop("csv_sha256", None)  # the pair's commit record, not a description of the table
        table = cls(frame=frame, meta=meta, path=csv)
        table.validate()
        table.frame = _typed(table.frame)
        return table

    def validate(self) -> None:
        """Raises ``TableError`` naming the first problem: columns, types, ranges, duplicates, sidecar."""
        where = self.path or "latency table"
        if not isinstance(self.meta, dict) or self.meta.get("format") != FORMAT:
            raise TableError(f"{where}: sidecar is not a '{FORMAT}' description")
        for key, kinds in _SIDECAR_TYPES.items():
            value = self.meta.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                names = " or ".join(k.__name__ for k in kinds)
                raise TableError(f"{where}: sidecar field {key!r} must be {names}, got {type(value).__name__}")
        for key in ("device", "runtime", "runner"):
            value = self.meta.get("settings", {}).get(key)
            if value is not None and not isinstance(value, str):
                raise TableError(f"{where}: sidecar field 'settings.{key}' must be str, got {type(value).__name__}")
        if not all(isinstance(n, dict) for n in self.meta.get("networks") or []):
            raise TableError(f"{where}: sidecar field 'networks' must be a list of network settings (objects)")
        missing = [c for c in KEY_COLUMNS + VALUE_COLUMNS if c not in self.frame.columns]
        if missing:
            raise TableError(f"{where}: missing columns {', '.join(missing)}")
        frame = self.frame
        unknown = sorted(set(frame["kind"].astype(str)) - set(BLOCK_KINDS))
        if unknown:
            raise TableError(f"{where}: unknown block kinds {', '.join(unknown)}")
        for column in KEY_COLUMNS[1:] + VALUE_COLUMNS:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() | ~np.isfinite(values.astype(float)) | (values < 0)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise TableError(f"{where}: row {row + 1}: {column} is {frame[column].iloc[row]!r}, not a non-negative number")
            if column in KEY_COLUMNS or column in ("rounds", "runs"):
                if (values != values.round()).any():
                    raise TableError(f"{where}: column {column} must hold integers")
        duplicated = frame.duplicated(list(KEY_COLUMNS))
        if duplicated.any():
            row = int(np.flatnonzero(duplicated.to_numpy())[0])
            raise TableError(f"{where}: block {self._key_of(row)} appears twice")

    # ----- queries ----------------------------------------------------------------------------------
    def keys(self) -> list[BlockKey]:
        return [self._key_of(i) for i in range(len(self.frame))]

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, BlockKey) and key in self._lookup()

    def latency(self, key: BlockKey) -> float:
        """``latency_ms`` of ``key``; ``MissingBlockError`` if absent."""
        return float(self.vector([key])[0])

    def vector(
        self, keys: Sequence[BlockKey], *, column: str = "latency_ms", config: NetworkConfig | None = None
    ) -> np.ndarray:
        """``column`` for each of ``keys`` in order (the form ``BlockIndex`` takes); ``MissingBlockError``
        naming the first missing block and the ``cars-profile`` command that would fill it (for the
        network ``config`` the keys come from, when given)."""
        lookup = self._lookup()
        values = self.frame[column].to_numpy(dtype=np.float64)
        rows = []
        for key in keys:
            row = lookup.get(key)
            if row is None:
                hint = self.fill_command(config)
                raise MissingBlockError(
                    f"latency table {self.path or ''} has no entry for block {key.id} "
                    f"({key.kind}, C_in={key.C_in}, C_out={key.C_out}, {key.H}x{key.W}, stride {key.stride}); "
                    f"fill it with: {hint}",
                    key,
                )
            rows.append(row)
        return values[np.asarray(rows, dtype=np.int64)] if rows else np.zeros(0)

    def fill_command(self, config: NetworkConfig | None = None) -> str:
        """The ``cars-profile`` command that adds the blocks of network ``config`` missing from this
        table, with the table's own device settings."""
        settings = self.meta.get("settings", {})
        parts = ["cars-profile", "--device", str(settings.get("device", "local"))]
        if settings.get("runtime"):
            parts += ["--runtime", str(settings["runtime"])]
        if settings.get("threads"):
            parts += ["--threads", str(settings["threads"])]
        if settings.get("cpu_mask"):
            parts += ["--cpu-mask", str(settings["cpu_mask"])]
        if config is not None:
            parts += network_flags(config)
        out = self.path.with_suffix("") if self.path is not None else Path("latency_tables/NAME")
        parts += ["--out", str(out)]
        return " ".join(parts)

    # ----- updates ------------------------------------------------------------------------------------
    def with_rows(self, rows: Iterable[Mapping[str, Any]]) -> "LatencyTable":
        """A new table with ``rows`` (dicts with every column) added; a block already present keeps its
        old row, so rerunning a finished profile never duplicates nor overwrites a row."""
        lookup = self._lookup()
        fresh = []
        seen = set(lookup)
        for row in rows:
            key = BlockKey(str(row["kind"]), *(int(row[c]) for c in KEY_COLUMNS[1:]))
            if key in seen:
                continue
            seen.add(key)
            fresh.append({c: row[c] for c in KEY_COLUMNS + VALUE_COLUMNS})
        if not fresh:
            return LatencyTable(self.frame.copy(), json.loads(json.dumps(self.meta)), self.path)
        added = pd.DataFrame(fresh, columns=list(KEY_COLUMNS + VALUE_COLUMNS))
        frame = added if self.frame.empty else pd.concat([self.frame, added], ignore_index=True)
        return LatencyTable(_typed(frame), json.loads(json.dumps(self.meta)), self.path)

    def save(self, base: str | Path) -> Path:
        """Writes the pair ``NAME.csv`` + ``NAME.json``, the sidecar as the commit point (see the module
        docstring); returns the CSV path. Call it holding ``lock_table(base)``."""
        self.validate()
        csv, sidecar = table_files(base)
        buffer = io.StringIO()
        self.frame.to_csv(buffer, index=False, float_format="%.6g")
        text = buffer.getvalue()
        meta = {**_jsonable(self.meta), "csv_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        # A table is shared data, not a secret: both files get a plain open's mode (0666 less the umask).
        atomic_write_text(_pending(csv), text)
        atomic_write_text(sidecar, json.dumps(meta, indent=1, sort_keys=False) + "\n")  # the commit point
        os.replace(_pending(csv), csv)
        fsync_dir(csv.parent)
        self.path = csv
        return csv

    # ----- helpers ------------------------------------------------------------------------------------
    def _key_of(self, row: int) -> BlockKey:
        r = self.frame.iloc[row]
        return BlockKey(str(r["kind"]), *(int(r[c]) for c in KEY_COLUMNS[1:]))

    def _lookup(self) -> dict[BlockKey, int]:
        frame = self.frame
        columns = [frame[c].to_numpy() for c in KEY_COLUMNS]
        return {
            BlockKey(str(kind), int(c_in), int(c_out), int(h), int(w), int(s)): i
            for i, (kind, c_in, c_out, h, w, s) in enumerate(zip(*columns))
        }


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["kind"] = frame["kind"].astype(str)
    for column in KEY_COLUMNS[1:] + ("rounds", "runs"):
        frame[column] = pd.to_numeric(frame[column]).astype("int64")
    for column in VALUE_COLUMNS:
        if column not in ("rounds", "runs"):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame[list(KEY_COLUMNS + VALUE_COLUMNS)].reset_index(drop=True)


def _jsonable(value: Any) -> Any:
    """NaN/inf become null (JSON has neither); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    return value
