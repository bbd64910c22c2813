"""The process side of test_distributed.py: one rank of a 2-process gloo group on 127.0.0.1.

Each rank runs three checks in one process group (starting processes is the slow part) and writes
what it saw to ``OUT/rank{r}.pt`` for the test to compare across ranks:

1. ``step``: one eq. 3 step of ``DistributedTrainer`` with plain SGD, each rank on its own
   architecture and batch; then three steps with momentum and weight decay;
2. ``eval``: ``ShardedEvaluator`` accuracies of 5 genotypes on fixed weights;
3. ``search``: a tiny CARS search, recording a digest of every weight and buffer after every
   optimizer step, the architectures each rank trained, and the population and selection of every
   generation (the whole history, and the population and weights after each evolution step); after
   generation ``KILL_AT`` both ranks die abruptly (``os._exit``), as a killed job.
"""
from __future__ import annotations

import hashlib
import os
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

KILL_AT = 2  # generation after which the search is killed
KILLED = 17  # exit code of a rank killed on purpose
#: gloo's traffic stays on the loopback interface (127.0.0.1), whatever the host name resolves to.
LOOPBACK = {"GLOO_SOCKET_IFNAME": "lo"} if Path("/sys/class/net/lo").exists() else {}


def digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in state-dict order."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def rank_batch(rank: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(size, 3, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g)


def eval_batches(n: int, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 8, 8, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def main(rank: int, port: int, out: str, run_dir: str, config: dict[str, Any]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", **LOOPBACK)
    torch.set_num_threads(1)
    record: dict[str, Any] = {}
    try:
        _run(rank, Path(out), run_dir, config, record)
    except BaseException:  # noqa: BLE001 - the test reads the traceback from the file
        (Path(out) / f"rank{rank}.error").write_text(traceback.format_exc())
        os._exit(1)


def _run(rank: int, out: Path, run_dir: str, config_dict: dict[str, Any], record: dict[str, Any]) -> None:
    from cars_deploy.search import CarsSearch, SearchConfig
    from cars_deploy.search.distributed import init_distributed
    from cars_deploy.search.distributed_steps import DistributedTrainer, ShardedEvaluator
    from cars_deploy.space import NetworkConfig, SuperNet, random_genotype

    context = init_distributed("cpu")
    assert (context.rank, context.world_size, context.backend) == (rank, 2, "gloo")
    net_config = NetworkConfig(kind="cifar", C=4, layers=3, num_classes=10, input_size=8, affine=False)

    # 1) eq. 3 across ranks: each rank its own architecture and batch
    genotype = random_genotype(np.random.default_rng(10 + rank))
    x, y = rank_batch(rank)
    torch.manual_seed(0)
    net = SuperNet(net_config)
    plain = SearchConfig(lr=0.1, momentum=0.0, weight_decay=0.0, grad_clip=1e9)
    trainer = context.trainer(net, plain)
    assert isinstance(trainer, DistributedTrainer)
    trainer.step(x, y, [genotype])
    record["step"] = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(0)
    net = SuperNet(net_config)
    trainer = context.trainer(net, SearchConfig())  # momentum 0.9, weight decay 3e-4
    for _ in range(3):
        trainer.step(x, y, [genotype])
    record["momentum"] = {k: v.clone() for k, v in net.state_dict().items()}
    record["sync"] = trainer.sync.stats.as_dict()

    # 2) sharded evaluation of an odd number of genotypes
    torch.manual_seed(1)
    trained = SuperNet(replace(net_config, num_classes=3)).train()
    for xb, _ in eval_batches(3, 8, 5):
        trained(xb, random_genotype(np.random.default_rng(7)))
    genotypes = [random_genotype(np.random.default_rng(20 + i)) for i in range(5)]
    evaluator = context.evaluator(SuperNet(replace(net_config, num_classes=3)),
                                  val_batches=eval_batches(3, 10, 2), recalibration_batches=eval_batches(2, 6, 3),
                                  bn_recalibration=True, show_progress=False)
    assert isinstance(evaluator, ShardedEvaluator)
    evaluator.load(trained.state_dict())
    record["eval"] = {"accuracy": evaluator.accuracy(genotypes).tolist(), "individuals": evaluator.stats.individuals,
                      "images": evaluator.stats.images}

    # 3) a tiny search, killed after generation KILL_AT
    steps: list[dict[str, Any]] = []
    generations: list[dict[str, Any]] = []
    real_step = DistributedTrainer.step

    def step(self: DistributedTrainer, xb: torch.Tensor, yb: torch.Tensor, gens: Any) -> Any:
        result = real_step(self, xb, yb, gens)
        steps.append({"digest": digest(self.network), "trained": [str(g) for g in gens]})
        return result

    DistributedTrainer.step = step  # type: ignore[method-assign]

    def on_generation(search: CarsSearch) -> None:
        last = search.history[-1]
        generations.append({
            "generation": search.generation,
            "epoch": search.epoch,
            "candidates": [ind["genotype"] for ind in last["individuals"]],
            "accuracy": [ind["accuracy"] for ind in last["individuals"]],
            "selected": [ind["selected"] for ind in last["individuals"]],
            "population": [str(g) for g in search.population.genotypes],
            "digest": digest(search.supernet),
        })
        if search.generation == KILL_AT:
            untimed = [{k: v for k, v in h.items() if "seconds" not in k} for h in search.history]
            record["search"] = {"steps": steps, "generations": generations, "history": untimed}
            torch.save(record, out / f"rank{rank}.pt")
            context.barrier()  # rank 0 has written its checkpoint before anyone dies
            os._exit(KILLED)

    search = CarsSearch(SearchConfig.from_dict(config_dict), run_dir, device="cpu", show_progress=False,
                        distributed=context)
    search.run(on_generation=on_generation)
    raise AssertionError("the search was not killed")
