"""Reproductions of the CARS paper's claims at CPU scale (issue 7; see EXPERIMENTS.md).

Each experiment is one module with a ``main(argv)`` and runs as ``python -m experiments.NAME``:

- ``small_model_trap``: pNSGA-III against its ablations (speeds shuffled, vega's sort) and NSGA-III over
  seeds, the population's parameter distribution per generation and the fronts' hypervolumes (paper
  section 3.3, Figure 2; issue 17), analysed by ``selection_ablation``;
- ``cars_vs_random``: models from the final pNSGA-III Pareto set against random genotypes of matched
  size, retrained with the same short budget (paper Table 1's random-search row);
- ``ranking_fidelity``: Kendall tau between SuperNet validation accuracy (with and without batch-norm
  re-estimation) and stand-alone accuracy.

Searches and retraining go through the product's own commands (``cars-search``, ``cars-train``, called
in-process through their ``main``); the SuperNet is read back through the search API. The shared parts:
``common`` (the flags every script takes), ``data`` (the CIFAR-10 JPEG archive and image subsets),
``scale`` (the experiment sizes and the command lines they make), ``runs`` (resumable, cached searches
and retraining runs), ``choose`` (picking genotypes), ``records`` (results folders written
atomically), ``stats`` and ``figures``.
"""
