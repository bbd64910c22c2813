"""Calibrating a latency table on whole networks and validating the predictor on networks it never saw.

``calibrate_table`` is what ``cars-profile --calibrate N`` runs:

1. draw ``N`` random genotypes (``networks.sample_genotypes``) and add the published ones;
2. export every network whole (``networks.NetworkExporter``) and time all of them on the table's
   device with the table's protocol (``profilers.builder.time_models``: warm-up, interleaved rounds
   in a seeded shuffled order, the per-call overhead subtracted) sized for networks, which take
   milliseconds, and with the rounds' trimmed mean (``whole_network_protocol``);
3. time all of them a second time, in an independent pass with another round order: the agreement
   of the two passes is the ceiling this device's noise allows any predictor;
4. fit the calibration (``calibration.py``) on a seeded subset of the random networks only;
5. score the block sum, the calibrated prediction and the second pass against the first pass on the
   held-out networks (the rest of the random ones and every published genotype): MAPE, share within
   +-5% and +-10%, Kendall's tau (``metrics.py``; steps 4 and 5 are ``scoring.fit_and_score``);
6. store the calibration with these figures in the table's sidecar (atomically, through
   ``LatencyTable.save``) and write the report (``report.py``).

Torchvision baselines can be timed in the same session (``baselines``) so that they sit next to the
CARS models under identical conditions; they are measured only, never fitted on.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._progress import progress
from ..errors import UserInputError
from ..profilers.builder import table_settings, time_models
from ..profilers.device import Device
from ..profilers.protocol import Measurement, ProtocolConfig
from ..profilers.table import LatencyTable, TableError, lock_table, resolve_table, table_files
from ..space.genotype import Genotype
from ..space.networks import NetworkConfig
from .baselines import export_baseline
from .calibration import CALIBRATION_MODELS, Calibration, write_calibration
from .metrics import TARGETS, Agreement, meets_targets, relative_errors
from .networks import REFERENCE_GENOTYPE, NetworkExporter, Sampler, published_genotypes, sample_genotypes
from .predictor import LatencyPredictor, network_id, table_network
from .reference_state import reference_noise_pct
from .report import default_report_dir, write_report
from .scoring import Scores, fit_and_score

__all__ = [
    "ValidationConfig",
    "ValidationResult",
    "whole_network_protocol",
    "calibrate_table",
    "measure_networks",
]

_log = logging.getLogger(__name__)

def whole_network_protocol(kind: str, *, percentile: float = 20.0, **changes: Any) -> ProtocolConfig:
    """The table protocol sized for whole networks: milliseconds per call instead of microseconds, so
    fewer calls per round (``runs``) and fewer rounds; same warm-up, interleaving and overhead, and the
    trimmed mean of the rounds instead of the blocks' low percentile (``profilers/protocol.py``, 3.).
    Local: 5 warm-up calls, 20 rounds of 10 runs; phones (a runner process per model and round): 3, 6 x 10."""
    local = kind == "local"
    base = ProtocolConfig(warmup=5 if local else 3, rounds=20 if local else 6, runs=10, batch_size=16 if local else 8,
                          percentile=percentile, statistic="trimmed_mean")
    config = dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
    config.validate()
    return config


@dataclass(frozen=True)
class ValidationConfig:
    """One calibration-and-validation run (``cars-profile --calibrate N``)."""

    networks: int = 60  # random networks timed besides the published genotypes
    fit: int | None = None  # random networks the calibration is fitted on (default: half, at least 3); the rest validate
    published: bool = True  # also time every published genotype (always held out: never fitted on)
    sampler: Sampler = "spread"  # how random genotypes are drawn (see networks.py)
    model: str = "auto"  # calibration model: linear, grouped, composition, or auto (k-fold CV on the fit networks)
    repeat: bool = True  # time every network twice, in independent passes: the noise ceiling
    baselines: tuple[str, ...] = ()  # torchvision baselines timed in the same session (measured only)
    seed: int = 0  # seeds the genotypes, the fit/validation split and the round orders
    protocol: ProtocolConfig | None = None  # whole-network protocol (None: whole_network_protocol for the device)
    drift_correction: bool = True  # express timings in the table's machine state via its drift reference

    def fit_count(self) -> int:
        return self.fit if self.fit is not None else max(3, self.networks // 2)

    def validate(self) -> None:
        if self.networks < 3:
            raise UserInputError(f"--calibrate needs at least 3 random networks, got {self.networks}")
        fit = self.fit_count()
        if not 2 <= fit <= self.networks:
            raise UserInputError(f"--fit must be in 2..{self.networks} (the random networks), got {fit}")
        if fit == self.networks and not self.published:
            raise UserInputError("every network would be fitted on: lower --fit or keep the published genotypes")
        if self.model not in (*CALIBRATION_MODELS, "auto"):
            raise UserInputError(f"unknown calibration model {self.model!r}; known: {', '.join(CALIBRATION_MODELS)}, auto")


@dataclass
class ValidationResult:
    """What ``calibrate_table`` measured, fitted and scored."""

    frame: pd.DataFrame  # one row per timed network (see report.COLUMNS)
    calibration: Calibration  # the fitted calibration (stored in the sidecar when saved)
    summary: dict[str, Any]  # the figures of the report's JSON
    table: LatencyTable  # the table, with the calibration in its sidecar
    report_dir: Path | None = None  # where the report was written

    @property
    def held_out(self) -> Agreement:
        return Agreement(**self.summary["validation"]["calibrated"])


def measure_networks(
    device: Device,
    paths: Sequence[Path],
    protocol: ProtocolConfig,
    *,
    input_shapes: Sequence[Sequence[Sequence[int]]],
    cache_dir: Path,
    store_path: Path | None = None,
    show_progress: bool | None = None,
    reference_ms: float | None = None,
    drift_correction: bool = True,
    reference_network: tuple[Path, Sequence[Sequence[int]]] | None = None,
) -> dict[str, Measurement]:
    """Whole model files timed together with the table protocol (by file name), expressed in the machine
    state whose drift reference latency is ``reference_ms`` (the reference being ``reference_network``,
    a whole network, when given, else the reference block); see ``time_models``."""
    return time_models(
        device, list(paths), protocol, input_shapes=input_shapes, cache_dir=cache_dir, store_path=store_path,
        show_progress=show_progress, reference_ms=reference_ms, drift_correction=drift_correction,
        reference_network=reference_network,
    )


def calibrate_table(
    device: Device,
    table: str | Path | LatencyTable,
    config: ValidationConfig,
    *,
    cache_dir: Path,
    network: NetworkConfig | None = None,
    report_dir: Path | None = None,
    save: bool = True,
    command: str = "",
    show_progress: bool | None = None,
) -> ValidationResult:
    """Fits and validates the calibration of ``table`` for ``network`` (default: the table's network) on
    ``device``, which must be the device the table was made on; see the module docstring. With ``save``
    the calibration is stored in the table's sidecar, under the table's lock (``lock_table``) from
    before it is read; the report goes to ``report_dir`` (default: ``NAME.calibration/`` beside the table)."""
    path = table.path if isinstance(table, LatencyTable) else resolve_table(table)
    with lock_table(path) if save and path is not None else contextlib.nullcontext():
        return _calibrate_table(device, table if isinstance(table, LatencyTable) else path, config, cache_dir=cache_dir,
                                network=network, report_dir=report_dir, save=save, command=command,
                                show_progress=show_progress)


def _calibrate_table(
    device: Device, table: Path | LatencyTable, config: ValidationConfig, *, cache_dir: Path,
    network: NetworkConfig | None, report_dir: Path | None, save: bool, command: str, show_progress: bool | None,
) -> ValidationResult:
    started = time.perf_counter()
    config.validate()
    table = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
    settings = _check_settings(table, device)
    network = table_network(table, network)
    predictor = LatencyPredictor(table, network=network, calibration=None)  # MissingBlockError if incomplete
    percentile = float((table.meta.get("protocol") or {}).get("percentile", 20.0))
    protocol = config.protocol or whole_network_protocol(device.spec.kind, percentile=percentile)

    networks = _draw_networks(config, predictor)
    paths, shapes = _export(networks.genotypes, config.baselines, device, network, cache_dir, show_progress)
    timing_started = time.perf_counter()
    reference_network = NetworkExporter(cache_dir, network).reference(device.options.model_format)
    passes = _measure_passes(device, paths, shapes, protocol, config, table, cache_dir, show_progress, reference_network)
    device_minutes = round((time.perf_counter() - timing_started) / 60.0, 2)
    measured, repeat = _network_latencies(passes, paths[: len(networks.genotypes)])
    fit = np.array([role == "fit" for role in networks.roles])
    published = np.array([source == "published" for source in networks.sources])
    scores = fit_and_score(predictor, networks.genotypes, measured, repeat, fit=fit, published=published,
                           model=config.model, network=network, seed=config.seed)

    frame = _frame(networks, paths, passes, config.baselines, scores.block_sum, scores.predicted)
    if report_dir is None and table.path is not None:
        report_dir = default_report_dir(table.path)
    run = _Run(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), command=command, config=config,
        protocol=protocol, report_dir=report_dir,
        counts={"random": networks.sources.count("random"), "published": int(published.sum()), "fit": int(fit.sum()),
                "held_out": int((~fit).sum()), "baselines": len(config.baselines)},
        references=[p[paths[0].name].reference for p in passes],
        cost={"networks_timed": len(paths), "passes": len(passes), "device_minutes": device_minutes},
    )
    calibration = dataclasses.replace(scores.calibration, details=_details(run, scores))
    summary = _summary(run, scores, calibration, table, settings, network, elapsed_s=time.perf_counter() - started)
    write_calibration(table.meta, network_id(network), calibration)
    if save and table.path is not None:
        table.save(table.path)
    result = ValidationResult(frame=frame, calibration=calibration, summary=summary, table=table, report_dir=report_dir)
    if report_dir is not None:
        write_report(frame, summary, report_dir)
    return result


def _check_settings(table: LatencyTable, device: Device) -> dict[str, Any]:
    """The device's table settings; ``TableError`` unless ``table`` was made with the very same."""
    settings = table_settings(device)
    if table.meta.get("settings") != settings:
        raise TableError(
            f"latency table {table.path} was made with {table.meta.get('settings')}; calibrate it on the same "
            f"device and settings (now: {settings})"
        )
    return settings


def _network_latencies(
    passes: list[dict[str, Measurement]], paths: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The networks' latencies (ms) in the first pass and, when timed twice, in the second."""
    measured = np.array([passes[0][p.name].latency_ms for p in paths])
    repeat = np.array([passes[1][p.name].latency_ms for p in paths]) if len(passes) > 1 else None
    if not (measured > 0).all():
        raise UserInputError("a whole network measured 0 ms after subtracting the per-call overhead; time with more runs")
    return measured, repeat


@dataclass(frozen=True)
class _Run:
    """What a calibration run records beside its scores, in the sidecar and in the summary."""

    created: str  # UTC time, ISO 8601
    command: str  # the command line that ran it
    config: ValidationConfig
    protocol: ProtocolConfig  # the whole-network protocol used
    report_dir: Path | None
    counts: dict[str, int]  # random, published, fit, held-out and baseline networks
    references: list[dict[str, Any] | None]  # the drift reference of each timing pass (protocol.Reference)
    cost: dict[str, Any]  # what the calibration cost: models timed, passes, device minutes


def _details(run: _Run, scores: Scores) -> dict[str, Any]:
    """The calibration's details in the sidecar: how it was made and how well it did."""
    return {
        "created": run.created, "command": run.command, "protocol": asdict(run.protocol),
        "sampler": run.config.sampler, "seed": run.config.seed, "networks": run.counts,
        "model_selection": scores.model_selection, "residual_quantiles_pct": scores.residual_quantiles_pct,
        "validation": scores.validation, "fit": scores.fit, "reference": run.references, "cost": run.cost,
        "reference_ms": run.references[0]["base_ms"] if run.references and run.references[0] else None,
        "reference_model": REFERENCE_GENOTYPE,
        "reference_noise_pct": reference_noise_pct(run.references[0] if run.references else None, run.protocol),
        "report": str(run.report_dir) if run.report_dir is not None else None,
    }


def _summary(
    run: _Run, scores: Scores, calibration: Calibration, table: LatencyTable, settings: dict[str, Any],
    network: NetworkConfig, *, elapsed_s: float,
) -> dict[str, Any]:
    """The figures of the report's ``summary.json`` (and of ``ValidationResult.summary``)."""
    stored = ("model", "groups", "coef", "intercept", "edge_counts", "ridge", "table_fingerprint", "fitted_on")
    return {
        "table": str(table.path) if table.path is not None else None,
        "settings": settings,
        "device": table.meta.get("device", {}),
        "network": network_id(network),
        "network_config": asdict(network),
        "protocol": asdict(run.protocol),
        "sampler": run.config.sampler,
        "seed": run.config.seed,
        "networks": run.counts,
        "calibration": {k: v for k, v in calibration.to_dict().items() if k in stored},
        "model_selection": scores.model_selection,
        "residual_quantiles_pct": scores.residual_quantiles_pct, "uncertainty_pm90_pct": calibration.uncertainty_pct(90),
        "reference": run.references,
        "cost": run.cost,
        "validation": scores.validation,
        "validation_by_source": scores.by_source,
        "fit": scores.fit,
        "targets": dict(TARGETS),
        "meets_targets": meets_targets(scores.validation["calibrated"]),
        "created": run.created,
        "command": run.command,
        "report": str(run.report_dir) if run.report_dir is not None else None,
        "elapsed_s": round(elapsed_s, 2),
    }


@dataclass(frozen=True)
class _Networks:
    """The genotypes of one validation run, with their names, origin and role."""

    names: list[str]  # random-000 ... then the published names
    genotypes: list[Genotype]
    sources: list[str]  # "random" or "published"
    roles: list[str]  # "fit" or "validate" (published genotypes always validate)


def _draw_networks(config: ValidationConfig, predictor: LatencyPredictor) -> _Networks:
    """``config.networks`` random genotypes (distinct from each other and the published ones; spread over
    the uncalibrated ``predictor``'s block sum by default), a seeded subset of which is fitted on, then
    the published genotypes."""
    rng = np.random.default_rng([config.seed, 0x1A7E])
    published = published_genotypes() if config.published else {}
    randoms = sample_genotypes(config.networks, rng, sampler=config.sampler, exclude=list(published.values()),
                               cost=predictor.block_sum)
    fit_rows = set(rng.permutation(len(randoms))[: config.fit_count()].tolist())
    return _Networks(
        names=[f"random-{i:03d}" for i in range(len(randoms))] + list(published),
        genotypes=randoms + list(published.values()),
        sources=["random"] * len(randoms) + ["published"] * len(published),
        roles=["fit" if i in fit_rows else "validate" for i in range(len(randoms))] + ["validate"] * len(published),
    )


def _export(
    genotypes: list[Genotype], baselines: Sequence[str], device: Device, network: NetworkConfig, cache_dir: Path,
    show_progress: bool | None,
) -> tuple[list[Path], list[list[tuple[int, ...]]]]:
    """Model files (the device's format) and input shapes of the networks, then of the baselines."""
    fmt = device.options.model_format
    exporter = NetworkExporter(cache_dir, network)
    bar = progress(genotypes, desc="exporting networks", unit="net",
                   **({} if show_progress is None else {"disable": not show_progress}))
    paths = [exporter.export(genotype, fmt) for genotype in bar]
    shapes: list[list[tuple[int, ...]]] = [[exporter.input_shape()] for _ in paths]
    for name in baselines:
        paths.append(export_baseline(name, fmt, cache_dir, input_size=network.input_size))
        shapes.append([(1, 3, network.input_size, network.input_size)])
    return paths, shapes


def _measure_passes(
    device: Device, paths: list[Path], shapes: list[list[tuple[int, ...]]], protocol: ProtocolConfig,
    config: ValidationConfig, table: LatencyTable, cache_dir: Path, show_progress: bool | None,
    reference_network: tuple[Path, Sequence[Sequence[int]]],
) -> list[dict[str, Measurement]]:
    """One or two independent passes of the protocol over all models, each with its own round order.

    The drift reference of whole networks is a whole network (``REFERENCE_GENOTYPE`` at the calibrated
    size), timed in every round: the first pass is expressed in its own machine state (the reference's
    latency in it becomes the calibration's ``reference_ms``), the second in the first's, and
    ``--verify-on`` later in the same. Whole networks are never related to the block table's reference,
    which is timed among microsecond blocks: the calibration's slope already maps the table's state onto
    this session's, and the small reference block's latency differs between those two contexts by more
    (up to 15% measured) than the drift it is there to remove; nor to the block itself, which stays in
    the L2 cache and misses slowdowns that cost memory-bound networks more (a VM that slowed networks by
    13% slowed the block by 5.9%). Samples are kept beside the table while a pass runs, so a killed pass
    resumes."""
    count = 2 if config.repeat else 1
    csv = table_files(table.path)[0] if table.path is not None else None
    passes: list[dict[str, Measurement]] = []
    reference_ms: float | None = None
    for index in range(count):
        store = csv.with_name(f"{csv.stem}.calibration-pass{index + 1}.partial.json") if csv is not None else None
        pass_protocol = dataclasses.replace(protocol, seed=protocol.seed + 1000 * index + config.seed)
        _log.info("timing %d whole models on %s, pass %d of %d", len(paths), device.spec, index + 1, count)
        passes.append(measure_networks(device, paths, pass_protocol, input_shapes=shapes, cache_dir=cache_dir,
                                       store_path=store, show_progress=show_progress,
                                       reference_ms=reference_ms, drift_correction=config.drift_correction,
                                       reference_network=reference_network))
        recorded = passes[0][paths[0].name].reference
        reference_ms = float(recorded["base_ms"]) if recorded else None
    return passes


def _frame(
    networks: _Networks, paths: list[Path], passes: list[dict[str, Measurement]], baselines: Sequence[str],
    block_sum: np.ndarray, predicted: np.ndarray,
) -> pd.DataFrame:
    """One row per timed model: the networks (predicted and measured), then the baselines (measured only)."""
    rows = []
    entries = [(name, source, role, str(g)) for name, source, role, g in
               zip(networks.names, networks.sources, networks.roles, networks.genotypes)]
    entries += [(name, "baseline", "baseline", "") for name in baselines]
    for i, ((name, source, role, genotype), path) in enumerate(zip(entries, paths)):
        first = passes[0][path.name]
        in_space = i < len(networks.genotypes)
        rows.append({
            "name": name, "source": source, "role": role,
            "block_sum_ms": block_sum[i] if in_space else np.nan, "predicted_ms": predicted[i] if in_space else np.nan,
            "measured_ms": first.latency_ms, "measured_p10_ms": first.p10_ms, "measured_p90_ms": first.p90_ms,
            "measured_iqr_ms": first.iqr_ms, "measured_uncorrected_ms": first.uncorrected_ms, "repeat_ms": passes[1][path.name].latency_ms if len(passes) > 1 else np.nan,
            "genotype": genotype, "model_file": path.name,
        })
    frame = pd.DataFrame(rows)
    frame["error_pct"] = relative_errors(frame["predicted_ms"], frame["measured_ms"])
    frame["block_sum_error_pct"] = relative_errors(frame["block_sum_ms"], frame["measured_ms"])
    frame["repeat_error_pct"] = relative_errors(frame["repeat_ms"], frame["measured_ms"])
    return frame
