"""The CARS search on torch.distributed: 2 CPU processes, gloo, 127.0.0.1 (search.distributed)."""
from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from cars_deploy.cli.search import main as search_main
from cars_deploy.errors import UserInputError
from cars_deploy.search import CarsSearch, SearchConfig
from cars_deploy.search.context import single_process
from cars_deploy.search.data import load_search_data
from cars_deploy.search.distributed import DistributedContext, epoch_batch_indices, rank_batches, rank_steps
from cars_deploy.search.evaluation import Evaluator
from cars_deploy.search.trainer import SuperNetTrainer
from cars_deploy.space import NetworkConfig, SuperNet, random_genotype

from . import _distributed_worker as worker

NET = NetworkConfig(kind="cifar", C=4, layers=3, num_classes=10, input_size=8, affine=False)
#: The tiny search of test_loop.py with 4 global batches per epoch (2 steps per rank with 2 processes).
TINY = SearchConfig(C=4, layers=3, population=4, epochs=5, warmup_epochs=1, evolve_every=1, batch_size=16,
                    eval_batch_size=64, max_train_batches=4, max_val_batches=2, bn_recalibration_batches=1,
                    deploy_network="cifar", objectives=("params",), seed=3)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Runs _distributed_worker on 2 spawned processes; returns what each rank recorded."""
    root = tmp_path_factory.mktemp("distributed")
    out, run = root / "out", root / "run"
    out.mkdir()
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=worker.main, args=(rank, port, str(out), str(run), TINY.to_dict())) for rank in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    errors = [p.read_text() for p in sorted(out.glob("*.error"))]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in procs] == [worker.KILLED, worker.KILLED]
    records = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return {"records": records, "run": run}


def _path_params(net: SuperNet, genotype) -> set[str]:
    ids = {id(p) for m in net.path_modules(genotype) for p in m.parameters()}
    return {name for name, p in net.named_parameters() if id(p) in ids}


def _assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_one_step_is_eq3_over_the_architectures_of_both_ranks(two_ranks):
    rank0, rank1 = (r["step"] for r in two_ranks["records"])
    _assert_equal_states(rank0, rank1)  # weights and batch-norm buffers identical after the step
    # reference: one process, the mean loss of both (architecture, batch) pairs, plain SGD
    genotypes = [random_genotype(np.random.default_rng(10 + r)) for r in range(2)]
    torch.manual_seed(0)
    reference = SuperNet(NET).train()
    initial = {k: v.clone() for k, v in reference.state_dict().items()}
    losses = []
    for rank, genotype in enumerate(genotypes):
        x, y = worker.rank_batch(rank)
        losses.append(nn.functional.cross_entropy(reference(x, genotype), y))
    (sum(losses) / 2).backward()
    with torch.no_grad():
        for p in reference.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    for name, p in reference.named_parameters():
        torch.testing.assert_close(rank0[name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)
    only_rank1 = _path_params(reference, genotypes[1]) - _path_params(reference, genotypes[0])
    assert only_rank1 and all(not torch.equal(rank0[n], initial[n]) for n in only_rank1)  # rank 0 got rank 1's update


def test_weights_off_every_rank_path_stay_untouched_despite_momentum_and_decay(two_ranks):
    rank0, rank1 = (r["momentum"] for r in two_ranks["records"])
    _assert_equal_states(rank0, rank1)
    torch.manual_seed(0)
    initial = SuperNet(NET)
    genotypes = [random_genotype(np.random.default_rng(10 + r)) for r in range(2)]
    on_some_path = _path_params(initial, genotypes[0]) | _path_params(initial, genotypes[1])
    state = initial.state_dict()
    off = [name for name, _ in initial.named_parameters() if name not in on_some_path]
    assert off and all(torch.equal(rank0[name], state[name]) for name in off)
    assert all(not torch.equal(rank0[name], state[name]) for name in on_some_path)
    sync = two_ranks["records"][0]["sync"]
    # only the union of the two paths travels, not the whole SuperNet as DDP would send
    assert sync["sync_steps"] == 3 and 0 < sync["sync_floats_per_step"] < sync["ddp_floats_per_step"]


def test_sharded_evaluation_equals_single_process_evaluation(two_ranks):
    got = [r["eval"] for r in two_ranks["records"]]
    net3 = NetworkConfig(kind="cifar", C=4, layers=3, num_classes=3, input_size=8, affine=False)
    torch.manual_seed(1)
    trained = SuperNet(net3).train()
    for x, _ in worker.eval_batches(3, 8, 5):
        trained(x, random_genotype(np.random.default_rng(7)))
    evaluator = Evaluator(SuperNet(net3), val_batches=worker.eval_batches(3, 10, 2),
                          recalibration_batches=worker.eval_batches(2, 6, 3), bn_recalibration=True, show_progress=False)
    evaluator.load(trained.state_dict())
    expected = evaluator.accuracy([random_genotype(np.random.default_rng(20 + i)) for i in range(5)]).tolist()
    assert len(set(expected)) > 1  # the genotypes are told apart, so a mix-up of their order would show
    for rank in got:
        assert rank["accuracy"] == expected  # bit for bit, on every rank
        assert rank["individuals"] == 5 and rank["images"] == 5 * 30  # the work of both ranks together


def test_every_optimizer_step_leaves_identical_weights_and_the_same_population_on_both_ranks(two_ranks):
    rank0, rank1 = (r["search"] for r in two_ranks["records"])
    epochs = TINY.warmup_epochs + worker.KILL_AT * TINY.evolve_every
    assert len(rank0["steps"]) == len(rank1["steps"]) == epochs * rank_steps(4, 2) == 6
    assert [s["digest"] for s in rank0["steps"]] == [s["digest"] for s in rank1["steps"]]
    assert len({s["digest"] for s in rank0["steps"]}) == 6  # and every step did change them
    # the ranks trained different shares of one global draw of 2 architectures per step
    assert any(a["trained"] != b["trained"] for a, b in zip(rank0["steps"], rank1["steps"]))
    assert [g["generation"] for g in rank0["generations"]] == list(range(1, worker.KILL_AT + 1))
    assert rank0["generations"] == rank1["generations"]  # candidates, accuracies, selection, population, weights
    assert [h["generation"] for h in rank0["history"]] == list(range(worker.KILL_AT + 1))
    assert json.dumps(rank0["history"]) == json.dumps(rank1["history"])  # generation 0 included (NaN-safe)
    assert sum(rank0["generations"][-1]["selected"]) == TINY.population
    assert rank0["history"][-1]["evaluations"] == 3 * TINY.population  # both ranks' evaluations, counted once


def test_a_killed_two_process_run_resumes_with_one_process(two_ranks):
    run = two_ranks["run"]
    last = two_ranks["records"][0]["search"]["generations"][-1]
    resumed = CarsSearch.resume(run, device="cpu", show_progress=False)
    assert (resumed.generation, resumed.epoch) == (worker.KILL_AT, last["epoch"])
    assert worker.digest(resumed.supernet) == last["digest"]
    assert [str(g) for g in resumed.population.genotypes] == last["population"]
    result = resumed.run()
    assert result.finished and result.generation == TINY.n_generations and result.epoch == TINY.epochs
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["generation"] for h in history] == list(range(TINY.n_generations + 1))
    assert [h["processes"] for h in history] == [2, 2, 2, 1, 1]
    recorded = two_ranks["records"][0]["search"]["generations"]
    assert [[i["accuracy"] for i in h["individuals"]] for h in history[1:3]] == [g["accuracy"] for g in recorded]
    assert len(result.population) == TINY.population and result.pareto.shape[0] >= 1


def test_torchrun_runs_one_search_and_rank_0_alone_reports(tmp_path):
    run = tmp_path / "run"
    flags = ["--C", "4", "--layers", "3", "--population", "4", "--epochs", "3", "--warmup", "1", "--evolve-every", "1",
             "--batch-size", "16", "--max-train-batches", "2", "--max-val-batches", "1", "--deploy-network", "cifar"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
               "-m", "cars_deploy.cli.search", "--out", str(run), *flags, "--max-generations", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **worker.LOOPBACK}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("CARS search stopped") == 1, done.stdout  # one summary, from rank 0
    assert search_main(["--resume", str(run), "--device", "cpu"]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["processes"] for h in history] == [2, 2, 1]


# ----- pieces that need no process group ---------------------------------------------------------------
def test_batch_indices_follow_the_single_process_order_and_ranks_split_them():
    config = TINY.replace(max_train_batches=5)
    data = load_search_data(config, torch.device("cpu"))
    single = list(data.train_batches(2))
    indices = epoch_batch_indices(len(data.train), config.batch_size, config.seed, 2, data.steps_per_epoch())
    assert len(indices) == len(single) == 5
    for (x, y), batch in zip(single, indices):
        assert torch.equal(y, torch.tensor([int(data.train[i][1]) for i in batch]))
        assert torch.equal(x, torch.stack([data.train[i][0] for i in batch]))
    with torch.random.fork_rng(devices=[]):
        ranks = [list(rank_batches(data, 2, DistributedContext(rank=r, world_size=2))) for r in range(2)]
    assert [len(r) for r in ranks] == [2, 2]  # 5 batches over 2 ranks: 2 steps each, the fifth dropped
    for r, batches in enumerate(ranks):
        for k, (x, y) in enumerate(batches):
            assert torch.equal(x, single[2 * k + r][0]) and torch.equal(y, single[2 * k + r][1])
    assert rank_steps(1, 4) == 1 and rank_steps(9, 4) == 2


def test_shares_and_shards():
    contexts = [DistributedContext(rank=r, world_size=2) for r in range(2)]
    assert [c.share(["a", "b", "c", "d"]) for c in contexts] == [["a", "b"], ["c", "d"]]
    assert [c.shard(5) for c in contexts] == [[0, 2, 4], [1, 3]]
    with pytest.raises(ValueError, match="evenly"):
        contexts[0].share(["a", "b", "c"])


def test_a_single_process_search_loads_no_distributed_or_latency_code():
    code = ("import sys, cars_deploy.search, cars_deploy.search.loop; "
            "print(sorted(m for m in sys.modules if m.startswith(('cars_deploy.search.distributed', 'cars_deploy.latency', "
            "'cars_deploy.profilers'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]


def test_one_process_is_the_plain_search():
    context = single_process("cpu")
    assert not context.enabled and context.is_main and context.on_main(lambda: {"a": 1}) == {"a": 1}
    assert context.broadcast_bytes(b"xyz") == b"xyz"
    assert type(context.trainer(SuperNet(NET), TINY)) is SuperNetTrainer
    batches = [(torch.zeros(1, 3, 8, 8), torch.zeros(1, dtype=torch.int64))]
    evaluator = context.evaluator(SuperNet(NET), val_batches=batches, recalibration_batches=[], bn_recalibration=False)
    assert type(evaluator) is Evaluator


def test_architectures_per_step_must_fit_the_population(tmp_path):
    with pytest.raises(UserInputError, match="2 x 3 processes = 6 architectures per step exceeds --population 4"):
        CarsSearch(TINY.replace(arch_batch=2), tmp_path / "run", distributed=DistributedContext(rank=0, world_size=3))
    assert not (tmp_path / "run").exists()
