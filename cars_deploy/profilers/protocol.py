"""The measurement protocol shared by every device: warm-up, interleaved rounds, a robust statistic, overhead.

Phones, and the VMs this project is tested on, drift between fast and slow states for tens of
seconds, so one window of runs per block (the usual "time block A, then block B") puts some blocks
in a slow window and others in a fast one: a block's one-window median can be 60% off. Instead:

1. warm-up: every model runs ``warmup`` untimed calls once (caches, allocators, CPU governor);
2. ``rounds`` interleaved rounds: in each, every model is timed once (``runs`` calls, reduced to a
   per-call median by the device), in an order shuffled per round with a seeded generator, so each
   model's samples are spread over the whole run and meet the same mix of fast and slow windows;
3. the latency is a statistic of a model's round samples (``statistic``): for blocks a low percentile
   (``percentile``, default 20), the model in the fast state, which all models reach, rather than a
   mean polluted by slow windows; for whole networks (``latency.validation.whole_network_protocol``)
   the 10%-trimmed mean. Interleaving and the drift reference already put every network in the same
   mix of windows, and there the trimmed mean repeats better: two passes of 24 networks on 20 rounds
   agreed to 0.92% with it and to 1.67% with p20, most of it the reference's own p20 noise
   (BENCHMARKS.md, "How quiet is one whole-network measurement?"). p10/p50/p90 and the inter-quartile range are
   recorded as the spread;
4. the runner's fixed per-call overhead, timed the same way on an empty model (an identity on one
   float), is subtracted, so that a sum of N blocks does not count N call overheads;
5. drift correction: a fixed reference model (``REFERENCE_KEY``, a separable convolution block that
   never changes) is timed in every round like the others, and every sample is scaled by
   ``base / reference`` (``Reference.factor``), ``reference`` being the reference's statistic (3.)
   in this run: the results are expressed in the machine state whose reference latency is ``base``.
   A table build takes ``base`` from its own reference (so its factor is 1) and stores it in the
   sidecar; a calibration does the same for whole networks with a whole reference network instead of
   the block (``time_models(reference_network=...)``; its first pass defines its state, and its
   ``reference_ms`` is stored with it), and every later timing of whole networks against that table
   (``--verify-on``, ``--model --reference-table``) times the same network and uses the calibration's
   ``base`` (the table's block where there is no calibration), so a table calibrated on a fast VM state
   and a verification made later on a slow one agree. The block, timed among microsecond blocks, runs up
   to 15% faster or slower than among networks, and in the L2 cache it misses slowdowns that cost
   memory-bound networks more. Interleaving (2.) with the statistic (3.)
   already removes drift *within* a run (every model meets the same rounds); the reference removes it
   *between* runs. One factor per run rather than one per round: a per-round factor would multiply
   every sample by the reference's own timing noise and bias the statistic of each model by its
   own noise level, while it corrects nothing the statistic has not already removed. The reference's
   own statistic is the larger part of what remains between two runs, which is why whole networks use
   the trimmed mean (3.). The reference's latency in every round is recorded all the same (beside the
   temperatures on a phone).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._io import atomic_write_text
from .._progress import progress
from ..errors import UserInputError
from .blocks import EMPTY_KEY, BlockKey
from .device import Device, Sample, TimedModel

__all__ = ["STATISTICS", "round_statistic", "ProtocolConfig", "SampleStore", "Measurement", "Reference", "measure",
           "aggregate", "drift_reference", "OVERHEAD_NAME", "REFERENCE_KEY", "REFERENCE_NAME", "NETWORK_REFERENCE_NAME"]

_log = logging.getLogger(__name__)

#: Name of the empty model in samples; ``aggregate`` subtracts its latency from the others.
OVERHEAD_NAME = EMPTY_KEY.id
#: The drift reference: a fixed block (ReLU, depthwise 3x3, pointwise, BN, twice) exported like any
#: block, so every device and format can time it; a few hundred microseconds on a desktop CPU.
REFERENCE_KEY = BlockKey("sep_conv_3x3", 48, 48, 28, 28, 1)
#: Name of the reference model in samples.
REFERENCE_NAME = REFERENCE_KEY.id
#: Name, in samples, of a whole network used as the drift reference of whole-network timings.
NETWORK_REFERENCE_NAME = "drift-reference-network"
#: How a model's round samples become its latency (``ProtocolConfig.statistic``).
STATISTICS: tuple[str, ...] = ("percentile", "trimmed_mean")
#: Share of the round samples the ``"trimmed_mean"`` statistic cuts from each end.
TRIM_SHARE = 0.1


def round_statistic(values: Sequence[float] | np.ndarray, statistic: str, percentile: float) -> float:
    """One latency from round samples: their ``percentile`` or their trimmed mean, which cuts
    ``TRIM_SHARE`` of the rounds from each end, and at least one from 5 rounds up. Written out rather than
    scipy's ``trim_mean``, which cuts nothing below 10 rounds: a phone's 6 rounds need their slowest dropped."""
    if statistic == "trimmed_mean":
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        cut = max(1, int(TRIM_SHARE * ordered.size)) if ordered.size >= 5 else 0
        return float(ordered[cut : ordered.size - cut].mean())
    if statistic != "percentile":
        raise ValueError(f"unknown round statistic {statistic!r}")
    return float(np.percentile(values, percentile))


@dataclass(frozen=True)
class ProtocolConfig:
    """How many times and in what order models are timed; see the module docstring."""

    warmup: int = 20  # untimed calls per model before the first round
    rounds: int = 50  # interleaved rounds over all models
    runs: int = 100  # timed calls per model in each round (the runner's -r / --iter)
    call_warmup: int = 1  # untimed calls before the timed ones in every round (a runner is a new process)
    percentile: float = 20.0  # low percentile of the round samples reported as the latency (statistic "percentile")
    batch_size: int = 64  # models per device call (ADB: per shell call)
    seed: int = 0  # seeds the per-round shuffle
    statistic: str = "percentile"  # how round samples become a latency (STATISTICS)

    @classmethod
    def for_device(cls, kind: str, **changes: Any) -> "ProtocolConfig":
        """Defaults per device kind: the host does many cheap rounds; a phone starts a runner process
        per model and round, so fewer rounds of more runs, 16 models per shell call."""
        base = cls() if kind == "local" else cls(warmup=10, rounds=10, runs=50, batch_size=16)
        values = {**asdict(base), **{k: v for k, v in changes.items() if v is not None}}
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("rounds", "runs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup", "call_warmup"):
            if getattr(self, name) < 0:
                raise UserInputError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.seed <= 2**32 - 1:
            raise UserInputError(f"--seed must be in 0..{2**32 - 1}, got {self.seed}")
        if not 0.0 <= self.percentile <= 100.0:
            raise UserInputError(f"--percentile must be in 0..100, got {self.percentile}")
        if self.statistic not in STATISTICS:
            raise UserInputError(f"unknown round statistic {self.statistic!r}; known: {', '.join(STATISTICS)}")


@dataclass
class SampleStore:
    """Round samples per model, optionally persisted (atomically) to ``path`` for resuming."""

    settings: dict[str, Any]  # what the samples were taken with; a resume must match it
    path: Path | None = None  # where it is persisted (None: memory only)
    samples: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # name -> round -> sample

    @classmethod
    def open(cls, path: Path | None, settings: dict[str, Any]) -> "SampleStore":
        """A new store, or the one saved at ``path`` by an interrupted run with the same settings."""
        store = cls(settings=json.loads(json.dumps(settings)), path=path)
        if path is None or not path.exists():
            return store
        try:
            saved = json.loads(path.read_text())
            old_settings, samples = saved["settings"], saved["samples"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise UserInputError(f"cannot resume from {path}: unreadable ({exc}); delete it to start over") from None
        if not isinstance(old_settings, dict):
            raise UserInputError(f"cannot resume from {path}: field 'settings' must be an object; delete it to start over")
        if old_settings != store.settings:
            changed = sorted(k for k in set(old_settings) | set(store.settings) if old_settings.get(k) != store.settings.get(k))
            raise UserInputError(
                f"{path} holds an interrupted run with other settings ({', '.join(changed)}); rerun with the same "
                "settings to resume it, or delete it to start over"
            )
        store.samples = _checked_samples(samples, path)
        return store

    def has(self, name: str, round_index: int) -> bool:
        return round_index in self.samples.get(name, {})

    def add(self, round_index: int, samples: Sequence[Sample]) -> None:
        for sample in samples:
            self.samples.setdefault(sample.name, {})[round_index] = {
                "ms": sample.ms, "runs": sample.runs, "temp_before_c": sample.temp_before_c, "temp_after_c": sample.temp_after_c
            }

    def values(self, name: str) -> np.ndarray:
        rounds = self.samples.get(name, {})
        return np.array([rounds[r]["ms"] for r in sorted(rounds)], dtype=np.float64)

    def count(self) -> int:
        return sum(len(rounds) for rounds in self.samples.values())

    def save(self) -> None:
        if self.path is not None:
            atomic_write_text(self.path, json.dumps({"settings": self.settings, "samples": self.samples}))

    def delete(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _checked_samples(samples: Any, path: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """The ``samples`` field of a partial file as ``{name: {round: sample}}``; ``UserInputError`` naming the
    file and the field for any value of the wrong type (the one place a partial file's samples are read)."""

    def bad(field_name: str, expected: str) -> UserInputError:
        return UserInputError(f"cannot resume from {path}: field {field_name!r} must be {expected}; delete it to start over")

    if not isinstance(samples, dict):
        raise bad("samples", "an object of model name -> rounds")
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for name, rounds in samples.items():
        if not isinstance(rounds, dict):
            raise bad(f"samples.{name}", "an object of round -> sample")
        out[name] = {}
        for round_text, sample in rounds.items():
            if not (isinstance(round_text, str) and round_text.isdigit() and len(round_text) < 10):
                raise bad(f"samples.{name}.{round_text}", "keyed by a round number")
            ms, runs = (sample.get("ms"), sample.get("runs")) if isinstance(sample, dict) else (None, None)
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms < 0:
                raise bad(f"samples.{name}.{round_text}.ms", "a non-negative number")
            if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
                raise bad(f"samples.{name}.{round_text}.runs", "a positive integer")
            out[name][int(round_text)] = sample
    return out


@dataclass(frozen=True)
class Measurement:
    """The aggregate of one model's round samples (overhead already subtracted where said)."""

    name: str  # the model's name
    latency_ms: float  # the round statistic minus the overhead, floored at 0
    raw_ms: float  # the round statistic before subtracting the overhead
    p10_ms: float  # spread: 10th, 50th and 90th percentiles, overhead subtracted
    p50_ms: float
    p90_ms: float
    iqr_ms: float  # 75th minus 25th percentile
    overhead_ms: float  # the per-call overhead subtracted
    rounds: int  # round samples aggregated
    runs: int  # timed calls behind them
    temperatures_c: tuple[tuple[float | None, float | None], ...] = ()  # (before, after) per round
    reference: dict[str, Any] | None = None  # the run's drift reference (Reference.as_dict() + "corrected")
    uncorrected_ms: float | None = None  # latency_ms without the drift correction (equal when none was applied)


@dataclass(frozen=True)
class Reference:
    """The drift reference of one timing run: its latency per round and the factor applied to each round."""

    base_ms: float  # reference latency of the state results are expressed in (the table's, or this run's)
    per_round_ms: dict[int, float]  # round -> the reference's sample in that round
    percentile: float  # the low percentile of the rounds that is this run's reference latency (statistic "percentile")
    temperatures_c: dict[int, tuple[float | None, float | None]] = field(default_factory=dict)  # round -> (before, after)
    model: str = REFERENCE_NAME  # the reference model's name in the samples
    statistic: str = "percentile"  # how its rounds become its latency, as for every model of the run (STATISTICS)

    @property
    def factor(self) -> float:
        """``base_ms`` over this run's reference latency: what every sample of the run is multiplied by."""
        return self.base_ms / self.run_ms()

    def run_ms(self) -> float:
        """The reference's latency in this run (the same statistic as every model)."""
        return round_statistic(list(self.per_round_ms.values()), self.statistic, self.percentile)

    def as_dict(self) -> dict[str, Any]:
        """For sidecars and reports: the model, statistic, base, this run's latency, drift (%) and per-round values
        (with the per-round temperatures where the device has sensors: a phone)."""
        rounds = sorted(self.per_round_ms)
        return {
            "model": self.model, "statistic": self.statistic,
            "base_ms": float(f"{self.base_ms:.7g}"), "run_ms": float(f"{self.run_ms():.7g}"),
            "drift_pct": float(f"{(self.run_ms() / self.base_ms - 1) * 100:.4g}"), "factor": float(f"{self.factor:.7g}"),
            "per_round_ms": [float(f"{self.per_round_ms[r]:.7g}") for r in rounds],
            **({"per_round_temperatures_c": [list(self.temperatures_c.get(r, (None, None))) for r in rounds]}
               if any(t is not None for pair in self.temperatures_c.values() for t in pair) else {}),
        }


def drift_reference(
    store: "SampleStore", *, percentile: float, base_ms: float | None = None, name: str = REFERENCE_NAME,
    statistic: str = "percentile",
) -> Reference:
    """The ``Reference`` of the samples of the model ``name`` in ``store``: ``base_ms`` (a table's) or,
    when None, the ``statistic`` of the reference's own samples (a table build defines its state this way)."""
    rounds = {r: float(s["ms"]) for r, s in store.samples.get(name, {}).items()}
    if not rounds or min(rounds.values()) <= 0:
        raise RuntimeError(f"no positive samples of the drift reference {name}")
    if base_ms is None:
        base_ms = round_statistic(list(rounds.values()), statistic, percentile)
    if not base_ms > 0:
        raise UserInputError(f"the table's drift reference latency {base_ms!r} is not positive; rebuild the table")
    samples = store.samples[name]
    temperatures = {r: (samples[r].get("temp_before_c"), samples[r].get("temp_after_c")) for r in rounds}
    return Reference(base_ms=float(base_ms), per_round_ms=rounds, percentile=percentile, temperatures_c=temperatures,
                     model=name, statistic=statistic)


def measure(
    device: Device,
    models: Sequence[TimedModel],
    config: ProtocolConfig,
    store: SampleStore,
    *,
    show_progress: bool | None = None,
    on_batch: Callable[[int, Sequence[Sample]], None] | None = None,
) -> None:
    """Fills ``store`` with ``config.rounds`` samples of every model (skipping those it already has)."""
    config.validate()
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise UserInputError("two models to time share a name")
    pending = sum(not store.has(m.name, r) for r in range(config.rounds) for m in models)
    if pending == 0:
        return
    if store.count():
        _log.info("resuming: %d of %d samples already measured", store.count(), store.count() + pending)
    device.prepare(models)
    bar = progress(total=pending + (len(models) if config.warmup else 0), desc="profiling", unit="sample",
                   **({} if show_progress is None else {"disable": not show_progress}))
    try:
        if config.warmup:
            for batch in _chunks(list(models), config.batch_size):
                device.time_batch(batch, runs=config.warmup, warmup=0)
                bar.update(len(batch))
        for round_index in range(config.rounds):
            order = np.random.default_rng([config.seed, round_index]).permutation(len(models))
            todo = [models[i] for i in order if not store.has(models[i].name, round_index)]
            for batch in _chunks(todo, config.batch_size):
                samples = device.time_batch(batch, runs=config.runs, warmup=config.call_warmup)
                if [s.name for s in samples] != [m.name for m in batch]:
                    raise RuntimeError("device returned samples for other models than asked")
                store.add(round_index, samples)
                store.save()
                if on_batch is not None:
                    on_batch(round_index, samples)
                bar.update(len(batch))
    finally:
        bar.close()


def aggregate(
    store: SampleStore, names: Sequence[str], *, percentile: float, overhead: str | None = OVERHEAD_NAME,
    reference: Reference | None = None, correct: bool = True, statistic: str = "percentile",
) -> dict[str, Measurement]:
    """One ``Measurement`` per name from its round samples, minus the overhead model's latency; with a
    ``reference`` and ``correct``, every sample (the overhead's too) is first scaled by the run's drift
    factor (without ``correct`` the reference is only recorded)."""
    factor = reference.factor if reference is not None and correct else 1.0
    recorded = None if reference is None else {**reference.as_dict(), "corrected": bool(correct)}

    def values_of(name: str, scale: float) -> np.ndarray:
        rounds = store.samples.get(name, {})
        return np.array([rounds[r]["ms"] * scale for r in sorted(rounds)], dtype=np.float64)

    def overhead_of(scale: float) -> float:
        if overhead is None:
            return 0.0
        values = values_of(overhead, scale)
        if values.size == 0:
            raise RuntimeError(f"no samples of the overhead model {overhead}")
        return round_statistic(values, statistic, percentile)

    overhead_ms, raw_overhead_ms = overhead_of(factor), overhead_of(1.0)
    out = {}
    for name in names:
        values = values_of(name, factor)
        if values.size == 0:
            raise RuntimeError(f"no samples of {name}")
        raw = round_statistic(values, statistic, percentile)
        p10, p25, p50, p75, p90 = (float(v) for v in np.percentile(values, [10, 25, 50, 75, 90]))
        rounds = store.samples[name]
        out[name] = Measurement(
            name=name,
            latency_ms=max(raw - overhead_ms, 0.0),
            raw_ms=raw,
            p10_ms=max(p10 - overhead_ms, 0.0),
            p50_ms=max(p50 - overhead_ms, 0.0),
            p90_ms=max(p90 - overhead_ms, 0.0),
            iqr_ms=p75 - p25,
            overhead_ms=overhead_ms,
            rounds=int(values.size),
            runs=int(sum(s["runs"] for s in rounds.values())),
            temperatures_c=tuple((rounds[r]["temp_before_c"], rounds[r]["temp_after_c"]) for r in sorted(rounds)),
            reference=recorded,
            uncorrected_ms=max(round_statistic(values_of(name, 1.0), statistic, percentile) - raw_overhead_ms, 0.0),
        )
    return out


def _chunks(items: list[TimedModel], size: int) -> list[list[TimedModel]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
