"""Profiling benchmark: wall time to build the host latency table of the ImageNet mobile network.

Runs the real command, ``cars-profile --device local --runtime onnxruntime --threads 1 --out ...``, in
a fresh interpreter (so the figure includes starting Python, importing torch and ONNX Runtime,
exporting every block to ONNX and timing them with the full protocol: warm-up, 50 interleaved rounds
of 100 runs per block, 20th percentile, overhead subtracted), first with an empty export cache (a
first use) and then with the cache filled (a rebuild). The issue's target: under one minute.

Besides the wall time it reports the table's size, the per-call overhead subtracted and the spread
of the measurements (median over blocks of the inter-quartile range relative to the latency), and,
as a sanity check of the table, the raw block sum of the published genotypes.

A smoke run at a tiny size proves the script works (seconds)::

    .venv/bin/python benchmarks/bench_profile.py --network cifar --C 4 --layers 3 --input-size 8 --rounds 2 --runs 5

The figure for BENCHMARKS.md, on a quiet machine::

    .venv/bin/python benchmarks/bench_profile.py --json bench_profile.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cars_deploy.profilers.blocks import block_index  # noqa: E402
from cars_deploy.profilers.table import LatencyTable  # noqa: E402
from cars_deploy.space import GENOTYPES, NetworkConfig  # noqa: E402


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("imagenet", "cifar"), default="imagenet")
    parser.add_argument("--C", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--rounds", type=int, help="protocol rounds (default: cars-profile's)")
    parser.add_argument("--runs", type=int, help="runs per round (default: cars-profile's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="also copy the built table to this base path")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    return parser.parse_args()


def _build(args: argparse.Namespace, out: Path, cache: Path) -> float:
    argv = [sys.executable, "-m", "cars_deploy.cli.profile", "--device", "local", "--runtime", "onnxruntime",
            "--threads", str(args.threads), "--network", args.network, "--out", str(out), "--cache-dir", str(cache)]
    for flag, value in (("--C", args.C), ("--layers", args.layers), ("--input-size", args.input_size),
                        ("--rounds", args.rounds), ("--runs", args.runs)):
        if value is not None:
            argv += [flag, str(value)]
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    args = _parse()
    changes = {k: v for k, v in (("C", args.C), ("layers", args.layers), ("input_size", args.input_size)) if v is not None}
    config = NetworkConfig.imagenet(**changes) if args.network == "imagenet" else NetworkConfig.cifar(**changes)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
        tmp = Path(folder)
        cold = _build(args, tmp / "cold", tmp / "cache")
        warm = _build(args, tmp / "warm", tmp / "cache")
        table = LatencyTable.load(tmp / "warm")
        if args.keep is not None:
            table.save(args.keep)
    frame = table.frame
    index = block_index(config)
    latencies = table.vector(index.keys, config=config)
    names = [n for n in GENOTYPES.names() if n.startswith(("CARS_", "DARTS"))]
    sums = index.block_sum(np.stack([GENOTYPES.get(n).encode() for n in names]), latencies)
    result: dict[str, Any] = {
        "network": f"{config.kind} C={config.C} layers={config.layers} input={config.input_size}",
        "blocks": len(table),
        "cold_cache_s": round(cold, 2),
        "warm_cache_s": round(warm, 2),
        "build_table_s": table.meta["runs"][-1]["elapsed_s"],  # export + timing, without interpreter start
        "protocol": table.meta["protocol"],
        "overhead_ms": table.meta["overhead_ms"],
        "median_relative_iqr": float(np.median(frame["iqr_ms"] / frame["latency_ms"].clip(lower=1e-6))),
        "block_sum_ms": {n: round(float(s), 3) for n, s in zip(names, sums)},
        "cpu": table.meta["device"].get("cpu_model"),
    }
    print(f"{result['network']}: {result['blocks']} blocks; build {cold:.1f} s with an empty export cache, "
          f"{warm:.1f} s with it filled (target: under 60 s)")
    print(f"per-call overhead {result['overhead_ms']:.4f} ms; median IQR/latency {result['median_relative_iqr']:.3f}")
    print("raw block sums (ms): " + ", ".join(f"{n} {s:.2f}" for n, s in result["block_sum_ms"].items()))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
