"""``cars-inspect``: parameters, mult-adds, a cell summary and (with ``--latency-table``) the predicted
latency of any genotype's network; the reports come from ``latency.summary``, this module reads the
arguments and prints them."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any, Sequence

from ..latency.predictor import table_network
from ..latency.summary import genotype_reports
from ..profilers.table import LatencyTable
from ..search.report import card_for_spec
from ..space import GENOTYPES, NETWORK_KINDS, NetworkConfig
from ..space.resolve import describe_genotype_spec, resolve_genotype
from . import _numbers as N
from ._common import CliParser, run_command

__all__ = ["main"]


def _parser() -> CliParser:
    parser = CliParser(
        prog="cars-inspect",
        description="Report params, mult-adds, a cell summary and, with --latency-table, the predicted latency of "
        "genotypes (a published name, a DARTS-notation string, a JSON file or RUN/pareto.csv:ROW).",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--genotype", "-g", nargs="+", metavar="G", help="one or more genotypes")
    which.add_argument("--all", action="store_true", help="every published genotype")
    parser.add_argument("--network", choices=NETWORK_KINDS,
                        help="default: cifar, or with --latency-table the network the table was made for")
    parser.add_argument("--C", type=N.CHANNELS, help="initial channels (default: 36 cifar, 48 imagenet)")
    parser.add_argument("--layers", type=N.LAYERS, help="number of cells (default: 20 cifar, 14 imagenet)")
    parser.add_argument("--classes", type=N.CLASSES, help="classifier outputs (default: 10 cifar, 1000 imagenet)")
    parser.add_argument("--input-size", type=N.INPUT_SIZE, help="input side in pixels (default: 32 cifar, 224 imagenet)")
    parser.add_argument("--latency-table", metavar="TABLE",
                        help="add latency_ms predicted from this latency table (a path or a shipped table's name, "
                        "e.g. host-cpu-imagenet-ort1), calibrated when the table holds a calibration")
    parser.add_argument("--json", action="store_true", help="one JSON object per genotype on stdout")
    return parser


def _config(args: argparse.Namespace, table_config: NetworkConfig | None = None) -> NetworkConfig:
    changes = {
        key: value
        for key, value in (("C", args.C), ("layers", args.layers), ("num_classes", args.classes), ("input_size", args.input_size))
        if value is not None
    }
    if args.network is None and table_config is not None:
        # With a latency table and no --network, inspect the network the table was made for.
        config = replace(table_config, **changes)
    elif (args.network or "cifar") == "cifar":
        config = NetworkConfig.cifar(**changes)
    else:
        config = NetworkConfig.imagenet(**changes)
    config.validate()
    return config


def _run(args: argparse.Namespace) -> int:
    table = LatencyTable.load(args.latency_table) if args.latency_table is not None else None
    config = _config(args, table_network(table) if table is not None else None)
    specs = GENOTYPES.names() if args.all else args.genotype
    genotypes = [resolve_genotype(spec) for spec in specs]
    reports = [{"name": describe_genotype_spec(spec), **report}
               for spec, report in zip(specs, genotype_reports(genotypes, config, table=table))]
    if args.json:
        for report in reports:
            print(json.dumps(report))
        return 0
    _print_table(reports, config)
    for spec in specs:  # a search's Pareto row: also the card of its run's report.md (search.report)
        card = card_for_spec(spec)
        if card is not None:
            print()
            print(card, end="")
    return 0


def _print_table(reports: list[dict[str, Any]], config: NetworkConfig) -> None:
    import pandas as pd

    print(f"{config.kind} network: C={config.C}, {config.layers} cells, {config.input_size}x{config.input_size} input, {config.num_classes} classes")
    table = pd.DataFrame(
        {
            "name": r["name"],
            "params (M)": round(r["params"] / 1e6, 3),
            "mult-adds (M)": round(r["mult_adds"] / 1e6, 1),
            **({"latency (ms)": round(r["latency_ms"], 3)} if "latency_ms" in r else {}),
            "normal cell": _summary(r["normal_ops"]),
            "reduction cell": _summary(r["reduce_ops"]),
        }
        for r in reports
    )
    print(table.to_string(index=False))
    if reports and "latency_ms" in reports[0]:
        how = "calibrated block sum" if reports[0]["latency_calibrated"] else "raw block sum (table not calibrated)"
        print(f"latency: {how} of {reports[0]['latency_table']} on {reports[0]['latency_device']}")
    if len(reports) == 1:
        print(f"genotype: {reports[0]['genotype']}")
    sys.stdout.flush()


def _summary(ops: dict[str, int]) -> str:
    return " ".join(f"{count}x{op}" for op, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cars-inspect", _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
