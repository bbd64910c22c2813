"""Distributed search benchmark: epoch and generation time of a CARS search with 1, 2, ... processes.

For each process count N the real search (``CarsSearch`` with ``search.distributed``) runs in fresh
interpreters - ``torchrun --nproc-per-node N`` (``python -m torch.distributed.run``; gloo on the CPU,
nccl on GPUs) for N > 1, one plain process for N = 1 - on the same config and seed, and reports:

- training epoch wall time, warmup (uniform paths) and evolution (population paths) epochs apart,
  taken from the run's train log (rank 0; every rank takes the same number of steps);
- generation wall time (evaluation of parents and offspring, sharded over the processes, plus
  selection), from history.jsonl;
- gradient averaging (``GradientSync``): milliseconds per step inside the collectives, floats
  all-reduced per step (the union of the sampled paths and the BN statistics) against the floats DDP
  would all-reduce (every parameter of the SuperNet).

With N processes an epoch has 1/N of the steps of a one-process epoch (each rank takes its own
batches) and each step trains N x B architectures; a generation evaluates 1/N of the individuals per
process. On this project's 2-core VM expect little: two processes share two cores with the data
loading, the collectives and each other.

A smoke run at a tiny size proves the script works (seconds)::

    .venv/bin/python benchmarks/bench_distributed.py --processes 1 2 --C 4 --layers 3 --population 4 \\
        --epochs 3 --warmup 1 --max-train-batches 4 --max-val-batches 1

The figures for BENCHMARKS.md, on a quiet machine (default preset: digits, C=8, 5 cells, P=20)::

    .venv/bin/python benchmarks/bench_distributed.py --processes 1 2 --json bench_distributed.json

and on a machine with several GPUs (one process per GPU)::

    .venv/bin/python benchmarks/bench_distributed.py --device cuda --processes 1 2 4 8 --preset paper --epochs 3 --warmup 1
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _config(args: argparse.Namespace) -> Any:
    from cars_deploy.search.config import preset

    return preset(
        args.preset, C=args.C, layers=args.layers, population=args.population, epochs=args.epochs,
        warmup_epochs=args.warmup, evolve_every=1, max_train_batches=args.max_train_batches,
        max_val_batches=args.max_val_batches, batch_size=args.batch_size, dataset=args.dataset,
        data_dir=args.data_dir, deploy_network="cifar", seed=0,
    )


def worker(args: argparse.Namespace) -> None:
    """One process of the measured search (run by torchrun or directly); rank 0 writes the JSON."""
    import torch

    from cars_deploy.search.distributed import init_distributed
    from cars_deploy.search.distributed_steps import DistributedTrainer
    from cars_deploy.search.loop import CarsSearch

    context = init_distributed(args.device)
    if context.device.type == "cpu":
        torch.set_num_threads(args.threads)
    config = _config(args)
    try:
        started = time.perf_counter()
        search = CarsSearch(config, Path(args.worker) / "run", device=context.device, show_progress=False,
                            distributed=context, epoch_checkpoint_seconds=1e9, plot_seconds=1e9)
        setup = time.perf_counter() - started
        result = search.run()
        total = time.perf_counter() - started
        if not context.is_main:
            return
        sync = search.trainer.sync.stats.as_dict() if isinstance(search.trainer, DistributedTrainer) else {}
        history = result.history
        out = {
            "processes": context.world_size,
            "backend": context.backend or "none",
            "device": str(context.device),
            "card": torch.cuda.get_device_name(context.device) if context.device.type == "cuda" else None,
            "steps_per_epoch": context.steps_per_epoch(search.data),
            "train_log": search.train_log,
            "generation_seconds": [h["seconds"] for h in history],
            "eval_seconds": [h["eval_seconds"] for h in history],
            "setup_seconds": setup,
            "total_seconds": total,
            "sync": sync,
        }
        (Path(args.worker) / "result.json").write_text(json.dumps(out))
    finally:
        context.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(args: argparse.Namespace, processes: int) -> dict[str, Any]:
    """Runs the search with ``processes`` processes in fresh interpreters; returns rank 0's figures."""
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as folder:
        worker_args = [str(Path(__file__).resolve()), "--worker", folder, *_passthrough(args)]
        if processes == 1:
            command = [sys.executable, *worker_args]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(processes),
                       "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *worker_args]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{processes} process(es) failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        result = json.loads((Path(folder) / "result.json").read_text())
        result["wall_seconds"] = time.perf_counter() - started
        return result


def _passthrough(args: argparse.Namespace) -> list[str]:
    out = ["--device", args.device, "--threads", str(args.threads), "--preset", args.preset]
    for name in ("C", "layers", "population", "epochs", "warmup", "max_train_batches", "max_val_batches", "batch_size",
                 "dataset", "data_dir"):
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    log = result["train_log"]
    warm = [e["seconds"] for e in log if e["phase"] == "warmup"]
    evo = [e["seconds"] for e in log if e["phase"] == "evolution"]
    sync = result["sync"]
    return {
        "processes": result["processes"],
        "backend": result["backend"],
        "device": result["card"] or result["device"],
        "steps_per_epoch": result["steps_per_epoch"],
        "warmup_epoch_s": statistics.median(warm) if warm else None,
        "evolution_epoch_s": statistics.median(evo) if evo else None,
        "generation_s": statistics.median(result["generation_seconds"][1:] or result["generation_seconds"]),
        "sync_ms_per_step": sync.get("sync_ms_per_step"),
        "floats_per_step": sync.get("sync_floats_per_step"),
        "ddp_floats_per_step": sync.get("ddp_floats_per_step"),
        "search_s": result["total_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, one GPU per process)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process on the CPU")
    parser.add_argument("--preset", default="default", help="search preset the settings below change")
    parser.add_argument("--C", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--population", type=int)
    parser.add_argument("--epochs", type=int, default=5, help="epochs, warmup included (one generation per epoch after it)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-train-batches", type=int)
    parser.add_argument("--max-val-batches", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--dataset")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rows = [summarise(run(args, n)) for n in args.processes]
    base = rows[0]
    header = (f"{'procs':>5} {'backend':>7} {'steps/ep':>8} {'warmup ep (s)':>13} {'evolution ep (s)':>16} "
              f"{'generation (s)':>14} {'speedup':>7} {'sync ms/step':>12} {'floats/step (DDP)':>22}")
    print(f"CARS search, device {base['device']}, {args.preset} preset")
    print(header)
    for row in rows:
        epoch = row["evolution_epoch_s"] or row["warmup_epoch_s"]
        ref = base["evolution_epoch_s"] or base["warmup_epoch_s"]
        floats = "-" if row["floats_per_step"] is None else f"{row['floats_per_step']:.0f} ({row['ddp_floats_per_step']:.0f})"
        sync = "-" if row["sync_ms_per_step"] is None else f"{row['sync_ms_per_step']:.2f}"
        print(f"{row['processes']:>5} {row['backend']:>7} {row['steps_per_epoch']:>8} {row['warmup_epoch_s'] or 0:>13.3f} "
              f"{row['evolution_epoch_s'] or 0:>16.3f} {row['generation_s']:>14.3f} {ref / epoch:>7.2f} {sync:>12} {floats:>22}")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
