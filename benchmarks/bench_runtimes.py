"""One genotype set, three runtimes: do ONNX Runtime, PyTorch Lite and ExecuTorch (XNNPACK) agree on which
model is faster, and can one runtime's latency table stand for another's?

For each runtime (``cars-profile --runtime``: onnxruntime, pytorch-lite, executorch) the script builds a
host latency table as ``cars-profile --device local --runtime R`` does and calibrates it on ``--calibrate``
random whole networks (skipped when the table is already calibrated, resumed when it is half built),
then exports the same ``--networks`` seeded random networks to the three formats and times them with the
whole-network protocol (``latency.validation.measure_networks``; samples stored as they come, so a killed
run resumes). It writes to ``--out`` (default benchmarks/results/runtimes):

- ``measurements.csv``: one row per network: genotype, measured latency per runtime, predicted latency of
  every table;
- ``summary.json``: Kendall tau between the runtimes' measurements (rank agreement), and for each table
  and each runtime its prediction error (MAPE, median APE) and Kendall tau against that runtime's
  measurements - the diagonal is the table's own runtime, the rest says whether it can stand for another.

Each runtime's measurements are saved as soon as they are complete (``measured-RUNTIME.csv``), so a rerun
only times what is missing. The full run, on a quiet machine (it is not timed here)::

    .venv/bin/python benchmarks/bench_runtimes.py --networks 30 --calibrate 30

A smoke run at a tiny size (a 3-cell network, 3 networks)::

    .venv/bin/python benchmarks/bench_runtimes.py --network cifar --C 4 --layers 3 --input-size 8 \\
        --networks 3 --calibrate 4 --rounds 2 --runs 3 --out /tmp/runtimes
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from cars_deploy.formats import format_for_runtime, timing_export_formats
from cars_deploy.latency.networks import NetworkExporter, genotype_hash, sample_genotypes
from cars_deploy.latency.predictor import LatencyPredictor
from cars_deploy.latency.reference_state import table_reference_ms
from cars_deploy.latency.validation import ValidationConfig, calibrate_table, measure_networks, whole_network_protocol
from cars_deploy.profilers.builder import ProfileConfig
from cars_deploy.profilers.builder import build_table as build
from cars_deploy.profilers.device import DeviceOptions
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.profilers.table import LatencyTable
from cars_deploy.space import NetworkConfig, parse_genotype

RUNTIMES: tuple[str, ...] = tuple(fmt.runtime for fmt in timing_export_formats())
ROOT = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=("imagenet", "cifar"), default="imagenet")
    parser.add_argument("--C", type=int, help="initial channels (default: the network's)")
    parser.add_argument("--layers", type=int, help="cells (default: the network's)")
    parser.add_argument("--input-size", type=int, help="input side (default: the network's)")
    parser.add_argument("--networks", type=int, default=30, help="random networks timed in every runtime (default 30)")
    parser.add_argument("--calibrate", type=int, default=12,
                        help="whole networks each table is calibrated on (default 12, small; 30-60 for the full run)")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--rounds", type=int, help="whole-network protocol rounds (default: the local protocol's)")
    parser.add_argument("--runs", type=int, help="calls per round (default: the local protocol's)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every runtime (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the networks (default 0)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "runtimes")
    parser.add_argument("--cache-dir", type=Path, help="export cache (default: the profilers' user cache)")
    return parser


def network_config(args: argparse.Namespace) -> NetworkConfig:
    base = NetworkConfig.imagenet() if args.network == "imagenet" else NetworkConfig.cifar()
    changes = {k: v for k, v in (("C", args.C), ("layers", args.layers), ("input_size", args.input_size)) if v is not None}
    network = replace(base, **changes)
    network.validate()
    return network


def build_table(args: argparse.Namespace, runtime: str, network: NetworkConfig) -> Path:
    """The calibrated host table of ``runtime``: blocks profiled as ``cars-profile --device local --runtime
    RUNTIME`` does (resumed when half built), then calibrated on ``--calibrate`` random whole networks
    (without the published genotypes or the repeat pass of ``cars-profile --calibrate``: the benchmark's
    own networks are the held-out set). Skipped when the table is already calibrated."""
    path = args.out / "tables" / runtime
    csv = path.with_suffix(".csv")
    if csv.exists() and LatencyPredictor.load(csv, network=network).calibrated:
        return csv
    cache = args.cache_dir or _default_cache()
    protocol = ProtocolConfig.for_device("local", **_protocol_changes(args))
    calibration = ValidationConfig(
        networks=args.calibrate, published=False, repeat=False, seed=args.seed + 1,
        protocol=whole_network_protocol("local", **_protocol_changes(args)),
    )
    device = open_device("local", DeviceOptions(runtime=runtime, threads=args.threads))
    try:
        build(device, ProfileConfig(out=path, networks=(network,), protocol=protocol, cache_dir=cache,
                                    command=f"bench_runtimes.py --runtime {runtime}"))
        calibrate_table(device, csv, calibration, cache_dir=cache, network=network, report_dir=path.with_name(f"{runtime}.calibration"))
    finally:
        device.close()
    return csv


def _protocol_changes(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("rounds", args.rounds), ("runs", args.runs), ("seed", args.seed)) if v is not None}


def measure(args: argparse.Namespace, runtime: str, network: NetworkConfig, genotypes: Sequence, table: Path) -> pd.DataFrame:
    """Measured whole-network latency of ``genotypes`` in ``runtime``, expressed in the machine state of
    ``runtime``'s table (its drift reference, as ``--verify-on`` does) and also uncorrected; saved, and
    reused by a rerun against the same table."""
    path = args.out / f"measured-{runtime}.csv"
    hashes = [genotype_hash(g) for g in genotypes]
    base_ms = table_reference_ms(LatencyTable.load(table))
    if path.exists():
        saved = pd.read_csv(path)
        if saved["hash"].tolist() == hashes and "table_reference_ms" in saved and saved["table_reference_ms"].iloc[0] == base_ms:
            return saved
    cache = args.cache_dir or _default_cache()
    exporter = NetworkExporter(cache, network)
    fmt = format_for_runtime(runtime).name
    paths = [exporter.export(g, fmt) for g in genotypes]
    protocol = whole_network_protocol("local", **_protocol_changes(args))
    device = open_device("local", DeviceOptions(runtime=runtime, threads=args.threads))
    try:
        results = measure_networks(device, paths, protocol, input_shapes=[[exporter.input_shape()]] * len(paths),
                                   cache_dir=cache, store_path=args.out / f".samples-{runtime}.jsonl", reference_ms=base_ms)
    finally:
        device.close()
    frame = pd.DataFrame({"hash": hashes, "latency_ms": [results[p.name].latency_ms for p in paths],
                          "uncorrected_ms": [results[p.name].uncorrected_ms for p in paths],
                          "table_reference_ms": base_ms,
                          "drift_pct": results[paths[0].name].reference["drift_pct"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return frame


def summarise(measured: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> dict:
    """Kendall tau between runtimes, and each table's error and rank agreement on every runtime."""
    runtimes = list(measured)
    tau = {f"{a} vs {b}": float(kendalltau(measured[a], measured[b]).statistic)
           for i, a in enumerate(runtimes) for b in runtimes[i + 1:]}
    tables = {}
    for table, prediction in predicted.items():
        tables[table] = {}
        for runtime in runtimes:
            ape = np.abs(prediction - measured[runtime]) / measured[runtime] * 100
            tables[table][runtime] = {
                "mape_pct": float(ape.mean()),
                "median_ape_pct": float(np.median(ape)),
                "kendall_tau": float(kendalltau(prediction, measured[runtime]).statistic),
            }
    return {"networks": int(len(next(iter(measured.values())))), "kendall_tau_between_runtimes": tau,
            "table_on_runtime": tables,
            "mean_latency_ms": {r: float(np.mean(v)) for r, v in measured.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.networks < 3:
        raise SystemExit("--networks must be at least 3 (Kendall tau needs a few points)")
    args.out.mkdir(parents=True, exist_ok=True)
    network = network_config(args)
    genotypes_path = args.out / "genotypes.json"
    if genotypes_path.exists():
        saved = json.loads(genotypes_path.read_text())
        genotypes = [parse_genotype(text) for text in saved["genotypes"]]
        if saved["seed"] != args.seed or len(genotypes) != args.networks:
            raise SystemExit(f"{genotypes_path} holds another genotype set (seed/networks); use another --out")
    else:
        genotypes = sample_genotypes(args.networks, np.random.default_rng(args.seed))
        genotypes_path.write_text(json.dumps({"seed": args.seed, "genotypes": [str(g) for g in genotypes]}, indent=1))
    tables = {runtime: build_table(args, runtime, network) for runtime in args.runtimes}
    frames = {runtime: measure(args, runtime, network, genotypes, tables[runtime]) for runtime in args.runtimes}
    measured = {runtime: frame["latency_ms"].to_numpy() for runtime, frame in frames.items()}
    predicted = {runtime: LatencyPredictor.load(path, network=network).predict(genotypes) for runtime, path in tables.items()}
    frame = pd.DataFrame({"genotype": [str(g) for g in genotypes], "hash": [genotype_hash(g) for g in genotypes]})
    for runtime in args.runtimes:
        frame[f"measured_{runtime}_ms"] = measured[runtime]
        frame[f"measured_{runtime}_uncorrected_ms"] = frames[runtime]["uncorrected_ms"].to_numpy()
    for runtime in args.runtimes:
        frame[f"predicted_{runtime}_table_ms"] = predicted[runtime]
    frame.to_csv(args.out / "measurements.csv", index=False)
    summary = {"network": asdict(network), "seed": args.seed, "calibrate": args.calibrate, "threads": args.threads,
               "tables": {r: str(p) for r, p in tables.items()},
               "drift_pct_since_table": {r: float(f["drift_pct"].iloc[0]) for r, f in frames.items()},
               **summarise(measured, predicted)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["kendall_tau_between_runtimes"]))
    return 0


def _default_cache() -> Path:
    from cars_deploy.profilers.export_blocks import default_cache_dir

    return default_cache_dir()


if __name__ == "__main__":
    sys.exit(main())
