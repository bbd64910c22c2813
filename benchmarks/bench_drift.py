"""The drift the reference removes: the same networks timed in two machine states, with and without it.

A table's calibrated predictions describe the machine state its calibration was measured in. This
benchmark times the 18 published genotypes' whole networks against such a table (the host table of
``--latency-table local`` by default) in two states of this VM: ``quiet`` (nothing else running) and
``loaded`` (a second process streaming 256 MB arrays through memory on the other core, as a busy
phone or a noisy neighbour would), each with the whole reference network in every round, as
``--verify-on`` does. Every timing is kept both ways: expressed in the calibration's state (corrected)
and as measured (uncorrected), and scored against the predictions.

    .venv/bin/python benchmarks/bench_drift.py

Writes ``benchmarks/results/drift/``: ``measurements.csv`` (one row per network and state) and
``summary.json`` (per state: the reference's drift, MAPE and bias against the predictions with and
without the correction).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from cars_deploy._io import atomic_write_text  # noqa: E402
from cars_deploy.latency.host import ensure_host_table  # noqa: E402
from cars_deploy.latency.metrics import relative_errors  # noqa: E402
from cars_deploy.latency.networks import NetworkExporter, published_genotypes  # noqa: E402
from cars_deploy.latency.predictor import LatencyPredictor  # noqa: E402
from cars_deploy.latency.reference_state import prediction_reference  # noqa: E402
from cars_deploy.latency.validation import measure_networks, whole_network_protocol  # noqa: E402
from cars_deploy.latency.verify import options_from_table  # noqa: E402
from cars_deploy.profilers.devices import open_device  # noqa: E402
from cars_deploy.profilers.export_blocks import default_cache_dir  # noqa: E402
from cars_deploy.profilers.table import LatencyTable  # noqa: E402
from cars_deploy.space.networks import NetworkConfig  # noqa: E402

#: The load of the "loaded" state: copies of a 256 MB array, forever, in a second process.
LOAD_SCRIPT = "import numpy as np\na = np.ones(2**25)\nwhile True:\n    b = a.copy()\n"


def time_state(table: LatencyTable, network: NetworkConfig, names: list[str], *, loaded: bool) -> pd.DataFrame:
    """The published networks timed once against ``table``'s calibration state, with a background load
    or without: latency corrected into that state and uncorrected, per network."""
    reference = prediction_reference(table, network)
    exporter = NetworkExporter(default_cache_dir(), network)
    genotypes = published_genotypes(names)
    paths = [exporter.export(genotypes[name], "onnx") for name in names]
    protocol = dataclasses.replace(whole_network_protocol("local"), statistic=reference.statistic)
    load = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT]) if loaded else None
    device = open_device("local", options_from_table(table.meta))
    try:
        if load is not None:
            time.sleep(3)  # the load reaches its steady state
        results = measure_networks(device, paths, protocol, input_shapes=[[exporter.input_shape()]] * len(paths),
                                   cache_dir=default_cache_dir(), show_progress=False, reference_ms=reference.ms,
                                   reference_network=exporter.reference("onnx") if reference.network else None)
    finally:
        device.close()
        if load is not None:
            load.kill()
            load.wait()
    rows = []
    for name, path in zip(names, paths):
        m = results[path.name]
        rows.append({"state": "loaded" if loaded else "quiet", "network": name, "corrected_ms": m.latency_ms,
                     "uncorrected_ms": m.uncorrected_ms, "reference_drift_pct": m.reference["drift_pct"]})
    return pd.DataFrame(rows)


def score(frame: pd.DataFrame) -> dict[str, Any]:
    """Per state: the reference's drift, and MAPE / mean error of the predictions against the corrected
    and the uncorrected timings."""
    out: dict[str, Any] = {}
    for state, part in frame.groupby("state", sort=False):
        entry: dict[str, Any] = {"reference_drift_pct": float(part["reference_drift_pct"].iloc[0])}
        for kind in ("corrected", "uncorrected"):
            error = relative_errors(part["predicted_ms"].to_numpy(), part[f"{kind}_ms"].to_numpy())
            entry[kind] = {"mape_pct": float(np.abs(error).mean()), "bias_pct": float(error.mean()),
                           "within_5": float((np.abs(error) <= 5).mean())}
        out[str(state)] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", help="a calibrated table (default: this computer's --latency-table local table)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "drift")
    args = parser.parse_args()
    network = NetworkConfig.imagenet()
    table = LatencyTable.load(args.table or ensure_host_table(network))
    predictor = LatencyPredictor.load(table, network=network)
    names = list(published_genotypes())
    began = time.perf_counter()
    frame = pd.concat([time_state(table, network, names, loaded=loaded) for loaded in (False, True)], ignore_index=True)
    predicted = dict(zip(names, predictor.predict([published_genotypes()[n] for n in names])))
    frame.insert(2, "predicted_ms", frame["network"].map(predicted))
    summary = {"command": " ".join(["benchmarks/bench_drift.py", *sys.argv[1:]]), "table": str(table.path),
               "seconds": round(time.perf_counter() - began, 1), "states": score(frame)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "measurements.csv", frame.to_csv(index=False, float_format="%.5g"))
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=1))
    for state, entry in summary["states"].items():
        c, u = entry["corrected"], entry["uncorrected"]
        print(f"{state:>7}: reference drift {entry['reference_drift_pct']:+.1f}%; against the predictions, corrected "
              f"MAPE {c['mape_pct']:.2f}% (bias {c['bias_pct']:+.2f}%), uncorrected MAPE {u['mape_pct']:.2f}% "
              f"(bias {u['bias_pct']:+.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
