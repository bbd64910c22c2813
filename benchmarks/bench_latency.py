"""Latency predictor benchmarks: prediction speed, and the validation against whole measured networks.

Three sub-commands:

``speed``: genotypes scored per second by ``LatencyPredictor.predict`` on the ImageNet host table,
from integer encodings (how a search holds a population) and from ``Genotype`` objects (what the
search's cost function receives); the issue's target is >= 10,000 genotypes per second. Seconds::

    .venv/bin/python benchmarks/bench_latency.py speed

``validate``: the issue's "must show" on this machine's CPU: runs the real command
``cars-profile --device local --out TABLE --calibrate N --baselines --json`` in a fresh interpreter
(the table is completed first if blocks are missing, then N random networks plus the 18 published
genotypes and torchvision's MobileNetV2, MNASNet 1.0 and ShuffleNetV2 x2.0 are exported and timed
twice with the table protocol, the calibration is fitted on N/2 random networks and validated on
the others), then prints the held-out figures next to the repeat-measurement ceiling and the
BENCHMARKS.md table of CARS_Lat_A..G and CARS_A..I (measured and predicted) beside the baselines.
On a quiet machine (about 6 minutes; exported networks are cached for reruns)::

    .venv/bin/python benchmarks/bench_latency.py validate --networks 60 --json bench_latency.json

A smoke run at a tiny size (a throw-away table of the smallest network; seconds)::

    .venv/bin/python benchmarks/bench_latency.py validate --smoke

``table``: only the BENCHMARKS.md table, from a report folder written earlier by ``--calibrate``::

    .venv/bin/python benchmarks/bench_latency.py table latency_tables/host-cpu-imagenet-ort1.calibration
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
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

import pandas as pd  # noqa: E402

from cars_deploy.latency import LatencyPredictor  # noqa: E402
from cars_deploy.latency.report import format_summary  # noqa: E402
from cars_deploy.space import random_genotype  # noqa: E402

DEFAULT_TABLE = "latency_tables/host-cpu-imagenet-ort1"
SMOKE_NETWORK = ["--network", "cifar", "--C", "4", "--layers", "3", "--input-size", "8"]
#: The rows of the BENCHMARKS.md table, in order: the paper's Table 2 / Figure 1 models.
MODELS = [f"CARS_Lat_{c}" for c in "ABCDEFG"] + [f"CARS_{c}" for c in "ABCDEFGHI"]
BASELINES = ["mobilenet_v2", "mnasnet1_0", "shufflenet_v2_x2_0"]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", help="genotypes scored per second")
    speed.add_argument("--table", default=DEFAULT_TABLE)
    speed.add_argument("--genotypes", type=int, default=100_000, help="population size scored per call")
    speed.add_argument("--repeats", type=int, default=5)
    speed.add_argument("--json", type=Path)
    validate = sub.add_parser("validate", help="calibrate and validate on whole measured networks")
    validate.add_argument("--table", default=DEFAULT_TABLE, help="table base path (completed first if blocks are missing)")
    validate.add_argument("--networks", type=int, default=60, help="random networks (plus the 18 published genotypes)")
    validate.add_argument("--fit", type=int, help="random networks fitted on (default: a third)")
    validate.add_argument("--model", choices=("linear", "grouped", "auto"), default="linear", help="calibration model")
    validate.add_argument("--smoke", action="store_true", help="tiny throw-away run proving the script works")
    validate.add_argument("--json", type=Path, help="write the summary and the table rows as JSON here")
    table = sub.add_parser("table", help="the BENCHMARKS.md table from a report folder")
    table.add_argument("report", type=Path, help="a --calibrate report folder (networks.csv, summary.json)")
    return parser.parse_args()


# ----- speed --------------------------------------------------------------------------------------
def _speed(args: argparse.Namespace) -> dict[str, Any]:
    predictor = LatencyPredictor.load(args.table)
    rng = np.random.default_rng(0)
    genotypes = [random_genotype(rng) for _ in range(args.genotypes)]
    codes = np.stack([g.encode() for g in genotypes])
    predictor.predict(codes[:10])  # builds the per-group edge weights once, as a search's first call does

    def rate(batch: Any) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.predict(batch)
            times.append(time.perf_counter() - start)
        return args.genotypes / statistics.median(times)

    result = {
        "table": str(predictor.table.path),
        "network": predictor.describe()["network"],
        "calibrated": predictor.calibrated,
        "population": args.genotypes,
        "encoded_per_s": rate(codes),
        "genotype_objects_per_s": rate(genotypes),
        "single_genotype_us": _single(predictor, genotypes[0]),
    }
    print(f"{result['table']} ({result['network']}, calibrated: {result['calibrated']}), population {args.genotypes:,}:")
    print(f"  from encodings:        {result['encoded_per_s']:>14,.0f} genotypes/s")
    print(f"  from Genotype objects: {result['genotype_objects_per_s']:>14,.0f} genotypes/s")
    print(f"  one genotype per call: {result['single_genotype_us']:>14.1f} us")
    return result


def _single(predictor: LatencyPredictor, genotype: Any) -> float:
    times = []
    for _ in range(200):
        start = time.perf_counter()
        predictor.predict(genotype)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


# ----- validate -----------------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            table, networks, extra = str(Path(tmp) / "smoke"), 4, [*SMOKE_NETWORK, "--rounds", "2", "--runs", "5",
                                                                  "--calibration-rounds", "2", "--calibration-runs", "2"]
        else:
            table, networks, extra = args.table, args.networks, []
        argv = [sys.executable, "-m", "cars_deploy.cli.profile", "--device", "local", "--runtime", "onnxruntime",
                "--threads", "1", "--out", table, "--calibrate", str(networks), "--calibration-model", args.model,
                "--baselines", "--json", *extra]
        if args.fit is not None or args.smoke:
            argv += ["--fit", str(args.fit if args.fit is not None else 3)]
        print("running:", " ".join(argv[2:]).replace("cars_deploy.cli.profile", "cars-profile"), flush=True)
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(done.returncode)
        summary = json.loads(done.stdout)["calibration"]
        rows = pd.read_csv(Path(summary["report"]) / "networks.csv")
    print(f"{elapsed:.0f} s in all")
    print(format_summary(summary))
    markdown = benchmarks_table(rows, summary)
    print(markdown)
    return {"elapsed_s": elapsed, "summary": summary, "markdown": markdown,
            "rows": rows[rows["name"].isin(MODELS + BASELINES)].to_dict(orient="records")}


def benchmarks_table(rows: pd.DataFrame, summary: dict[str, Any]) -> str:
    """The BENCHMARKS.md table: measured and predicted latency of the CARS models, the baselines measured."""
    by_name = rows.set_index("name")
    lines = [
        f"Latency on {summary['settings']['device']} ({summary['device'].get('cpu_model', 'CPU')}, "
        f"{summary['settings']['runtime']}, {summary['settings']['threads']} thread), {summary['network']}, batch 1; "
        f"measured = {summary['protocol']['percentile']:g}th percentile of {summary['protocol']['rounds']} interleaved rounds, "
        f"per-call overhead subtracted; predicted = calibrated block sum ({summary['calibration']['model']}).",
        "",
        "| model | measured (ms) | predicted (ms) | error | 2nd measurement (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in MODELS + BASELINES:
        if name not in by_name.index:
            continue
        row = by_name.loc[name]
        predicted = "n/a (not in the space)" if name in BASELINES else f"{row['predicted_ms']:.2f}"
        error = "" if name in BASELINES else f"{row['error_pct']:+.1f}%"
        repeat = "" if _missing(row["repeat_ms"]) else f"{row['repeat_ms']:.2f}"
        lines.append(f"| {name} | {row['measured_ms']:.2f} | {predicted} | {error} | {repeat} |")
    held = summary["validation"]["calibrated"]
    ceiling = summary["validation"].get("repeat")
    raw = summary["validation"]["block_sum"]
    lines += ["", f"Held-out networks: {held['n']} ({summary['networks']['published']} published, "
              f"{summary['networks']['held_out'] - summary['networks']['published']} random; fitted on "
              f"{summary['networks']['fit']} other random networks)."]
    lines += ["", "| held-out agreement with the measurement | MAPE | within 5% | within 10% | Kendall tau |",
              "|---|---:|---:|---:|---:|"]
    comparisons = (("calibrated prediction", held), ("raw block sum", raw), ("2nd measurement (noise ceiling)", ceiling))
    for label, figures in comparisons:
        if figures:
            lines.append(f"| {label} | {figures['mape_pct']:.1f}% | {figures['within_5'] * 100:.0f}% | "
                         f"{figures['within_10'] * 100:.0f}% | {figures['kendall_tau']:.3f} |")
    return "\n".join(lines)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def main() -> int:
    args = _parse()
    if args.command == "speed":
        result = _speed(args)
    elif args.command == "validate":
        result = _validate(args)
    else:
        summary = json.loads((args.report / "summary.json").read_text())
        result = {"markdown": benchmarks_table(pd.read_csv(args.report / "networks.csv"), summary)}
        print(format_summary(summary))
        print(result["markdown"])
    if getattr(args, "json", None):
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
