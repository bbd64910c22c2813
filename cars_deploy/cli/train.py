"""``cars-train``: retrain a genotype from scratch with the DARTS/CARS evaluation protocol (section 4.2)."""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..data import DATASETS, dataset_info
from ..errors import UserInputError
from ..space import NETWORK_KINDS, NetworkConfig
from ..space.resolve import describe_genotype_spec, resolve_genotype
from ..train import PRESET_NETWORK, PRESETS, TrainConfig, Trainer
from . import _numbers as N
from ._common import CliParser, out_folder, removed_if_failed, run_command

__all__ = ["main"]


def _parser() -> CliParser:
    parser = CliParser(
        prog="cars-train",
        description="Train a genotype's network from scratch (DARTS protocol: SGD 0.025 cosine, batch 96, "
        "Cutout 16, auxiliary 0.4, drop path 0.2, 600 epochs) and write DIR/checkpoint.pt (every epoch; a "
        "rerun on the same DIR resumes), DIR/model.pt and DIR/model_card.json.",
    )
    parser.add_argument("genotype", help="published name, DARTS-notation string, JSON file or RUN/pareto.csv:ROW")
    parser.add_argument("--dataset", choices=DATASETS, default="digits", help="default: the embedded digits")
    parser.add_argument("--data-dir", type=Path, help="cifar10: folder holding cifar-10-batches-py; imagefolder: "
                        "folder holding train/<class>/ and test/<class>/")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cifar",
                        help="protocol: cifar (DARTS, section 4.2), imagenet (CARS section 4.3), darts-imagenet")
    parser.add_argument("--network", choices=NETWORK_KINDS, help="network family (default: the preset's)")
    parser.add_argument("--C", type=N.CHANNELS, help="initial channels (default 36 cifar, 48 imagenet)")
    parser.add_argument("--layers", type=N.LAYERS, help="cells (default 20 cifar, 14 imagenet)")
    parser.add_argument("--input-size", type=N.INPUT_SIZE, help="resize images to this side (not for digits)")
    parser.add_argument("--epochs", type=N.EPOCHS)
    parser.add_argument("--batch-size", type=N.BATCH)
    parser.add_argument("--lr", type=N.RATE, help="initial learning rate")
    parser.add_argument("--weight-decay", type=N.NON_NEGATIVE)
    parser.add_argument("--auxiliary-weight", type=N.NON_NEGATIVE, help="0 trains without the auxiliary head")
    parser.add_argument("--drop-path", type=N.PROBABILITY, help="final drop-path probability")
    parser.add_argument("--cutout", type=N.COUNT0, help="Cutout side in pixels (0: off)")
    parser.add_argument("--seed", type=N.SEED)
    parser.add_argument("--max-train-batches", type=N.COUNT, help="cap batches per epoch (quick runs)")
    parser.add_argument("--max-test-images", type=N.COUNT, help="test on a fixed random subset of this many images")
    parser.add_argument("--eval-every", type=N.EPOCHS, default=1, help="evaluate the test split every N epochs")
    parser.add_argument("--out", type=out_folder, help="output folder (default runs/train-NAME)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", type=Path, metavar="CKPT",
                        help="resume from this checkpoint (OUT/checkpoint.pt is resumed automatically)")
    resume.add_argument("--fresh", action="store_true", help="ignore OUT/checkpoint.pt and start again")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--workers", type=N.WORKERS, help="data-loading processes (default 0 for digits, 2 otherwise)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN pick its fastest, non-deterministic algorithms (a resumed run then no "
                        "longer matches an uninterrupted one exactly)")
    parser.add_argument("--json", action="store_true", help="print the model card as JSON on stdout")
    return parser


#: Flags that override a field of the preset's TrainConfig (argparse dest == field name).
_OVERRIDES = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "auxiliary_weight",
    "drop_path",
    "cutout",
    "seed",
    "max_train_batches",
    "max_test_images",
)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    changes: dict[str, Any] = {name: getattr(args, name) for name in _OVERRIDES if getattr(args, name) is not None}
    config = PRESETS[args.preset](**changes)
    config.validate()
    return config


def _network_config(args: argparse.Namespace) -> NetworkConfig:
    if args.dataset == "digits" and args.input_size not in (None, 8):
        raise UserInputError("the embedded digits are 8x8; --input-size does not apply to them")
    info = dataset_info(args.dataset, args.data_dir, input_size=args.input_size)
    kind = args.network or PRESET_NETWORK[args.preset]
    base = NetworkConfig.imagenet() if kind == "imagenet" else NetworkConfig.cifar()
    sizes = {"C": args.C, "layers": args.layers}
    network = replace(
        base,
        num_classes=info.num_classes,
        input_size=info.input_size,
        **{k: v for k, v in sizes.items() if v is not None},
    )
    replace(network, auxiliary=False).validate()
    return network


def _default_out(spec: str) -> Path:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", describe_genotype_spec(spec)).strip("-.") or "custom"
    return Path("runs") / f"train-{label}"


def _run(args: argparse.Namespace) -> int:
    genotype = resolve_genotype(args.genotype)
    config = _train_config(args)
    network = _network_config(args)
    workers = args.workers if args.workers is not None else (0 if args.dataset == "digits" else 2)
    trainer = Trainer(
        genotype,
        network,
        config,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        workers=workers,
        name=describe_genotype_spec(args.genotype),
        deterministic=not args.cudnn_benchmark,
    )
    resume: Any = "never" if args.fresh else (args.resume or "auto")
    out = args.out or _default_out(args.genotype)
    with removed_if_failed(out):
        result = trainer.fit(out, resume=resume, eval_every=args.eval_every)
    if args.json:
        print(json.dumps(result.card))
    else:
        card = result.card
        print(
            f"test accuracy {100 * result.test_accuracy:.2f}% after {config.epochs} epochs "
            f"({card['params'] / 1e6:.3f}M params, {card['mult_adds'] / 1e6:.1f}M mult-adds); "
            f"weights {result.model_path}, card {result.card_path}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cars-train", _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
