"""CPU memory layout benchmark: NCHW against channels_last for the networks the commands train and run.

Why it exists: ``torch_device.memory_format_for`` puts networks and image batches in channels_last on
the CPU. This script measures what that buys, in one process, the two layouts interleaved round by
round so that a machine's drift hits both alike:

- stand-alone child networks (``cars-train``, the experiments' retraining): a training step (forward,
  backward, SGD) and an evaluation forward, for published genotypes;
- the SuperNet (``cars-search``): a training step and an evaluation forward on a fresh random path
  each time.

It reports the median seconds per step of each layout and their ratio (NCHW / channels_last), and the
largest output difference between the layouts on the same weights (rounding only). Default sizes are
the experiments' reduced scale (C=8, 5 cells, batch 96 for the networks and 64 for the SuperNet) and
the paper's search SuperNet (C=16, 8 cells)::

    .venv/bin/python benchmarks/bench_memory_format.py --threads 1 --json benchmarks/results/bench_memory_format.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cars_deploy.space import GENOTYPES, NetworkConfig, SuperNet, build_network, random_genotype  # noqa: E402
from cars_deploy.space.supernet import search_config  # noqa: E402

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _time_steps(step: Callable[[], None], steps: int) -> list[float]:
    step()  # warm-up: allocator and oneDNN primitive caches
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return times


def _case(name: str, build: Callable[[], nn.Module], forward: Callable[[nn.Module, torch.Tensor, int], torch.Tensor],
          batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """Median train / eval step per layout for one network; the same initial weights and batch in both."""
    torch.manual_seed(0)
    base = build()
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))
    models = {}
    for layout, memory_format in LAYOUTS.items():
        model = build()
        model.load_state_dict(base.state_dict())
        models[layout] = model.to(memory_format=memory_format)
    inputs = {layout: images.contiguous(memory_format=f) for layout, f in LAYOUTS.items()}
    times: dict[str, dict[str, list[float]]] = {layout: {"train": [], "eval": []} for layout in LAYOUTS}
    for round_index in range(args.rounds):
        for layout, model in models.items():
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = inputs[layout]

            def train_step(model: nn.Module = model, optimizer: torch.optim.Optimizer = optimizer,
                           x: torch.Tensor = x, r: int = round_index) -> None:
                model.train()
                optimizer.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(forward(model, x, r), labels).backward()
                optimizer.step()

            def eval_step(model: nn.Module = model, x: torch.Tensor = x, r: int = round_index) -> None:
                model.eval()
                with torch.no_grad():
                    forward(model, x, r)

            times[layout]["train"] += _time_steps(train_step, args.steps)
            times[layout]["eval"] += _time_steps(eval_step, args.steps)
    with torch.no_grad():  # rounding only: one forward of the same weights in both layouts
        models["channels_last"].load_state_dict(models["nchw"].state_dict())
        outputs = [forward(models[layout].eval(), inputs[layout], 0) for layout in LAYOUTS]
    result: dict[str, Any] = {"case": name, "batch": batch,
                              "max_output_difference": float((outputs[0] - outputs[1]).abs().max())}
    for phase in ("train", "eval"):
        medians = {layout: statistics.median(times[layout][phase]) for layout in LAYOUTS}
        result[phase] = {**{f"{layout}_s": round(m, 4) for layout, m in medians.items()},
                         "speedup": round(medians["nchw"] / medians["channels_last"], 2)}
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per layout, phase and round")
    parser.add_argument("--genotypes", default="DARTS_V2,CARS_A,CARS_Lat_A", help="published genotypes to time")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not torch.backends.mkldnn.is_available():
        raise SystemExit("this PyTorch has no oneDNN: channels_last brings nothing to time")

    cases = []
    for name in args.genotypes.split(","):
        genotype = GENOTYPES.get(name)
        config = NetworkConfig.cifar(C=8, layers=5)
        cases.append(_case(f"{name} network C=8 L=5", lambda g=genotype, c=config: build_network(g, c),
                           lambda m, x, _: m(x), 96, args))
    paths = [random_genotype(np.random.default_rng([0, i])) for i in range(args.rounds)]
    for C, layers in ((8, 5), (16, 8)):
        config = search_config(C=C, layers=layers)
        cases.append(_case(f"SuperNet C={C} L={layers}", lambda c=config: SuperNet(c),
                           lambda m, x, r: m(x, paths[r]), 64, args))
    result = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "rounds": args.rounds, "steps": args.steps, "cases": cases}
    for case in cases:
        print(f"{case['case']:<28} train {case['train']['nchw_s'] * 1e3:7.1f} / {case['train']['channels_last_s'] * 1e3:7.1f} ms "
              f"({case['train']['speedup']:.2f}x)   eval {case['eval']['nchw_s'] * 1e3:7.1f} / "
              f"{case['eval']['channels_last_s'] * 1e3:7.1f} ms ({case['eval']['speedup']:.2f}x)   "
              f"max |difference| {case['max_output_difference']:.1e}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
