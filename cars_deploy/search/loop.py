"""Continuous evolution (Algorithm 1): one SuperNet and one population, alternately improved.

```
warm up the SuperNet for E_warm epochs on single paths (fair by default)         (section 3.4)
draw P distinct random architectures; measure them                              (generation 0)
for e = 1 .. E_evo:
    train the SuperNet E_param epochs, B population members per step           (eq. 3)
    make t*P distinct offspring by crossover / mutation / random               (section 4.1)
    measure parents and offspring on the new weights, offspring also on the
    previous generation's weights (for the accuracy increasing speed)
    keep P of the (1+t)P by pNSGA-III (or an ablation, search.selection)       (section 3.3)
```

``CarsSearch`` runs that loop as a small state machine over two counters - epochs trained and
generations selected - and writes a checkpoint after every generation (and after an epoch when the
last one is a minute old), so that a run killed at any point and resumed (``CarsSearch.resume``)
ends with the same population and weights as one that never stopped (same seed, same device and
thread count; CPU runs are bit-for-bit). The run directory (``search.rundir``) is locked until ``close()``;
its checkpoint is the commit point, written first, and the tables are re-rendered from it on resume.

``CarsSearch`` orchestrates: ``SuperNetTrainer`` trains (``search.trainer``), ``Evaluator`` measures
(``search.evaluation``), ``RunWriter`` writes the run folder's tables, history and plots
(``search.run_writer``), ``search.checkpoint`` saves and restores the state. Under ``torchrun`` every
process runs this same loop on the same population, given a ``search.distributed.DistributedContext``
that spreads each step's architectures, the data and the evaluations over the processes; rank 0 alone
writes the run directory. Without one, the search runs in this process (``search.context``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .._locks import HeldLock
from ..errors import CheckpointError, UserInputError
from ..space import Genotype, NetworkConfig, op_set, random_genotype
from ..space.supernet import SuperNet
from ..torch_device import module_to, resolve_torch_device
from .budgets import budgets_of, check_budgets
from .checkpoint import cpu_copy, load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from .config import SearchConfig
from .context import ProcessContext, single_process
from .data import SearchData, load_search_data
from .evaluation import Evaluator, accuracy_speed
from .objectives import CostFunction, build_costs, deploy_network
from .path_sampling import warmup_paths
from .population import Individual, Population
from .result import SearchResult
from .run_writer import RunWriter
from .rundir import RunDir
from .selection import select, selection_rng
from .trainer import SuperNetTrainer
from .variation import VariationConfig, make_offspring

__all__ = ["CarsSearch", "SearchResult"]

log = logging.getLogger("cars_deploy.search")


class CarsSearch:
    """A CARS search bound to a run directory; ``run()`` advances it, ``resume()`` reopens one."""

    def __init__(
        self,
        config: SearchConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        device: str | torch.device = "auto",
        costs: Mapping[str, CostFunction] | None = None,
        show_progress: bool = True,
        epoch_checkpoint_seconds: float = 60.0,
        plot_seconds: float = 30.0,
        overwrite: bool = False,
        distributed: ProcessContext | None = None,
    ):
        """``costs``: objectives the search cannot make itself, by name (``latency``, built from a
        latency table by ``cars_deploy.latency.search_run``); ``params`` and ``mult_adds`` are made here.
        ``epoch_checkpoint_seconds``: an epoch that ends this long after the last checkpoint writes one
        (generations always do); ``plot_seconds``: likewise for the PNG plots (the end of ``run`` always
        plots). Neither changes the search's result, only what a kill can lose and the I/O spent.
        ``overwrite`` replaces a run already in ``run_dir`` (a new run only). ``distributed``: this
        process's place in a multi-process search (``search.distributed``; its device replaces
        ``device``); rank 0 alone writes the run folder."""
        config.validate()
        if distributed is None:
            distributed = single_process(device if isinstance(device, torch.device) else resolve_torch_device(device))
        self.dist = distributed
        if config.arch_batch * self.dist.world_size > config.population:  # same on every rank: no collective
            raise UserInputError(
                f"--arch-batch {config.arch_batch} x {self.dist.world_size} processes = "
                f"{config.arch_batch * self.dist.world_size} architectures per step exceeds --population {config.population}"
            )
        if not resume and not overwrite:
            self.dist.on_main(lambda: RunDir.require_new(run_dir))  # fail before minutes of data loading, not after
        self._lock: HeldLock | None = None  # rank 0: the run folder's lock, held until close()
        self.dist.on_main(lambda: self._hold(run_dir))  # a second process on this run is refused now
        self.show_progress = show_progress and self.dist.is_main
        try:
            self._setup(config, run_dir, resume, overwrite, costs, plot_seconds, epoch_checkpoint_seconds)
        except BaseException:
            self.close()
            raise

    def _setup(self, config: SearchConfig, run_dir: str | Path, resume: bool, overwrite: bool,
               costs: Mapping[str, CostFunction] | None, plot_seconds: float, epoch_checkpoint_seconds: float) -> None:
        self.config = config
        self.device = self.dist.device
        # Costs first: a bad objective fails before any folder is made or data is read. Each cost is built
        # once: the objectives, the counts every table reports, and the budgeted ones.
        network = deploy_network(config.deploy_network)
        self.budgets = budgets_of(config)
        needed = dict.fromkeys([*config.objectives, "params", "mult_adds", *(b.cost for b in self.budgets)])
        built = dict(zip(needed, build_costs(list(needed), network=network, provided=costs)))
        self.costs: list[CostFunction] = [built[name] for name in config.objectives]
        report_costs = {name: built[name] for name in ("params", "mult_adds")}
        self.budget_costs = {b.cost: built[b.cost] for b in self.budgets}
        self.ops = op_set(config.op_set)
        check_budgets(self.budgets, self.budget_costs, ops=self.ops)  # a budget the space cannot meet: exit 2 now
        self.data: SearchData = load_search_data(config, self.device)
        self.network_config = NetworkConfig(kind="cifar", C=config.C, layers=config.layers, affine=False,
                                            num_classes=self.data.info.num_classes, input_size=self.data.info.input_size)
        self.network_config.validate()
        # The initial weights come from the seed, without moving torch's global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.supernet = module_to(SuperNet(self.network_config), self.device)
            eval_copy = module_to(SuperNet(self.network_config), self.device)
        self.dist.broadcast_module(self.supernet)  # same seed, same weights; made certain, as DDP does
        self.trainer: SuperNetTrainer = self.dist.trainer(self.supernet, config)
        self.evaluator: Evaluator = self.dist.evaluator(
            eval_copy,
            val_batches=self.data.val_batches(),
            recalibration_batches=self.data.recalibration_batches() if config.bn_recalibration else [],
            bn_recalibration=config.bn_recalibration,
            show_progress=self.show_progress,
        )
        self.variation = VariationConfig(crossover_prob=config.crossover_prob, mutation_prob=config.mutation_prob,
                                         crossover_node_prob=config.crossover_node_prob,
                                         mutation_node_prob=config.mutation_node_prob, ops=self.ops)
        self.rng = np.random.default_rng(config.seed)
        self.epoch = 0
        self.generation = 0
        self.population = Population()
        self.previous: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.train_log: list[dict[str, Any]] = []
        self.epoch_checkpoint_seconds = epoch_checkpoint_seconds
        self._last_checkpoint = time.monotonic()
        if not resume:  # a new run: its folder made once the data has loaded
            self.dist.on_main(lambda: self._hold(run_dir, create=(config, overwrite)))
        self.run_dir = RunDir(run_dir)
        self.writer = RunWriter(self.run_dir, costs=self.costs, report_costs=report_costs, plot_seconds=plot_seconds,
                                budgets=self.budgets, budget_costs=self.budget_costs, config=config)
        if resume and self.dist.on_main(self.run_dir.checkpoint_path.exists):
            self._load()
            self._write_outputs(final=False)  # the derived files as of the checkpoint, whatever a kill left
        else:
            if resume:
                log.info("no checkpoint in %s yet: starting the search from the beginning", self.run_dir.path)
            # Augmentation draws from torch's global generator, saved in every checkpoint: the state the
            # run continues from, so it is seeded here rather than scoped.
            torch.manual_seed(config.seed)

    def close(self) -> None:
        """Releases the run folder's lock (also released when the process ends, however it ends)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _hold(self, run_dir: str | Path, create: tuple[SearchConfig, bool] | None = None) -> None:
        """Rank 0: takes the run folder's lock (once); ``create`` = (config, overwrite) then makes a new run there."""
        if self._lock is None:
            self._lock = RunDir(run_dir).lock()
        if create is not None:
            RunDir.create(run_dir, create[0], overwrite=create[1])

    @staticmethod
    def saved_config(run_dir: str | Path, *, distributed: ProcessContext | None = None) -> SearchConfig:
        """The config saved in the run directory ``run_dir`` (read by rank 0, shared with every rank)."""
        context = distributed or single_process()
        return SearchConfig.from_dict(context.on_main(lambda: RunDir.open(run_dir)[1].to_dict()))

    @classmethod
    def resume(cls, run_dir: str | Path, **options: Any) -> "CarsSearch":
        """Reopens a run directory with its saved config and continues from its checkpoint; ``options``
        are the constructor's keyword options (device, costs, show_progress, distributed, ...)."""
        config = cls.saved_config(run_dir, distributed=options.get("distributed"))
        return cls(config, run_dir, resume=True, **options)

    # ----- the loop ------------------------------------------------------------------------------
    def run(
        self, *, max_generations: int | None = None, on_generation: Callable[["CarsSearch"], None] | None = None
    ) -> SearchResult:
        """Advances the search to its end, or until ``max_generations`` generations have been selected
        (the run can then be resumed); ``on_generation`` is called after each generation is saved."""
        config = self.config
        while True:
            if self.epoch < config.warmup_epochs:
                self._train_epoch(phase="warmup")
            elif not self.population:
                self._initial_population()
            elif self.generation >= config.n_generations:
                break
            elif max_generations is not None and self.generation >= max_generations:
                break
            elif self.epoch < config.warmup_epochs + (self.generation + 1) * config.evolve_every:
                self._train_epoch(phase="evolution")
            else:
                self._evolve()
                if on_generation is not None:
                    on_generation(self)
        self._write_outputs(final=True)
        return SearchResult(
            run_dir=self.run_dir.path,
            population=self.population,
            pareto=self.writer.pareto_table(self.population),
            generation=self.generation,
            epoch=self.epoch,
            finished=self.generation >= config.n_generations,
            history=self.history,
        )

    def _train_epoch(self, *, phase: str) -> None:
        config = self.config
        if phase == "warmup":
            paths = warmup_paths(config.path_sampling, self.ops, self.rng)  # a fair group ends with the epoch

            def sample() -> Sequence[Genotype]:
                # every rank draws all W x B architectures (its generator stays in step) and trains its B
                return self.dist.share(paths(config.arch_batch * self.dist.world_size))
        else:
            population = self.population

            def sample() -> Sequence[Genotype]:
                chosen = self.rng.choice(len(population), size=config.arch_batch * self.dist.world_size, replace=False)
                return self.dist.share([population[int(i)].genotype for i in chosen])

        stats = self.trainer.train_epoch(
            self.epoch,
            self.dist.train_batches(self.data, self.epoch),
            sample,
            phase=phase,
            total=self.dist.steps_per_epoch(self.data),
            show_progress=self.show_progress,
        )
        self.epoch += 1
        self.train_log.append(stats.as_dict())
        log.debug("epoch %d (%s): loss %.4f, train acc %.3f, %.1f s", self.epoch, phase, stats.loss, stats.accuracy, stats.seconds)
        if time.monotonic() - self._last_checkpoint >= self.epoch_checkpoint_seconds:
            self._checkpoint()

    def _initial_population(self) -> None:
        """Generation 0: P distinct uniformly random architectures, measured on the warmed-up SuperNet."""
        start, before = time.perf_counter(), self._eval_stats()
        genotypes: list[Genotype] = []
        seen: set[Genotype] = set()
        while len(genotypes) < self.config.population:
            genotype = random_genotype(self.rng, ops=self.ops)
            if genotype.canonical() not in seen:
                seen.add(genotype.canonical())
                genotypes.append(genotype)
        self.evaluator.load(self.supernet.state_dict())
        accuracy = self.evaluator.accuracy(genotypes, desc="generation 0")
        costs = self._costs(genotypes)
        self.population = Population(
            Individual(genotype=g, origin="initial", born=0, accuracy=float(a), costs=tuple(c))
            for g, a, c in zip(genotypes, accuracy, costs)
        )
        self.previous = cpu_copy(self.supernet.state_dict())
        self._record(self.population, np.ones(len(self.population), dtype=bool), start, before)
        self._finish_generation()

    def _evolve(self) -> None:
        """One architecture-optimisation step (Algorithm 1, line 14)."""
        config, start, before = self.config, time.perf_counter(), self._eval_stats()
        generation = self.generation + 1
        parents = self.population
        children = make_offspring(parents.genotypes, config.n_offspring, self.rng, self.variation)
        offspring = Population(Individual(genotype=g, origin=o, born=generation) for g, o in children)
        for individual, costs in zip(offspring, self._costs(offspring.genotypes)):
            individual.costs = tuple(costs)
        # Offspring on the previous generation's weights; parents were measured on them when selected.
        assert self.previous is not None  # set with generation 0
        self.evaluator.load(self.previous)
        offspring_before = self.evaluator.accuracy(offspring.genotypes, desc=f"generation {generation}: previous weights")
        candidates = Population(
            Individual(genotype=p.genotype, origin=p.origin, born=p.born, previous_accuracy=p.accuracy, costs=p.costs)
            for p in parents
        )
        for individual, accuracy in zip(offspring, offspring_before):
            individual.previous_accuracy = float(accuracy)
        candidates.extend(offspring)
        self.evaluator.load(self.supernet.state_dict())
        current = self.evaluator.accuracy(candidates.genotypes, desc=f"generation {generation}")
        previous = np.array([ind.previous_accuracy for ind in candidates])
        speed = accuracy_speed(current, previous, config.evolve_every)
        for individual, accuracy, rate in zip(candidates, current, speed):
            individual.accuracy, individual.speed = float(accuracy), float(rate)
        keep = select(
            config.selection,
            accuracy=current,
            costs=candidates.costs(),
            speed=speed,
            n_survive=config.population,
            violation=self.writer.violation(candidates.genotypes) if self.budgets else None,
            rng=selection_rng(config.seed, generation),  # own stream: self.rng draws alike under every selection
        )
        selected = np.zeros(len(candidates), dtype=bool)
        selected[keep] = True
        self.population = candidates.subset(keep)
        self.generation = generation
        self.previous = cpu_copy(self.supernet.state_dict())
        self._record(candidates, selected, start, before)
        self._finish_generation()

    # ----- bookkeeping ---------------------------------------------------------------------------
    def _costs(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        if not genotypes:
            return np.zeros((0, len(self.costs)))
        return np.column_stack([cost(genotypes) for cost in self.costs])

    def _eval_stats(self) -> dict[str, float]:
        return dict(self.evaluator.stats.as_dict())

    def _record(self, candidates: Population, selected: np.ndarray, start: float, before: dict[str, float]) -> None:
        after = self._eval_stats()
        last = self.train_log[-1] if self.train_log else {}
        record = {
            "generation": self.generation,
            "epoch": self.epoch,
            "selection": self.config.selection,
            "objectives": ["accuracy", *self.config.objectives],
            "processes": self.dist.world_size,
            "seconds": round(time.perf_counter() - start, 4),
            "train_loss": last.get("loss"),
            "train_accuracy": last.get("accuracy"),
            "lr": last.get("lr"),
            **{k: round(after[k] - before[k], 4) for k in after},
            "individuals": self.writer.individual_records(candidates, selected),
        }
        self.history.append(record)
        acc = candidates.accuracies()[selected]
        log.info(
            "generation %d/%d (epoch %d): accuracy %.1f-%.1f%%, %d of %d kept, evaluation %.1f s (BN re-estimation %.1f s)",
            self.generation, self.config.n_generations, self.epoch, 100 * acc.min(), 100 * acc.max(),
            int(selected.sum()), len(candidates), record["eval_seconds"], record["bn_recalibration_seconds"],
        )

    def _finish_generation(self) -> None:
        self._checkpoint()  # the commit point: a kill before the tables leaves them one generation behind, never ahead
        self._write_outputs(final=False)

    def _checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        if not self.dist.is_main:
            return
        save_checkpoint(
            self.run_dir.checkpoint_path,
            {
                "config": self.config.to_dict(),
                "epoch": self.epoch,
                "generation": self.generation,
                "supernet": self.supernet.state_dict(),
                "optimizer": self.trainer.optimizer.state_dict(),
                "scheduler": self.trainer.scheduler.state_dict(),
                "previous_supernet": self.previous,
                "population": self.population.to_state(),
                "history": self.history,
                "train_log": self.train_log,
                "rng": rng_state(self.rng),
            },
        )

    def _load(self) -> None:
        raw = self.dist.read_on_main(self.run_dir.checkpoint_path) if self.dist.enabled else None
        data = load_checkpoint(self.run_dir.checkpoint_path, config=self.config, raw=raw)
        try:
            self.supernet.load_state_dict(data["supernet"], strict=True)
            self.trainer.optimizer.load_state_dict(data["optimizer"])
            self.trainer.scheduler.load_state_dict(data["scheduler"])
            self.population = Population.from_state(data["population"])
            self.previous = data["previous_supernet"]
            if self.previous is not None:
                self.evaluator.network.load_state_dict(self.previous, strict=True)  # shape check
            self.epoch, self.generation = int(data["epoch"]), int(data["generation"])
            self.history, self.train_log = list(data["history"]), list(data["train_log"])
            restore_rng_state(data["rng"], self.rng)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split())[:160]
            raise CheckpointError(f"{self.run_dir.checkpoint_path} does not fit this search ({reason})") from None
        log.info("resumed %s at epoch %d, generation %d", self.run_dir.path, self.epoch, self.generation)

    def _write_outputs(self, *, final: bool) -> None:
        if self.dist.is_main:
            self.writer.write(self.population, self.history, generation=self.generation, final=final)
