"""Golden files: a seeded search and a latency-table build must keep producing the same bytes.

Refactors are meant to change no behaviour; these tests say when one did. A seeded tiny search's
``population.csv``, ``pareto.csv`` and ``history.jsonl`` (wall times dropped), and a table built on a
deterministic device (its CSV, the settled part of its sidecar, the block-sum latency and the exact
params / mult-adds of every published genotype) are compared with ``tests/golden/data``.
Set ``CARS_ACCEPT_GOLDEN=1`` to re-accept them after an intended change, and say why in the commit.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from cars_deploy.latency.predictor import LatencyPredictor
from cars_deploy.profilers.blocks import EMPTY_KEY
from cars_deploy.profilers.builder import ProfileConfig, build_table
from cars_deploy.profilers.device import DeviceOptions, DeviceSpec, Sample
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.search import CarsSearch
from cars_deploy.search.config import SearchConfig
from cars_deploy.search.objectives import build_costs
from cars_deploy.space import NetworkConfig
from cars_deploy.space.genotypes import GENOTYPES

DATA = Path(__file__).resolve().parent / "data"
ACCEPT = os.environ.get("CARS_ACCEPT_GOLDEN") == "1"

#: Sidecar fields that record when, where and how long a build ran; everything else must not change.
_VOLATILE = {"runs", "created", "updated"}
#: History fields holding wall times.
_TIMING = {"seconds", "eval_seconds", "bn_recalibration_seconds"}


def _check(name: str, text: str) -> None:
    path = DATA / name
    if ACCEPT:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with CARS_ACCEPT_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} differs from its golden file (CARS_ACCEPT_GOLDEN=1 re-accepts)"


class DeterministicDevice:
    """A device whose timings are a fixed function of the model name: the same table every run."""

    def __init__(self) -> None:
        self.spec = DeviceSpec("local")
        self.options = DeviceOptions()

    def facts(self) -> dict[str, Any]:
        return {"model": "golden-device", "runtime": "deterministic"}

    def prepare(self, models) -> None:
        pass

    def time_batch(self, models, *, runs: int, warmup: int) -> list[Sample]:
        samples = []
        for model in models:
            base = 0.005 if model.name == EMPTY_KEY.id else 0.05 + (zlib.crc32(model.name.encode()) % 1000) / 1e4
            samples.append(Sample(name=model.name, ms=base, runs=runs))
        return samples

    def temperatures(self) -> dict[str, float]:
        return {}

    def events(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def _settled(value: Any) -> Any:
    """``value`` with every float rounded to 5 significant digits: the CPU's float kernels (oneDNN picks
    other ones on an Intel than on an AMD VM) move a training loss in its 7th digit, which is not a change
    of behaviour; anything a refactor changes moves far more."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _settled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_settled(v) for v in value]
    return value


def _history_text(run: Path) -> str:
    lines = []
    for line in (run / "history.jsonl").read_text().splitlines():
        record = json.loads(line)
        record = {k: _settled(v) for k, v in record.items() if k not in _TIMING}
        lines.append(json.dumps(record, sort_keys=True))
    return "\n".join(lines) + "\n"


#: The pinned search of the golden files (the same as tests/search's tiny_config, kept apart so that
#: a change to that fixture does not move the golden files).
GOLDEN_SEARCH = SearchConfig(
    C=4, layers=3, population=4, epochs=5, warmup_epochs=1, evolve_every=1, batch_size=16, eval_batch_size=64,
    max_train_batches=2, max_val_batches=2, bn_recalibration_batches=1, deploy_network="cifar",
    objectives=("params",), seed=3,
)


def test_seeded_search_matches_its_golden_files(tmp_path):
    run = tmp_path / "run"
    CarsSearch(GOLDEN_SEARCH, run, device="cpu", show_progress=False).run()
    _check("search/population.csv", (run / "population.csv").read_text())
    _check("search/pareto.csv", (run / "pareto.csv").read_text())
    _check("search/history.jsonl", _history_text(run))


def test_table_build_and_costs_match_their_golden_files(tmp_path):
    network = NetworkConfig(kind="cifar", C=4, layers=3, input_size=8)
    config = ProfileConfig(
        out=tmp_path / "golden", networks=(network,), protocol=ProtocolConfig(warmup=1, rounds=3, runs=2, seed=0),
        cache_dir=tmp_path / "cache",
    )
    report = build_table(DeterministicDevice(), config, show_progress=False)
    _check("table/golden.csv", (tmp_path / "golden.csv").read_text())
    meta = {k: v for k, v in report.table.meta.items() if k not in _VOLATILE}
    _check("table/golden.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")

    predictor = LatencyPredictor.load(tmp_path / "golden.csv", network=network)
    names = sorted(GENOTYPES.names())
    genotypes = [GENOTYPES.get(name) for name in names]
    latency = predictor.predict(genotypes)
    params, mult_adds = build_costs(("params", "mult_adds"), network=network)
    rows = [
        {"genotype": name, "latency_ms": float(f"{lat:.9g}"), "params": int(p), "mult_adds": int(m)}
        for name, lat, p, m in zip(names, latency, params(genotypes), mult_adds(genotypes))
    ]
    _check("table/costs.json", json.dumps(rows, indent=1) + "\n")
