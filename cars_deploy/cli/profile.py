"""``cars-profile``: time every block of the search space on a device and write a latency table,
or time one whole model (``--model``).

    cars-profile --device local --runtime onnxruntime --threads 1 --out latency_tables/host-cpu-imagenet-ort1
    cars-profile --device adb:192.168.1.20:5555 --runner ./onnxruntime_perf_test --cpu-mask f0 --out latency_tables/p30
    cars-profile --device local --model model.onnx
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

from ..errors import UserInputError
from ..profilers.builder import ProfileConfig, build_table, time_model
from ..profilers.device import DeviceOptions, open_device, parse_cpu_mask, parse_device_spec
from ..profilers.export_blocks import default_cache_dir
from ..profilers.protocol import ProtocolConfig
from ..space.networks import NetworkConfig
from ._common import CliParser, run_command

__all__ = ["main"]

_SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".ort": "onnxruntime", ".ptl": "pytorch-lite", ".pt": "pytorch-lite", ".pte": "executorch"}


def _parser() -> CliParser:
    parser = CliParser(
        prog="cars-profile",
        description="Time every block of the CARS search space on a device (the host CPU or an Android phone "
        "over ADB) and write a latency table, or time one whole model with --model.",
    )
    parser.add_argument("--device", required=True, metavar="SPEC", help="local, adb:SERIAL (USB) or adb:HOST:PORT (TCP)")
    parser.add_argument("--runtime", choices=("onnxruntime", "pytorch-lite"), default="onnxruntime",
                        help="model format and runtime for the blocks (default: onnxruntime)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", metavar="PATH", help="table to write or extend: PATH.csv + PATH.json (e.g. latency_tables/NAME)")
    what.add_argument("--model", metavar="FILE", help="time one whole model (.onnx, .ptl, .pte) instead of blocks")
    net = parser.add_argument_group("network whose blocks are profiled")
    net.add_argument("--network", choices=("imagenet", "cifar"), default="imagenet", help="default: imagenet (C=48, 14 cells, 224x224)")
    net.add_argument("--C", type=int, help="initial channels (default: 48 imagenet, 36 cifar)")
    net.add_argument("--layers", type=int, help="number of cells (default: 14 imagenet, 20 cifar)")
    net.add_argument("--input-size", type=int, help="input side in pixels (default: 224 imagenet, 32 cifar)")
    net.add_argument("--classes", type=int, help="classifier outputs (default: 1000 imagenet, 10 cifar)")
    run = parser.add_argument_group("how models run")
    run.add_argument("--threads", type=int, help="intra-op threads (default: 1, or one per CPU of --cpu-mask)")
    run.add_argument("--cpu-mask", metavar="HEX", help="pin to these CPUs (taskset mask, e.g. f0 for four big cores)")
    run.add_argument("--runner", type=Path, metavar="PATH", help="vendor benchmark binary (onnxruntime_perf_test, "
                     "speed_benchmark_torch, executor_runner): pushed to phones, run as-is locally")
    run.add_argument("--input-shape", action="append", metavar="N,C,H,W", help="--model input shape (repeat per input; "
                     "ONNX models carry theirs; default for .ptl/.pte: 1,3,SIZE,SIZE of --network)")
    protocol = parser.add_argument_group("measurement protocol (defaults: local 20/50/100, adb 10/10/50)")
    protocol.add_argument("--warmup", type=int, help="untimed calls per model before the first round")
    protocol.add_argument("--rounds", type=int, help="interleaved rounds over all models")
    protocol.add_argument("--runs", type=int, help="timed calls per model in each round")
    protocol.add_argument("--percentile", type=float, help="low percentile of the round samples reported (default 20)")
    protocol.add_argument("--batch-size", type=int, help="models per device call (default: local 64, adb 16)")
    protocol.add_argument("--seed", type=int, help="seed of the per-round order (default 0)")
    adb = parser.add_argument_group("ADB and device conditions")
    adb.add_argument("--adb-key", type=Path, metavar="PATH", help="ADB private key (default: created under the user config dir)")
    adb.add_argument("--cooldown-above", type=float, metavar="CELSIUS",
                     help="wait before a batch while the hottest thermal zone is above this (default: 50 on phones, "
                     "off locally; 0 disables)")
    adb.add_argument("--cooldown-max", type=float, default=120.0, metavar="SECONDS", help="longest cooldown wait (default 120)")
    adb.add_argument("--read-timeout", type=float, default=900.0, metavar="SECONDS", help="longest silence of a running batch (default 900)")
    adb.add_argument("--reconnect-attempts", type=int, default=5, help="reconnections after a dropped connection (default 5)")
    parser.add_argument("--cache-dir", type=Path, help="exported block models (default: the user cache dir)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def _network(args: argparse.Namespace) -> NetworkConfig:
    changes = {k: v for k, v in (("C", args.C), ("layers", args.layers), ("input_size", args.input_size), ("num_classes", args.classes)) if v is not None}
    config = NetworkConfig.imagenet(**changes) if args.network == "imagenet" else NetworkConfig.cifar(**changes)
    try:
        config.validate()
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    return config


def _options(args: argparse.Namespace, runtime: str, kind: str) -> DeviceOptions:
    mask = parse_cpu_mask(args.cpu_mask) if args.cpu_mask is not None else None
    threads = args.threads if args.threads is not None else (bin(mask).count("1") if mask is not None else 1)
    if args.reconnect_attempts < 0:
        raise UserInputError("--reconnect-attempts must not be negative")
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
    if model.suffix.lower() == ".onnx":
        return None
    return [(1, network.in_channels, network.input_size, network.input_size)]


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    spec = parse_device_spec(args.device)
    network = _network(args)
    protocol = ProtocolConfig.for_device(
        spec.kind, warmup=args.warmup, rounds=args.rounds, runs=args.runs, percentile=args.percentile,
        batch_size=args.batch_size, seed=args.seed,
    )
    cache_dir = args.cache_dir or default_cache_dir()
    if args.model is not None:
        model = Path(args.model)
        runtime = _SUFFIX_RUNTIME.get(model.suffix.lower())
        if runtime is None:
            raise UserInputError(f"--model {model.name}: expected a .onnx, .ptl or .pte file")
        if not model.is_file():
            raise UserInputError(f"model file {model} not found")
        shapes = _input_shapes(args, model, network)
        device = open_device(spec, _options(args, runtime, spec.kind))
        try:
            result = time_model(device, model, protocol, input_shapes=shapes, cache_dir=cache_dir)
        finally:
            device.close()
        report = {"model": str(model), "device": str(spec), "latency_ms": result.latency_ms, "raw_ms": result.raw_ms,
                  "p10_ms": result.p10_ms, "p50_ms": result.p50_ms, "p90_ms": result.p90_ms, "iqr_ms": result.iqr_ms,
                  "overhead_ms": result.overhead_ms, "rounds": result.rounds, "runs": result.runs}
        if args.json:
            print(json.dumps(report))
        else:
            overhead = (f"overhead {result.overhead_ms:.4f} ms subtracted" if model.suffix.lower() != ".pte"
                        else "no overhead probe for .pte, nothing subtracted")
            print(f"{model.name} on {spec}: {result.latency_ms:.4f} ms (p10 {result.p10_ms:.4f}, p50 {result.p50_ms:.4f}, "
                  f"p90 {result.p90_ms:.4f}; {overhead}; {result.rounds} rounds, {result.runs} runs)")
        return 0

    config = ProfileConfig(
        out=Path(args.out), networks=(network,), protocol=protocol, cache_dir=cache_dir,
        command=" ".join(["cars-profile", *(shlex.quote(a) for a in argv)]),
    )
    device = open_device(spec, _options(args, args.runtime, spec.kind))
    try:
        report = build_table(device, config)
    finally:
        device.close()
    table = report.table
    summary = {"table": str(table.path or args.out), "blocks": len(table), "new_blocks": report.new_blocks,
               "resumed_samples": report.resumed_samples, "elapsed_s": round(report.elapsed_s, 2), "overhead_ms": report.overhead_ms,
               "reconnects": len(report.events.get("reconnects", []))}
    if args.json:
        print(json.dumps(summary))
    elif report.new_blocks == 0:
        print(f"{summary['table']}: all {len(table)} blocks already timed; nothing to do")
    else:
        print(f"{summary['table']}: {report.new_blocks} blocks timed on {spec} in {report.elapsed_s:.1f} s "
              f"({len(table)} rows; per-call overhead {report.overhead_ms:.4f} ms subtracted)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    return run_command("cars-profile", lambda args: _run(args, raw), _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
