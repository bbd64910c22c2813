"""The profiling driver: enumerate a network's blocks, export them, time them, write the latency table.

``build_table`` is what ``cars-profile --out`` runs. It is resumable at two levels: blocks already in
the table are never timed again (a rerun with more networks only adds their new blocks), and the
round samples of an unfinished run live in ``NAME.partial.json`` (see ``protocol.SampleStore``) so a
killed run continues where it stopped. Rows are written only once all their rounds are in, through
``LatencyTable.with_rows``, which never duplicates a block. The existing table is untouched until the
final atomic write, so an error midway leaves it as it was. One process at a time builds a table: the
build holds the table's lock (``table.lock_table``), and a second one is refused at once, naming it.

``time_model`` is what ``cars-profile --model`` runs: one whole model under the same protocol;
``time_models`` times many whole models interleaved (the latency predictor's validation networks).
"""
from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserInputError
from ..formats import ONNX, timing_export_formats
from ..space.networks import NetworkConfig
from .blocks import EMPTY_KEY, BlockKey, block_input_shapes, network_blocks
from .device import Device, TimedModel
from .export_blocks import BlockExporter
from .protocol import (
    NETWORK_REFERENCE_NAME,
    REFERENCE_KEY,
    REFERENCE_NAME,
    Measurement,
    ProtocolConfig,
    SampleStore,
    aggregate,
    drift_reference,
    measure,
)
from .table import FORMAT, LatencyTable, TableError, lock_table, table_files

__all__ = ["ProfileConfig", "BuildReport", "build_table", "time_model", "time_models", "table_settings", "partial_path"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileConfig:
    """What ``build_table`` profiles and where it writes."""

    out: Path  # table base path: NAME -> NAME.csv + NAME.json (+ NAME.partial.json while running)
    networks: tuple[NetworkConfig, ...]  # networks whose blocks are profiled
    protocol: ProtocolConfig  # warm-up, rounds, runs, percentile, batching
    cache_dir: Path  # exported block models, reused across runs
    command: str = ""  # the command line, recorded in the sidecar
    drift_correction: bool = True  # scale samples by the drift reference's factor (protocol.py, step 5)


@dataclass(frozen=True)
class BuildReport:
    """What one ``build_table`` call did."""

    table: LatencyTable  # the table as written (or as found, when nothing was missing)
    new_blocks: int  # rows added by this call
    elapsed_s: float  # wall time of the call
    overhead_ms: float | None  # per-call overhead subtracted from the new rows (None: nothing timed)
    resumed_samples: int = 0  # round samples taken over from an interrupted run
    events: dict[str, Any] = field(default_factory=dict)  # reconnects, cooldown waits


def table_settings(device: Device) -> dict[str, Any]:
    """The settings a table's rows depend on; every row of a table shares them."""
    options = device.options
    runner = Path(options.runner_path).name if options.runner_path is not None else None
    if device.spec.kind != "local" and runner is None:
        runner = "on-device"
    return {
        "device": str(device.spec),
        "runtime": options.runtime,
        "threads": options.threads,
        "cpu_mask": format(options.cpu_mask, "x") if options.cpu_mask is not None else None,
        "runner": runner,
    }


def partial_path(out: Path) -> Path:
    csv, _ = table_files(out)
    return csv.with_name(csv.stem + ".partial.json")


def build_table(device: Device, config: ProfileConfig, *, show_progress: bool | None = None) -> BuildReport:
    """Times every block of ``config.networks`` missing from the table at ``config.out`` and writes it,
    holding the table's lock."""
    with lock_table(config.out, also=(partial_path(config.out),)):
        return _build_table(device, config, show_progress=show_progress)


def _build_table(device: Device, config: ProfileConfig, *, show_progress: bool | None) -> BuildReport:
    started = time.perf_counter()
    settings = table_settings(device)
    csv, sidecar = table_files(config.out)
    if csv.exists() and not sidecar.exists() and partial_path(config.out).exists():
        # A CSV without its sidecar beside the samples of a run: an older cars-deploy killed between the two
        # writes. The samples are all still there, so the table is made again from them.
        _log.warning("%s has no sidecar (a save was killed); it is rebuilt from %s", csv, partial_path(config.out).name)
        csv.unlink()
    existing = LatencyTable.load(csv) if csv.exists() else None
    if existing is not None and existing.meta.get("settings") != settings:
        old = existing.meta.get("settings", {})
        changed = ", ".join(f"{k}={old.get(k)!r}" for k in settings if old.get(k) != settings[k])
        raise TableError(f"{csv} was made with other settings ({changed}); write this profile to another --out")
    keys: list[BlockKey] = []
    for network in config.networks:
        network.validate()
        keys.extend(k for k in network_blocks(network) if k not in keys)
    todo = [k for k in keys if existing is None or k not in existing]
    networks_meta = [asdict(n) for n in config.networks]
    if not todo:
        _log.info("%s already has all %d blocks; nothing to time", csv, len(keys))
        table = existing if existing is not None else LatencyTable.empty()
        return BuildReport(table=table, new_blocks=0, elapsed_s=time.perf_counter() - started, overhead_ms=None)

    exporter = BlockExporter(config.cache_dir)
    fmt = device.options.model_format
    extra = [EMPTY_KEY] + ([REFERENCE_KEY] if REFERENCE_KEY not in todo else [])  # probes timed in every round
    models = [TimedModel(k.id, exporter.export(k, fmt), block_input_shapes(k)) for k in todo + extra]
    protocol = config.protocol
    store = SampleStore.open(
        partial_path(config.out),
        {**settings, "runs": protocol.runs, "call_warmup": protocol.call_warmup, "seed": protocol.seed, "format": fmt},
    )
    resumed = store.count()
    began = _now()
    temps_start = device.temperatures()
    measure(device, models, protocol, store, show_progress=show_progress)
    temps_end = device.temperatures()
    # New rows are expressed in the state of the table's first build (its reference base), or define it.
    stored_base = ((existing.meta.get("reference") or {}).get("base_ms") if existing is not None else None)
    reference = drift_reference(store, percentile=protocol.percentile, base_ms=stored_base, statistic=protocol.statistic)
    measurements = aggregate(store, [k.id for k in todo], percentile=protocol.percentile, statistic=protocol.statistic,
                             reference=reference, correct=config.drift_correction)
    rows = [_row(key, measurements[key.id]) for key in todo]
    overhead = measurements[todo[0].id].overhead_ms
    events = device.events()

    table = (existing or LatencyTable.empty()).with_rows(rows)
    table.meta = _sidecar(
        existing.meta if existing is not None else None,
        device=device, settings=settings, protocol=protocol, networks=networks_meta, store=store, todo=todo,
        measurements=measurements, overhead=overhead, temps=(temps_start, temps_end), events=events,
        run={"started": began, "finished": _now(), "elapsed_s": round(time.perf_counter() - started, 3),
             "new_blocks": len(todo), "resumed_samples": resumed, "command": config.command, "host": platform.node(),
             "reference": measurements[todo[0].id].reference},
    )
    table.save(config.out)
    store.delete()
    return BuildReport(
        table=table, new_blocks=len(todo), elapsed_s=time.perf_counter() - started, overhead_ms=overhead,
        resumed_samples=resumed, events=events,
    )


def time_models(
    device: Device,
    paths: Sequence[Path],
    protocol: ProtocolConfig,
    *,
    input_shapes: Sequence[Sequence[Sequence[int]] | None] | None = None,
    cache_dir: Path,
    store_path: Path | None = None,
    show_progress: bool | None = None,
    reference_ms: float | None = None,
    drift_correction: bool = True,
    reference_network: tuple[Path, Sequence[Sequence[int]]] | None = None,
) -> dict[str, Measurement]:
    """Whole models (all ``.onnx``, all ``.ptl`` or all ``.pte``) timed together with the table protocol:
    interleaved rounds over all of them and the overhead probe, overhead subtracted (none is exported
    for ``.pte``, whose results keep it). Results by file name. ``input_shapes`` gives each model's
    input shapes (None: read from the ONNX file). With ``store_path`` the samples are kept there, so a
    long validation that dies resumes like a table does. The drift reference is timed in every round
    (where the probe is) and results are expressed in the state whose reference latency is
    ``reference_ms`` (a table's ``meta["reference"]["base_ms"]``; None: this run's own), unless
    ``drift_correction`` is off; each Measurement records the reference. ``reference_network`` (a model
    file in the same format and its input shapes) replaces the reference block by a whole network:
    the reference of whole-network timings (``latency.validation``)."""
    paths = [Path(p) for p in paths]
    if not paths:
        return {}
    for path in paths:
        if not path.is_file():
            raise UserInputError(f"model file {path} not found")
    names = [p.name for p in paths]
    if len(set(names)) != len(names) or {EMPTY_KEY.id, REFERENCE_NAME, NETWORK_REFERENCE_NAME} & {p.stem for p in paths}:
        raise UserInputError("models timed together need distinct file names (and none named like the overhead probe "
                             "or the drift reference)")
    suffixes = {p.suffix.lower() for p in paths}
    if len(suffixes) != 1:
        raise UserInputError(f"models timed together must share one format, got {', '.join(sorted(suffixes))}")
    shapes_per_model = list(input_shapes) if input_shapes is not None else [None] * len(paths)
    models = [
        TimedModel(path.name, path, tuple(tuple(int(d) for d in s) for s in (shapes or _onnx_input_shapes(path))))
        for path, shapes in zip(paths, shapes_per_model)
    ]
    overhead: str | None = None
    suffix = suffixes.pop()
    # The probe is an exported block, so models get one only in a format blocks are written in.
    probe_format = next((fmt for fmt in timing_export_formats() if fmt.suffix == suffix), None)
    if probe_format is not None:
        probe = BlockExporter(cache_dir).export(EMPTY_KEY, probe_format.name)
        models.append(TimedModel(EMPTY_KEY.id, probe, block_input_shapes(EMPTY_KEY)))
        overhead = EMPTY_KEY.id
        if reference_network is None:
            reference_model = BlockExporter(cache_dir).export(REFERENCE_KEY, probe_format.name)
            models.append(TimedModel(REFERENCE_NAME, reference_model, block_input_shapes(REFERENCE_KEY)))
        else:
            network_file, network_shapes = reference_network
            models.append(TimedModel(NETWORK_REFERENCE_NAME, Path(network_file),
                                     tuple(tuple(int(d) for d in shape) for shape in network_shapes)))
    settings = {**table_settings(device), "runs": protocol.runs, "call_warmup": protocol.call_warmup, "seed": protocol.seed}
    store = SampleStore.open(store_path, settings)
    measure(device, models, protocol, store, show_progress=show_progress)
    reference_name = REFERENCE_NAME if reference_network is None else NETWORK_REFERENCE_NAME
    reference = (drift_reference(store, percentile=protocol.percentile, base_ms=reference_ms, name=reference_name,
                                 statistic=protocol.statistic)
                 if overhead is not None else None)
    results = aggregate(store, names, percentile=protocol.percentile, statistic=protocol.statistic, overhead=overhead,
                        reference=reference, correct=drift_correction)
    store.delete()
    return results


def time_model(
    device: Device, path: Path, protocol: ProtocolConfig, *, input_shapes: Sequence[Sequence[int]] | None,
    cache_dir: Path, show_progress: bool | None = None, reference_ms: float | None = None,
    drift_correction: bool = True, reference_network: tuple[Path, Sequence[Sequence[int]]] | None = None,
) -> Measurement:
    """One whole model timed with the table protocol (see ``time_models``)."""
    return time_models(device, [path], protocol, input_shapes=[input_shapes], cache_dir=cache_dir,
                       show_progress=show_progress, reference_ms=reference_ms, drift_correction=drift_correction,
                       reference_network=reference_network)[Path(path).name]


def _onnx_input_shapes(path: Path) -> list[tuple[int, ...]]:
    if path.suffix.lower() != ONNX.suffix:
        raise UserInputError(f"give --input-shape for {path.name} (only ONNX models carry their input shapes)")
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends for non-ONNX files
        raise UserInputError(f"{path} is not a readable ONNX model: {exc}") from None
    initializers = {i.name for i in graph.initializer}
    shapes = []
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if any(d.dim_value <= 0 for d in dims):
            raise UserInputError(f"{path.name} input {value.name!r} has a dynamic shape; give --input-shape")
        shapes.append(tuple(d.dim_value for d in dims))
    return shapes


def _row(key: BlockKey, m: Measurement) -> dict[str, Any]:
    return {**key.as_dict(), "latency_ms": m.latency_ms, "p10_ms": m.p10_ms, "p50_ms": m.p50_ms, "p90_ms": m.p90_ms,
            "iqr_ms": m.iqr_ms, "overhead_ms": m.overhead_ms, "rounds": m.rounds, "runs": m.runs}


def _sidecar(
    old: dict[str, Any] | None, *, device: Device, settings: dict[str, Any], protocol: ProtocolConfig,
    networks: list[dict[str, Any]], store: SampleStore, todo: list[BlockKey], measurements: dict[str, Measurement],
    overhead: float, temps: tuple[dict[str, float], dict[str, float]], events: dict[str, Any], run: dict[str, Any],
) -> dict[str, Any]:
    """The sidecar after this run: what was there, plus this run's blocks, samples and conditions."""
    meta: dict[str, Any] = dict(old or {})
    meta["format"] = FORMAT
    meta["settings"] = settings
    meta["device"] = device.facts()
    meta["protocol"] = asdict(protocol)
    meta["networks"] = list(meta.get("networks", [])) + [n for n in networks if n not in meta.get("networks", [])]
    meta["overhead_ms"] = overhead
    samples = dict(meta.get("samples_ms", {}))
    per_block = dict(meta.get("temperatures", {}).get("per_block", {}))
    for key in todo:
        samples[key.id] = [float(f"{v:.7g}") for v in store.values(key.id)]
        temperatures = measurements[key.id].temperatures_c
        if any(t is not None for pair in temperatures for t in pair):  # a host without sensors records none
            per_block[key.id] = [list(pair) for pair in temperatures]
    samples[EMPTY_KEY.id] = [float(f"{v:.7g}") for v in store.values(EMPTY_KEY.id)]
    samples[REFERENCE_NAME] = [float(f"{v:.7g}") for v in store.values(REFERENCE_NAME)]
    # The state every row is expressed in: set by the first build, kept by later ones (see protocol.py).
    reference = measurements[todo[0].id].reference or {}
    meta.setdefault("reference", {"model": REFERENCE_NAME, "base_ms": reference.get("base_ms"),
                                  "percentile": protocol.percentile, "corrected": reference.get("corrected")})
    meta["samples_ms"] = samples
    meta["temperatures"] = {"start": temps[0], "end": temps[1], "per_block": per_block}
    meta["events"] = events
    meta["runs"] = list(meta.get("runs", [])) + [run]
    meta.setdefault("created", run["started"])
    meta["updated"] = run["finished"]
    meta.setdefault("calibration", None)
    return meta


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
