"""``cars-export``: write a genotype's network as ONNX, TorchScript Lite and ExecuTorch files, each verified."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..data import DATASETS
from ..export import EXPORTERS, ExportConfig, NetworkRequest, check_export_config, export_model, load_export_source
from ..formats import ONNX
from ..space import NETWORK_KINDS
from ..space.resolve import describe_genotype_spec, resolve_genotype
from . import _numbers as N
from ._common import CliParser, out_folder, removed_if_failed, run_command

__all__ = ["main"]


def _parser() -> CliParser:
    parser = CliParser(
        prog="cars-export",
        description="Export a genotype's network (trained weights from --checkpoint, else seeded random ones) "
        "and check each file against PyTorch in its runtime (max abs difference < tolerance). A model card "
        "(NAME.FORMAT.card.json) is written beside every file.",
    )
    parser.add_argument("genotype", help="published name, DARTS-notation string, JSON file or RUN/pareto.csv:ROW")
    parser.add_argument("--checkpoint", type=Path, help="model.pt or checkpoint.pt written by cars-train")
    parser.add_argument("--format", default=ONNX.name, help=f"comma-separated formats among "
                        f"{', '.join(EXPORTERS.names())} (default {ONNX.name})")
    parser.add_argument("--out", type=out_folder, default=Path("export"), help="output folder (default ./export)")
    parser.add_argument("--name", default="model", help="file stem (default model)")
    sizes = parser.add_argument_group("network size without a checkpoint (with one, these must match it)")
    sizes.add_argument("--dataset", choices=DATASETS, help="whose classes and normalisation (default cifar10)")
    sizes.add_argument("--data-dir", type=Path, help="imagefolder: folder holding train/<class>/")
    sizes.add_argument("--network", choices=NETWORK_KINDS)
    sizes.add_argument("--num-classes", type=N.CLASSES)
    sizes.add_argument("--input-size", type=N.INPUT_SIZE)
    sizes.add_argument("--C", type=N.CHANNELS)
    sizes.add_argument("--layers", type=N.LAYERS)
    parser.add_argument("--tolerance", type=N.RATE, default=1e-4, help="largest accepted |runtime - PyTorch|")
    parser.add_argument("--verify-inputs", type=N.VERIFY_INPUTS, default=3, help="random input batches compared per format")
    parser.add_argument("--seed", type=N.SEED, default=0, help="seeds random weights and verification inputs")
    parser.add_argument("--json", action="store_true", help="print one JSON line per exported file")
    return parser


def _run(args: argparse.Namespace) -> int:
    config = ExportConfig(
        formats=tuple(args.format.split(",")),
        out_dir=args.out,
        name=args.name,
        tolerance=args.tolerance,
        verify_inputs=args.verify_inputs,
        seed=args.seed,
    )
    genotype = resolve_genotype(args.genotype)
    check_export_config(config)  # format names and optional dependencies, before any work
    request = NetworkRequest(
        kind=args.network,
        C=args.C,
        layers=args.layers,
        num_classes=args.num_classes,
        input_size=args.input_size,
        dataset=args.dataset,
        data_dir=args.data_dir,
    )
    source = load_export_source(genotype, checkpoint=args.checkpoint, request=request, seed=args.seed)
    with removed_if_failed(args.out):
        results = export_model(source, config, label=describe_genotype_spec(args.genotype))
    for result in results:
        if args.json:
            print(json.dumps({"format": result.format, "path": str(result.path), "card": str(result.card_path),
                              "max_abs_diff": result.max_abs_diff, "weights": source.weights}))
        else:
            print(f"{result.format}: {result.path} (max abs diff {result.max_abs_diff:.2e}, {source.weights} weights, "
                  f"card {result.card_path.name})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cars-export", _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
