"""benchmarks/bench_runtimes.py at a tiny scale (a 3-cell network, 3 networks): the script runs as documented,
measures the same networks in the three runtimes, writes the raw results, and a rerun resumes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
RUNTIMES = ("onnxruntime", "pytorch-lite", "executorch")
SMOKE = ["--network", "cifar", "--C", "4", "--layers", "3", "--input-size", "8", "--networks", "3",
         "--calibrate", "4", "--rounds", "2", "--runs", "3"]


def _run(out: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_runtimes.py"), *SMOKE, "--out", str(out),
                           "--cache-dir", str(cache)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)


def test_bench_runtimes_smoke_run_and_resume(tmp_path):
    out, cache = tmp_path / "runtimes", tmp_path / "cache"
    done = _run(out, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(out / "measurements.csv")
    assert len(frame) == 3 and frame["hash"].is_unique
    for runtime in RUNTIMES:
        assert (frame[f"measured_{runtime}_ms"] > 0).all()
        assert (frame[f"predicted_{runtime}_table_ms"] > 0).all()
        assert (out / "tables" / f"{runtime}.csv").is_file()
        meta = json.loads((out / "tables" / f"{runtime}.json").read_text())
        assert meta["settings"]["runtime"] == runtime and "calibration" in json.dumps(meta)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["networks"] == 3
    assert set(summary["kendall_tau_between_runtimes"]) == {
        "onnxruntime vs pytorch-lite", "onnxruntime vs executorch", "pytorch-lite vs executorch"}
    assert all(-1 <= tau <= 1 for tau in summary["kendall_tau_between_runtimes"].values())
    errors = summary["table_on_runtime"]
    assert set(errors) == set(RUNTIMES) and all(set(errors[t]) == set(RUNTIMES) for t in RUNTIMES)
    assert all(errors[t][r]["mape_pct"] >= 0 for t in RUNTIMES for r in RUNTIMES)
    # a rerun reuses the tables and the saved measurements: nothing is timed again
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "tables").glob("*.csv")}
    stamps.update({p.name: p.stat().st_mtime_ns for p in out.glob("measured-*.csv")})
    again = _run(out, cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert stamps == {**{p.name: p.stat().st_mtime_ns for p in (out / "tables").glob("*.csv")},
                      **{p.name: p.stat().st_mtime_ns for p in out.glob("measured-*.csv")}}
    assert pd.read_csv(out / "measurements.csv").equals(frame)
