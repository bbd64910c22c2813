"""A CARS search with the latency objective: what ``cars-search`` runs (paper section 4.2, CARS-Lat).

The search counts ``params`` and ``mult_adds`` itself; the ``latency`` cost needs a latency table, so
it is built here (``objective.latency_cost``) and handed to ``CarsSearch``. ``open_search`` opens a
new run, or resumes one, with that cost when the config asks for it; ``verify_search`` then times
every Pareto model end to end on a device and rewrites pareto.csv with the measured latency beside
the predicted one (``verify``), so that a user ships a model whose latency was measured, not only
predicted (and rewrites RUN/report.md with the measured column).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, TypeVar

import torch

from ..search.config import SearchConfig
from ..search.context import ProcessContext
from ..search.loop import CarsSearch, SearchResult
from ..search.objectives import CostFunction, deploy_network
from ..search.report import write_report
from ..search.rundir import RunDir
from .objective import latency_cost
from .verify import verify_pareto_file

__all__ = ["latency_costs", "open_search", "verify_search"]

T = TypeVar("T")


def latency_costs(config: SearchConfig, *, distributed: ProcessContext | None = None) -> dict[str, CostFunction]:
    """``{"latency": LatencyCost}`` when ``config`` has the latency objective (or a latency budget) and a
    latency table, else ``{}`` (the search then says that the objective needs a table). Under ``distributed``, rank 0
    builds the cost first and the other ranks after it: ``local`` profiles this machine on first use
    and caches the table, which the other ranks then read instead of each profiling it at once."""
    if not config.latency_table or ("latency" not in config.objectives and config.max_latency_ms is None):
        return {}
    table, network = config.latency_table, deploy_network(config.deploy_network)
    built: list[CostFunction] = []
    _on_main(distributed, lambda: built.append(latency_cost(table, network=network)))
    return {"latency": built[0] if built else latency_cost(table, network=network)}


def open_search(
    run_dir: str | Path,
    config: SearchConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device = "auto",
    distributed: ProcessContext | None = None,
    show_progress: bool = True,
) -> CarsSearch:
    """A new search with ``config`` in ``run_dir`` or, with ``resume``, the search in ``run_dir``
    continued (``config`` is then its saved one: ``CarsSearch.saved_config``); either with the latency
    cost when the config asks for it. The other arguments are ``CarsSearch``'s."""
    if not resume and not overwrite:  # a taken folder fails now, not after the latency table is made
        _on_main(distributed, lambda: RunDir.require_new(run_dir))
    costs = latency_costs(config, distributed=distributed)
    return CarsSearch(config, run_dir, resume=resume, overwrite=overwrite, device=device, costs=costs,
                      distributed=distributed, show_progress=show_progress)


def verify_search(result: SearchResult, config: SearchConfig, *, device: str) -> SearchResult:
    """Times every model of the search's pareto.csv end to end on ``device`` (``local``, ``adb:SERIAL``,
    ...) with the settings of the search's latency table where it was made on that device, rewrites
    pareto.csv with ``latency_measured_ms`` (and ``latency_error_pct``) beside ``latency_ms``, and
    returns ``result`` with that table as its ``pareto``. Run it on rank 0 only."""
    pareto = verify_pareto_file(
        RunDir(result.run_dir).pareto_path, device_spec=device, network=deploy_network(config.deploy_network),
        latency_table=config.latency_table,
    )
    write_report(RunDir(result.run_dir), pareto, config, generation=result.generation)
    return replace(result, pareto=pareto)


def _on_main(distributed: ProcessContext | None, fn: Callable[[], T]) -> T:
    """``fn()`` in a single process; on rank 0 (its result and errors shared with every rank) otherwise."""
    return fn() if distributed is None else distributed.on_main(fn)
