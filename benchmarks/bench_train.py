"""Retraining benchmark: DARTS_V2 trained from scratch on CIFAR-10 for a fixed, short CPU budget.

The paper's protocol (section 4.2: 600 epochs of a 3.3M-parameter network) takes GPU-days; this
script runs the same recipe (SGD 0.025 cosine to 0, momentum 0.9, weight decay 3e-4, batch 96, crop +
flip + Cutout 16, auxiliary head 0.4, drop path 0.2 ramped, gradient clip 5) on a smaller network for
a fixed number of SGD steps, and reports test accuracy and wall time. The schedule spans the short
run, so the learning rate anneals to 0 at its end as it would after 600 epochs.

Default budget: DARTS_V2 at C=16 with 8 cells (0.25M parameters, 45M mult-adds), 8 epochs of 75
steps of 96 images (600 steps, 57,600 images: about 1.15 passes over the 50,000 training images),
tested on all 10,000 test images.

Data: the CIFAR-10 JPEG copy in ImageFolder layout (``../shared/data/cifar10-jpg.tar.gz``), extracted
once to ``/tmp/cifar10-jpg``. Run it when the machine is quiet; the default budget is the one proposed
for BENCHMARKS.md (see ``--help``)::

    .venv/bin/python benchmarks/bench_train.py --threads 2

A result is one JSON object on stdout, also written to ``OUT/bench_train.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import torch

from cars_deploy._io import atomic_write_text
from cars_deploy.space import GENOTYPES, NetworkConfig
from cars_deploy.train import TrainConfig, Trainer

ARCHIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpg.tar.gz"


def extract(archive: Path, target: Path) -> Path:
    """``target/cifar10-jpg`` (train/ and test/ ImageFolder trees), extracted from ``archive`` once."""
    root = target / "cifar10-jpg"
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    if not archive.is_file():
        sys.exit(f"bench_train: {archive} not found; pass --archive or --data-dir")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")  # "data" refuses absolute paths, links out of target, devices
    return root


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genotype", default="DARTS_V2")
    parser.add_argument("--C", type=int, default=16, help="initial channels (paper: 36)")
    parser.add_argument("--layers", type=int, default=8, help="cells (paper: 20)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the cosine schedule (paper: 600)")
    parser.add_argument("--max-train-batches", type=int, default=75, help="SGD steps per epoch (a full epoch: 521)")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--max-test-images", type=int, help="test subset (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=1, help="JPEG-decoding processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (the benchmark's setting), cuda or auto")
    parser.add_argument("--archive", type=Path, default=ARCHIVE.resolve())
    parser.add_argument("--data-dir", type=Path, help="an extracted cifar10-jpg folder (skips extraction)")
    parser.add_argument("--extract-to", type=Path, default=Path("/tmp"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_train"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench_train: %(message)s")
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or extract(args.archive, args.extract_to)
    genotype = GENOTYPES.get(args.genotype)
    network = NetworkConfig.cifar(C=args.C, layers=args.layers)
    config = TrainConfig.cifar(
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_train_batches=args.max_train_batches,
        max_test_images=args.max_test_images,
        seed=args.seed,
    )
    trainer = Trainer(
        genotype, network, config, dataset="imagefolder", data_dir=data_dir, device=args.device, workers=args.workers,
        name=args.genotype,
    )
    began = time.perf_counter()
    result = trainer.fit(args.out, resume="never", eval_every=args.epochs)  # test once, at the end
    total = time.perf_counter() - began
    train_seconds = sum(r.seconds for r in result.history)
    steps = args.epochs * min(args.max_train_batches or 10**9, len(trainer.train_loader))
    report = {
        "benchmark": "bench_train",
        "genotype": args.genotype,
        "network": {"C": args.C, "layers": args.layers, "input_size": 32, "auxiliary": trainer.network.auxiliary},
        "params": result.card["params"],
        "mult_adds": result.card["mult_adds"],
        "budget": {"epochs": args.epochs, "steps": steps, "batch_size": args.batch_size,
                   "train_images_seen": steps * args.batch_size},
        "test_accuracy": result.test_accuracy,
        "test_images": result.card["accuracy"]["images"],
        "seconds": {"total": round(total, 1), "train_and_test": round(train_seconds, 1),
                    "per_step": round(train_seconds / max(steps, 1), 3)},
        "threads": args.threads,
        "workers": args.workers,
        "device": str(trainer.device) if trainer.device.type == "cpu" else torch.cuda.get_device_name(trainer.device),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "model_card": str(result.card_path),
    }
    atomic_write_text(args.out / "bench_train.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
