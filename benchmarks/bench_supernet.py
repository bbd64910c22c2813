"""SuperNet benchmark: single-path CARS SuperNet vs a MixedOp SuperNet, and population evaluation time.

1. Training step (eq. 3) at the paper's search configuration (C=16, 8 cells, 32x32, batch 64, B=1 by
   default): this project's ``SuperNet`` runs only the genotype's 2 ops per node; the baseline is the
   SuperNet vega's CARS uses - every one of the 8 ops on every one of the 14 edges of every cell,
   summed with the one-hot architecture weights (DARTS ``MixedOp``). Same B, same batch, same run,
   same optimizer; reports the median step time and the peak memory (CUDA: ``max_memory_allocated``;
   CPU: peak RSS of a fresh subprocess per variant).
2. Evaluating a population of 128 random architectures on 5,000 validation images, with and without
   per-individual batch-norm re-estimation (``search.evaluation.Evaluator``), on random tensors of the
   right shape (timing does not depend on pixel values).

Everything scales by flags, e.g. a smoke run:
    python benchmarks/bench_supernet.py --C 4 --layers 3 --batch-size 8 --steps 2 --population 4 --val-images 64
The full figures (BENCHMARKS.md):
    python benchmarks/bench_supernet.py --device cuda --json bench_supernet.json
    python benchmarks/bench_supernet.py --device cuda --channels-last
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cars_deploy.search.evaluation import Evaluator  # noqa: E402
from cars_deploy.space import NUM_NODES, OPS, PRIMITIVES, Genotype, NetworkConfig, random_genotype  # noqa: E402
from cars_deploy.space.cells import edge_stride, preprocess0  # noqa: E402
from cars_deploy.space.networks import cell_plan  # noqa: E402
from cars_deploy.space.primitives import ReLUConvBN  # noqa: E402
from cars_deploy.space.supernet import SuperNet  # noqa: E402


# ----- the baseline: a MixedOp SuperNet as in DARTS / vega ----------------------------------------------
class MixedOp(nn.Module):
    """All 8 ops of an edge, output ``sum_k w_k * op_k(x)`` (w one-hot for one architecture)."""

    def __init__(self, C: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList(OPS.get(op)(C, stride, False) for op in PRIMITIVES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class MixedCell(nn.Module):
    def __init__(self, plan: Any):
        super().__init__()
        self.reduction = plan.reduction
        self.preprocess0 = preprocess0(plan.C_prev_prev, plan.C, reduction_prev=plan.reduction_prev, affine=False)
        self.preprocess1 = ReLUConvBN(plan.C_prev, plan.C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(plan.C, edge_stride(reduction=plan.reduction, index=j)) for i in range(NUM_NODES) for j in range(2 + i)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(NUM_NODES):
            states.append(sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


class MixedOpSuperNet(nn.Module):
    """Weighted-sum SuperNet; ``forward(x, genotype)`` turns the genotype into one-hot edge weights."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        stem_C = 3 * config.C
        self.stem = nn.Sequential(nn.Conv2d(3, stem_C, 3, padding=1, bias=False), nn.BatchNorm2d(stem_C))
        plans = cell_plan(config)
        self.cells = nn.ModuleList(MixedCell(p) for p in plans)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * plans[-1].C, config.num_classes)

    @staticmethod
    def one_hot(edges: tuple, device: torch.device) -> torch.Tensor:
        weights = torch.zeros(sum(2 + i for i in range(NUM_NODES)), len(PRIMITIVES), device=device)
        offset = 0
        for node in range(NUM_NODES):
            for op, index in edges[2 * node : 2 * node + 2]:
                weights[offset + index, PRIMITIVES.index(op)] = 1.0
            offset += 2 + node
        return weights

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        normal = self.one_hot(genotype.normal, x.device)
        reduce = self.one_hot(genotype.reduce, x.device)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.global_pooling(s1).flatten(1))


# ----- measurements ------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    """Resident memory of this process now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def train_step_benchmark(args: argparse.Namespace, variant: str, device: torch.device) -> dict[str, Any]:
    """Median time of one eq.-3 SGD step (B architectures, averaged losses) and peak memory: on CUDA the
    allocator's peak; on CPU the largest resident-memory growth over the process before the model was
    built, sampled after each forward and after each step (timed steps are not sampled)."""
    torch.manual_seed(0)
    baseline = _rss_mb()
    config = NetworkConfig(kind="cifar", C=args.C, layers=args.layers, num_classes=10, input_size=args.input_size, affine=False)
    model = (SuperNet(config) if variant == "single_path" else MixedOpSuperNet(config)).to(device).train()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size, device=device).to(memory_format=memory_format)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times, rss = [], [0.0]
    for step in range(args.warmup_steps + args.steps):
        genotypes = [random_genotype(rng) for _ in range(args.arch_batch)]
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        for genotype in genotypes:
            (criterion(model(x, genotype), y) / len(genotypes)).backward()
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 5.0)
        optimizer.step()
        _sync(device)
        if step >= args.warmup_steps:
            times.append(time.perf_counter() - start)
        elif device.type == "cpu":  # untimed steps: sample memory at the forward's peak and after the step
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x, genotypes[0]), y)
            rss.append(_rss_mb() - baseline)
            loss.backward()
            optimizer.step()
            rss.append(_rss_mb() - baseline)
    if args.profile and variant == "single_path":
        _profile(model, optimizer, criterion, x, y, rng, args, device)
    result = {
        "variant": variant,
        "step_ms": 1000 * statistics.median(times),
        "params": sum(p.numel() for p in model.parameters()),
    }
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_memory_mb"] = max(rss)
        result["memory_kind"] = "resident-memory growth (CPU)"
    return result


def _profile(model, optimizer, criterion, x, y, rng, args, device) -> None:
    """Prints where ``--profile`` single-path steps spend their time (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.profile):
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x, random_genotype(rng)), y).backward()
            nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 5.0)
            optimizer.step()
        _sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15), file=sys.stderr)
    events = prof.key_averages()
    kernels = sum(e.count for e in events if e.device_type.name == "CUDA") if device.type == "cuda" else 0
    print(f"profile: {args.profile} steps, {kernels / args.profile:.0f} CUDA kernels per step", file=sys.stderr)


def population_benchmark(args: argparse.Namespace, device: torch.device, *, recalibrate: bool) -> dict[str, Any]:
    """Seconds to measure ``--population`` random architectures on ``--val-images`` images."""
    torch.manual_seed(0)
    config = NetworkConfig(kind="cifar", C=args.C, layers=args.layers, num_classes=10, input_size=args.input_size, affine=False)
    network = SuperNet(config).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    network = network.to(memory_format=memory_format)
    g = torch.Generator().manual_seed(0)

    def batches(n_images: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for start in range(0, n_images, size):
            n = min(size, n_images - start)
            x = torch.randn(n, 3, args.input_size, args.input_size, generator=g).to(device).to(memory_format=memory_format)
            out.append((x, torch.randint(0, 10, (n,), generator=g).to(device)))
        return out

    evaluator = Evaluator(
        network,
        val_batches=batches(args.val_images, args.eval_batch_size),
        recalibration_batches=batches(2 * args.batch_size, args.batch_size) if recalibrate else [],
        bn_recalibration=recalibrate,
        show_progress=False,
    )
    rng = np.random.default_rng(1)
    genotypes = [random_genotype(rng) for _ in range(args.population)]
    evaluator.accuracy(genotypes[:2])  # warm-up (kernel selection, allocator)
    evaluator.stats.__init__()
    _sync(device)
    start = time.perf_counter()
    evaluator.accuracy(genotypes)
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "bn_recalibration": recalibrate,
        "population": args.population,
        "val_images": args.val_images,
        "seconds": seconds,
        "ms_per_individual": 1000 * seconds / args.population,
        "recalibration_seconds": evaluator.stats.recalibration_seconds,
    }


# ----- driver ------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--C", type=int, default=16, help="SuperNet channels (paper search: 16)")
    parser.add_argument("--layers", type=int, default=8, help="SuperNet cells (paper search: 8)")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (DARTS search: 64)")
    parser.add_argument("--arch-batch", type=int, default=1, help="B architectures per step (paper: 1)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and data")
    parser.add_argument("--population", type=int, default=128, help="architectures evaluated")
    parser.add_argument("--val-images", type=int, default=5000)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick the fastest algorithms")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N single-path steps")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", choices=("single_path", "mixed_op"), help=argparse.SUPPRESS)  # subprocess mode
    return parser


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.only:  # one variant in this (fresh) process, so its peak RSS is its own
        print(json.dumps(train_step_benchmark(args, args.only, device)))
        return 0
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "only")},
    }
    if not args.skip_train:
        train = []
        for variant in ("single_path", "mixed_op"):
            if device.type == "cuda":
                train.append(train_step_benchmark(args, variant, device))
            else:
                argv_child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--only", variant]
                out = subprocess.run(argv_child, check=True, capture_output=True, text=True).stdout
                train.append(json.loads(out.strip().splitlines()[-1]))
        single, mixed = train
        results["train_step"] = train
        results["speedup"] = mixed["step_ms"] / single["step_ms"]
        results["memory_ratio"] = single["peak_memory_mb"] / mixed["peak_memory_mb"]
        print(f"training step (C={args.C}, {args.layers} cells, batch {args.batch_size}, B={args.arch_batch}, "
              f"{'channels_last' if args.channels_last else 'NCHW'}) on {results['device']}:")
        for r in train:
            print(f"  {r['variant']:<12} {r['step_ms']:9.1f} ms/step   peak memory {r['peak_memory_mb']:9.1f} MB")
        print(f"  single path is {results['speedup']:.1f}x faster with {results['memory_ratio']:.2f}x the memory")
    if not args.skip_eval:
        results["population_eval"] = [population_benchmark(args, device, recalibrate=r) for r in (True, False)]
        for r in results["population_eval"]:
            print(f"evaluate {r['population']} architectures on {r['val_images']} images "
                  f"({'with' if r['bn_recalibration'] else 'without'} BN re-estimation): {r['seconds']:.1f} s "
                  f"({r['ms_per_individual']:.0f} ms each, re-estimation {r['recalibration_seconds']:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
