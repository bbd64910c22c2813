"""``cars-profile``: time every block of the search space on a device and write a latency table,
calibrate the latency predictor on whole networks (``--calibrate N``), or time one whole model
(``--model``: a file, or a torchvision baseline by name).

    cars-profile --device local --runtime onnxruntime --threads 1 --out latency_tables/host-cpu-imagenet-ort1
    cars-profile --device local --out latency_tables/host-cpu-imagenet-ort1 --calibrate 60
    cars-profile --device adb:192.168.1.20:5555 --runner ./onnxruntime_perf_test --cpu-mask f0 --out latency_tables/p30
    cars-profile --device adb:R58M1 --device adb:192.168.1.21:5555 --runner ./onnxruntime_perf_test --out latency_tables/lab
    cars-profile --device local --model model.onnx
    cars-profile --device local --model mobilenet_v2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserInputError
from ..formats import ONNX, format_for_runtime, format_for_suffix, suffix_choices, timing_export_formats
from ..latency.baselines import BASELINES, export_baseline, is_baseline
from ..latency.networks import NetworkExporter
from ..latency.predictor import table_network
from ..latency.reference_state import PredictionReference, prediction_reference
from ..latency.report import format_summary
from ..latency.validation import ValidationConfig, calibrate_table, whole_network_protocol
from ..profilers.builder import ProfileConfig, build_table, partial_path, time_model
from ..profilers.device import DeviceOptions, parse_cpu_mask, parse_device_spec
from ..profilers.devices import open_device
from ..profilers.export_blocks import default_cache_dir
from ..profilers.protocol import ProtocolConfig
from ..profilers.table import LatencyTable, lock_table, table_files
from ..space.networks import NETWORK_KINDS, NetworkConfig
from . import _numbers as N
from ._common import CliParser, out_folder, out_prefix, run_command

__all__ = ["main"]


def _parser() -> CliParser:
    parser = CliParser(
        prog="cars-profile",
        description="Time every block of the CARS search space on a device (the host CPU or an Android phone "
        "over ADB) and write a latency table, or time one whole model with --model.",
    )
    parser.add_argument("--device", required=True, action="append", metavar="SPEC",
                        help="local, adb:SERIAL (USB) or adb:HOST:PORT (TCP); repeat it to profile several phones at "
                        "once, one table each (--out NAME gives NAME-<device>.csv/.json)")
    parser.add_argument("--runtime", choices=[fmt.runtime for fmt in timing_export_formats()], default=ONNX.runtime,
                        help="model format and runtime for the blocks (default: onnxruntime)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=out_prefix, metavar="PATH", help="table to write or extend: PATH.csv + PATH.json (e.g. latency_tables/NAME)")
    what.add_argument("--model", metavar="FILE|NAME", help="time one whole model (.onnx, .ptl, .pte) instead of blocks, or "
                      "a torchvision baseline by name (mobilenet_v2, mnasnet1_0, shufflenet_v2_x2_0; random weights, "
                      "exported like the blocks, input --input-size or 224)")
    net = parser.add_argument_group("network whose blocks are profiled")
    net.add_argument("--network", choices=NETWORK_KINDS, default="imagenet", help="default: imagenet (C=48, 14 cells, 224x224)")
    net.add_argument("--C", type=N.CHANNELS, help="initial channels (default: 48 imagenet, 36 cifar)")
    net.add_argument("--layers", type=N.LAYERS, help="number of cells (default: 14 imagenet, 20 cifar)")
    net.add_argument("--input-size", type=N.INPUT_SIZE, help="input side in pixels (default: 224 imagenet, 32 cifar)")
    net.add_argument("--classes", type=N.CLASSES, help="classifier outputs (default: 1000 imagenet, 10 cifar)")
    run = parser.add_argument_group("how models run")
    run.add_argument("--threads", type=N.THREADS, help="intra-op threads (default: 1, or one per CPU of --cpu-mask)")
    run.add_argument("--cpu-mask", metavar="HEX", help="pin to these CPUs (taskset mask, e.g. f0 for four big cores)")
    run.add_argument("--runner", type=Path, metavar="PATH", help="vendor benchmark binary (onnxruntime_perf_test, "
                     "speed_benchmark_torch, executor_runner): pushed to phones, run as-is locally")
    run.add_argument("--input-shape", action="append", metavar="N,C,H,W", help="--model input shape (repeat per input; "
                     "ONNX models carry theirs; default for .ptl/.pte: 1,3,SIZE,SIZE of --network)")
    protocol = parser.add_argument_group("measurement protocol (defaults: local 20/50/100, adb 10/10/50)")
    protocol.add_argument("--warmup", type=N.COUNT0, help="untimed calls per model before the first round (blocks, and "
                          "whole networks with --calibrate; default for those: local 5, adb 3)")
    protocol.add_argument("--rounds", type=N.COUNT, help="interleaved rounds over all models")
    protocol.add_argument("--runs", type=N.COUNT, help="timed calls per model in each round")
    protocol.add_argument("--percentile", type=N.PERCENTILE, help="low percentile of the round samples reported (default 20)")
    protocol.add_argument("--batch-size", type=N.BATCH, help="models per device call (default: local 64, adb 16)")
    protocol.add_argument("--seed", type=N.SEED, help="seed of the per-round order (default 0)")
    protocol.add_argument("--no-drift-correction", dest="drift_correction", action="store_false",
                          help="record the drift reference timed in every round but do not scale the samples by it "
                          "(default: results are expressed in the machine state the table was built in)")
    protocol.add_argument("--reference-table", metavar="TABLE", help="with --model: express the result in the machine "
                          "state TABLE was built in (its drift reference; default: this run's own state)")
    adb = parser.add_argument_group("ADB and device conditions")
    adb.add_argument("--adb-key", type=Path, metavar="PATH", help="ADB private key (default: created under the user config dir)")
    adb.add_argument("--cooldown-above", type=N.NON_NEGATIVE, metavar="CELSIUS",
                     help="wait before a batch while the hottest thermal zone is above this (default: 50 on phones, "
                     "off locally; 0 disables)")
    adb.add_argument("--cooldown-max", type=N.NON_NEGATIVE, default=120.0, metavar="SECONDS", help="longest cooldown wait (default 120)")
    adb.add_argument("--read-timeout", type=N.SECONDS, default=900.0, metavar="SECONDS", help="longest silence of a running batch (default 900)")
    adb.add_argument("--reconnect-attempts", type=N.RECONNECTS, default=5, help="reconnections after a dropped connection (default 5)")
    cal = parser.add_argument_group("calibration of the latency predictor (with --out; see cars_deploy.latency)")
    cal.add_argument("--calibrate", type=N.COUNT, metavar="N", help="after the table: time N random whole networks plus the "
                     "published genotypes (twice, for the noise ceiling), fit the calibration on part of the random ones, "
                     "validate on the rest, store it in the sidecar and write a report (CSV, JSON, scatter PNG)")
    cal.add_argument("--fit", type=N.COUNT, metavar="K", help="random networks the calibration is fitted on (default: N/2)")
    cal.add_argument("--calibration-model", choices=("linear", "grouped", "composition", "auto"), default="auto",
                     help="linear: a*block_sum+b; grouped: one slope per op family; composition: linear plus a ridge "
                     "residual per op and cell kind; auto (default): chosen by 5-fold CV on the fit networks")
    cal.add_argument("--calibration-rounds", type=N.COUNT, metavar="R", help="interleaved rounds over the whole networks "
                     "(default: local 20, adb 6)")
    cal.add_argument("--calibration-runs", type=N.COUNT, metavar="R", help="timed calls per network and round (default 10)")
    cal.add_argument("--baselines", action="store_true", help="also time torchvision's mobilenet_v2, mnasnet1_0 and "
                     "shufflenet_v2_x2_0 in the same session (measured only; listed in the report)")
    cal.add_argument("--report", type=out_folder, metavar="DIR", help="report folder (default: PATH.calibration/ beside the table)")
    parser.add_argument("--cache-dir", type=out_folder, help="exported block models (default: the user cache dir)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def _network(args: argparse.Namespace) -> NetworkConfig:
    changes = {k: v for k, v in (("C", args.C), ("layers", args.layers), ("input_size", args.input_size), ("num_classes", args.classes)) if v is not None}
    config = NetworkConfig.imagenet(**changes) if args.network == "imagenet" else NetworkConfig.cifar(**changes)
    config.validate()
    return config


def _reference(table_name: str, fmt: str, cache_dir: Path) -> tuple[PredictionReference, Any]:
    """``--reference-table``: the state that table's predictions describe (its calibration's, for the
    network it was made for, else its own: reference latency and statistic) and the reference network
    to time for it (None: the reference block), so a model timed now compares with those predictions."""
    table = LatencyTable.load(table_name)
    network = table_network(table)
    reference = prediction_reference(table, network)
    return reference, NetworkExporter(cache_dir, network).reference(fmt) if reference.network else None


def _options(args: argparse.Namespace, runtime: str, kind: str) -> DeviceOptions:
    mask = parse_cpu_mask(args.cpu_mask) if args.cpu_mask is not None else None
    threads = args.threads if args.threads is not None else (bin(mask).count("1") if mask is not None else 1)
    return DeviceOptions(
        runtime=runtime,
        threads=threads,
        cpu_mask=mask,
        runner_path=args.runner,
        key_path=args.adb_key,
        read_timeout_s=args.read_timeout,
        reconnect_attempts=args.reconnect_attempts,
        cooldown_above_c=_cooldown(args.cooldown_above, kind),
        cooldown_max_s=args.cooldown_max,
    )


def _cooldown(value: float | None, kind: str) -> float | None:
    """Phones throttle when hot, so they cool down before batches by default; a desktop CPU idles warm
    and its drift is handled by the protocol, so locally the wait is off unless asked for."""
    if value is None:
        return 50.0 if kind == "adb" else None
    return value if value > 0 else None


def _input_shapes(args: argparse.Namespace, model: Path, network: NetworkConfig) -> list[tuple[int, ...]] | None:
    if args.input_shape:
        shapes = []
        for text in args.input_shape:
            try:
                shape = tuple(int(v) for v in text.split(","))
            except ValueError:
                raise UserInputError(f"--input-shape {text!r} is not comma-separated integers such as 1,3,224,224") from None
            if not shape or any(v <= 0 for v in shape):
                raise UserInputError(f"--input-shape {text!r} must be positive integers")
            shapes.append(shape)
        return shapes
    if model.suffix.lower() == ONNX.suffix:
        return None
    return [(1, network.in_channels, network.input_size, network.input_size)]


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if len(args.device) > 1:
        return _run_devices(args, argv)
    args.device = args.device[0]
    spec = parse_device_spec(args.device)
    network = _network(args)
    protocol = ProtocolConfig.for_device(
        spec.kind, warmup=args.warmup, rounds=args.rounds, runs=args.runs, percentile=args.percentile,
        batch_size=args.batch_size, seed=args.seed,
    )
    cache_dir = args.cache_dir or default_cache_dir()
    calibration = _calibration_config(args, spec.kind, protocol)
    if args.reference_table is not None and args.model is None:
        raise UserInputError("--reference-table: only with --model (a table build or calibration uses its own table)")
    if args.model is not None:
        model = Path(args.model)
        if not model.exists() and is_baseline(args.model):
            fmt = format_for_runtime(args.runtime).name
            model = export_baseline(args.model, fmt, cache_dir, input_size=args.input_size or 224)
        model_format = format_for_suffix(model.suffix)
        if model_format is None:
            raise UserInputError(f"--model {model.name}: expected a {suffix_choices()} file, or a baseline name "
                                 f"({', '.join(BASELINES.names())})")
        if not model.is_file():
            raise UserInputError(f"model file {model} not found")
        shapes = _input_shapes(args, model, network)
        reference, reference_network = (_reference(args.reference_table, model_format.name, cache_dir)
                                        if args.reference_table else (None, None))
        if reference is not None:
            protocol = dataclasses.replace(protocol, statistic=reference.statistic)
        device = open_device(spec, _options(args, model_format.runtime, spec.kind))
        try:
            result = time_model(device, model, protocol, input_shapes=shapes, cache_dir=cache_dir,
                                drift_correction=args.drift_correction,
                                reference_ms=reference.ms if reference is not None else None,
                                reference_network=reference_network)
        finally:
            device.close()
        report = {"model": str(model), "device": str(spec), "latency_ms": result.latency_ms, "raw_ms": result.raw_ms,
                  "p10_ms": result.p10_ms, "p50_ms": result.p50_ms, "p90_ms": result.p90_ms, "iqr_ms": result.iqr_ms,
                  "overhead_ms": result.overhead_ms, "rounds": result.rounds, "runs": result.runs,
                  "reference": result.reference}
        if args.json:
            print(json.dumps(report))
        else:
            overhead = f"overhead {result.overhead_ms:.4f} ms subtracted"
            print(f"{model.name} on {spec}: {result.latency_ms:.4f} ms (p10 {result.p10_ms:.4f}, p50 {result.p50_ms:.4f}, "
                  f"p90 {result.p90_ms:.4f}; {overhead}; {result.rounds} rounds, {result.runs} runs)")
        return 0

    config = ProfileConfig(
        out=Path(args.out), networks=(network,), protocol=protocol, cache_dir=cache_dir,
        command=" ".join(["cars-profile", *(shlex.quote(a) for a in argv)]), drift_correction=args.drift_correction,
    )
    # The table's lock for the whole job (build, then calibration): a second run is refused before any connection.
    with lock_table(config.out, also=(partial_path(config.out),)):
        device = open_device(spec, _options(args, args.runtime, spec.kind))
        try:
            report = build_table(device, config)
            validation = None
            if calibration is not None:
                validation = calibrate_table(device, table_files(args.out)[0], calibration, cache_dir=cache_dir,
                                             network=network, report_dir=args.report, command=config.command)
        finally:
            device.close()
    table = report.table
    summary = {"table": str(table.path or args.out), "blocks": len(table), "new_blocks": report.new_blocks,
               "resumed_samples": report.resumed_samples, "elapsed_s": round(report.elapsed_s, 2), "overhead_ms": report.overhead_ms,
               "reconnects": len(report.events.get("reconnects", []))}
    if validation is not None:
        summary["calibration"] = validation.summary
    if args.json:
        print(json.dumps(_json_safe(summary)))
        return 0
    if report.new_blocks == 0:
        print(f"{summary['table']}: all {len(table)} blocks already timed; nothing to do")
    else:
        print(f"{summary['table']}: {report.new_blocks} blocks timed on {spec} in {report.elapsed_s:.1f} s "
              f"({len(table)} rows; per-call overhead {report.overhead_ms:.4f} ms subtracted)")
    if validation is not None:
        print(format_summary(validation.summary))
    return 0


def _calibration_config(args: argparse.Namespace, kind: str, protocol: ProtocolConfig) -> ValidationConfig | None:
    """The ``--calibrate`` settings, checked before anything is timed (None without ``--calibrate``)."""
    given = [flag for flag, value in (("--fit", args.fit), ("--calibration-rounds", args.calibration_rounds),
                                      ("--calibration-runs", args.calibration_runs), ("--report", args.report))
             if value is not None] + (["--baselines"] if args.baselines else [])
    if args.calibrate is None:
        if given:
            raise UserInputError(f"{', '.join(given)}: only with --calibrate N")
        return None
    if args.out is None:
        raise UserInputError("--calibrate calibrates a table: give it with --out PATH")
    config = ValidationConfig(
        networks=args.calibrate, fit=args.fit, model=args.calibration_model, drift_correction=args.drift_correction,
        baselines=tuple(BASELINES.names()) if args.baselines else (), seed=args.seed or 0,
        protocol=whole_network_protocol(kind, percentile=protocol.percentile, warmup=args.warmup,
                                        rounds=args.calibration_rounds, runs=args.calibration_runs),
    )
    config.validate()
    return config


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _run_devices(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Several ``--device``: each profiled concurrently into its own table ``OUT-<device>``
    (``profilers.multi``); a failing device is one line on stderr and does not stop the others."""
    from ..profilers.multi import DeviceJob, exit_code, profile_devices, table_path_for

    if args.out is None:
        raise UserInputError("several --device options build one table each: give --out NAME (tables NAME-<device>); "
                             "--model times one device at a time")
    if getattr(args, "calibrate", None) is not None:
        raise UserInputError("--calibrate works on one device at a time; calibrate each device's table with its own command")
    specs = [parse_device_spec(text) for text in args.device]
    network = _network(args)
    cache_dir = args.cache_dir or default_cache_dir()
    command = " ".join(["cars-profile", *(shlex.quote(a) for a in argv)])
    jobs = []
    for spec in specs:
        protocol = ProtocolConfig.for_device(
            spec.kind, warmup=args.warmup, rounds=args.rounds, runs=args.runs, percentile=args.percentile,
            batch_size=args.batch_size, seed=args.seed,
        )
        config = ProfileConfig(out=table_path_for(args.out, spec), networks=(network,), protocol=protocol,
                               cache_dir=cache_dir, command=command, drift_correction=args.drift_correction)
        jobs.append(DeviceJob(spec=spec, options=_options(args, args.runtime, spec.kind), config=config))
    outcomes = profile_devices(jobs)
    summaries = []
    for outcome in outcomes:
        csv = table_files(outcome.out)[0]
        if outcome.report is None:
            summaries.append({"device": str(outcome.spec), "table": str(csv), "error": outcome.error})
            continue
        report = outcome.report
        summaries.append({"device": str(outcome.spec), "table": str(report.table.path or csv), "blocks": len(report.table),
                          "new_blocks": report.new_blocks, "resumed_samples": report.resumed_samples,
                          "elapsed_s": round(report.elapsed_s, 2), "overhead_ms": report.overhead_ms,
                          "reconnects": len(report.events.get("reconnects", []))})
    if args.json:
        print(json.dumps(_json_safe({"devices": summaries})))
    else:
        for outcome, summary in zip(outcomes, summaries):
            report = outcome.report
            if report is None:
                continue
            if report.new_blocks == 0:
                print(f"{summary['table']}: all {summary['blocks']} blocks already timed on {outcome.spec}; nothing to do")
            else:
                print(f"{summary['table']}: {report.new_blocks} blocks timed on {outcome.spec} in {report.elapsed_s:.1f} s "
                      f"({summary['blocks']} rows; per-call overhead {report.overhead_ms:.4f} ms subtracted)")
    sys.stdout.flush()
    for outcome in outcomes:
        if not outcome.ok:
            print(f"cars-profile: error: {outcome.spec}: {outcome.error}", file=sys.stderr)
    return exit_code(outcomes)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    return run_command("cars-profile", lambda args: _run(args, raw), _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
