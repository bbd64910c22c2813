"""Ranking fidelity of SuperNet training variants: does the SuperNet rank architectures as training them alone does?

A hardware-aware search is only worth running if its SuperNet's accuracy ranks architectures the way
training them would (CARS selects on it, section 3.2). This benchmark fixes one set of genotypes - half
from the final population of a reference search, half uniformly random, each half spread over model
size - trains each alone once with the short budget of EXPERIMENTS.md (and a second seed on a subset, to
measure the yardstick's own noise), then, for every SuperNet training variant, runs the same search
with that variant and measures each genotype's SuperNet accuracy on >= 5,000 validation images (and on
512, the search's usual sample, to show what the sample size costs). It reports Kendall's tau between
SuperNet and stand-alone accuracy, overall and per source, with bootstrap 95% intervals, and the gap by
which the SuperNet flatters the population it trained on.

Variants (``VARIANTS``): the earlier default (uniform warmup paths), BN re-estimation on more batches,
B = 4 architectures per step, a longer warmup, and strict-fairness path sampling (FairNAS) in the
warmup, which this benchmark made the default.

Everything is resumable and shared: trained models, searches and SuperNet accuracies are cached, so a
killed run continues and a new variant reuses every stand-alone model. Two processes can split the work
(``--stage models`` in one, ``--stage supernets`` in the other; both wait for the reference search).

    .venv/bin/python benchmarks/bench_ranking.py --threads 1 --stage models &
    .venv/bin/python benchmarks/bench_ranking.py --threads 1 --stage supernets

A stronger yardstick (another stand-alone budget, e.g. ``--train-epochs 20``) goes in its own results
folder and ranks the same genotypes against the same SuperNet measurements: ``--reference`` names the
folder they are read from, so nothing is searched or measured again.

    .venv/bin/python benchmarks/bench_ranking.py --stage models --train-epochs 20 \
        --reference benchmarks/results/ranking --out benchmarks/results/ranking-e20

Writes ``benchmarks/results/ranking/``: ``genotypes.csv``, ``models.jsonl`` / ``models_seed1.jsonl``
(stand-alone runs), ``supernet-<variant>.csv``, ``ranking.csv`` (one row per genotype, a column per
measurement), ``summary.json``, ``commands.txt``, ``timing.json`` and ``ranking.png``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a file: make ``experiments`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cars_deploy.errors import UserInputError  # noqa: E402
from cars_deploy.search.rundir import RunDir  # noqa: E402
from cars_deploy.space import parse_genotype  # noqa: E402
from experiments.choose import spread  # noqa: E402
from experiments.common import REPO_ROOT, experiment_parser, main_wrapper, prepare, run_info  # noqa: E402
from experiments.figures import new_figure, save_figure  # noqa: E402
from experiments.ranking_fidelity import choose_genotypes, supernet_accuracy  # noqa: E402
from experiments.records import ResultsDir  # noqa: E402
from experiments.runs import SearchRun, command_text, run_search, train_command, train_each  # noqa: E402
from experiments.scale import SearchScale, TrainScale, add_search_flags, add_train_flags, search_scale, train_scale  # noqa: E402
from experiments.stats import paired_tau_difference, partial_tau, rank_correlation  # noqa: E402
from experiments.yardstick import flattery_gap, flattery_gap_ci, yardstick_noise  # noqa: E402

__all__ = ["VARIANTS", "Variant", "analyse", "interleave_sources", "main"]

NAME = "bench_ranking"
STAGES: tuple[str, ...] = ("all", "models", "supernets", "report")
log = logging.getLogger("experiments")


@dataclass(frozen=True)
class Variant:
    """One way of training the SuperNet: changes to the search scale and extra ``cars-search`` flags."""

    note: str  # what the variant changes, for the report
    scale: Mapping[str, Any] = field(default_factory=dict)  # SearchScale fields changed
    flags: tuple[str, ...] = ()  # extra cars-search flags
    recalibration_batches: int | None = None  # BN re-estimation batches when measuring (None: the search's)

    def search_argv(self, base: SearchScale, **argv_options: Any) -> list[str]:
        """The cars-search arguments of this variant's search at scale ``base``."""
        return [*replace(base, **self.scale).argv(**argv_options), *self.flags]


#: Uniform warmup paths, the default before this benchmark chose strict fairness: the reference every
#: other variant changes one thing of.
_UNIFORM: tuple[str, ...] = ("--path-sampling", "uniform")

#: The SuperNet training variants compared; ``baseline`` picks the genotypes.
VARIANTS: dict[str, Variant] = {
    "baseline": Variant("the earlier default (B=1, 2 BN re-estimation batches, uniform warmup paths)", flags=_UNIFORM),
    "bn10": Variant("BN re-estimated on 10 training batches instead of 2",
                    flags=(*_UNIFORM, "--bn-recalibration-batches", "10"), recalibration_batches=10),
    "arch4": Variant("B = 4 architectures per SGD step (eq. 3)", flags=(*_UNIFORM, "--arch-batch", "4")),
    "warmup20": Variant("20 warmup epochs instead of 10 (same generations)", scale={"warmup": 20}, flags=_UNIFORM),
    "fair": Variant("strict-fairness warmup paths (FairNAS): every op of every edge once per group of steps; "
                    "the default since", flags=("--path-sampling", "fair")),
    "fair-bn10": Variant("fair warmup paths and BN re-estimated on 10 batches (the two best single changes)",
                         flags=("--path-sampling", "fair", "--bn-recalibration-batches", "10"), recalibration_batches=10),
}

#: The measurement columns of a variant: accuracy on the large sample, and on the search's usual one.
_LARGE, _SMALL = "supernet", "supernet_512"


def interleave_sources(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``items`` taken alternately from each source (population, random, population, ...), each source in
    its own order: the order models are trained in, so that a run stopped halfway has ranked both halves."""
    by_source: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        by_source.setdefault(str(item["source"]), []).append(item)
    return [item for group in itertools.zip_longest(*by_source.values()) for item in group if item is not None]


def analyse(table: pd.DataFrame, variants: Sequence[str], *, seed: int) -> dict[str, Any]:
    """Per variant: tau of SuperNet accuracy (large and small sample) against stand-alone accuracy, overall
    and per source, with bootstrap intervals, and the flattery gap; ``table`` has one row per genotype.
    What size does to the ranking: tau(params, stand-alone) once, and per variant tau(params, SuperNet)
    and the size-held tau (``partial_tau``: SuperNet against stand-alone beyond what both owe to size)."""
    trained = table.dropna(subset=["test_accuracy"])
    summary: dict[str, Any] = {"genotypes": int(len(table)), "trained": int(len(trained)), "variants": {}}
    size_rng = np.random.default_rng([seed, 0x512E])
    summary["tau_params_standalone"] = rank_correlation(trained["params"], trained["test_accuracy"], rng=size_rng)
    for name in variants:
        large, small = f"{_LARGE}_{name}", f"{_SMALL}_{name}"
        if large not in trained.columns or trained[large].isna().all():
            continue
        rows = trained.dropna(subset=[large])

        def corr(column: str, subset: pd.DataFrame = rows) -> dict[str, Any]:
            rng = np.random.default_rng([seed, 0xB007])  # the same resamples for every variant
            return rank_correlation(subset[column].to_numpy(), subset["test_accuracy"].to_numpy(), rng=rng)

        summary["variants"][name] = {
            "note": VARIANTS[name].note,
            "n": int(len(rows)),
            "tau": corr(large),
            "tau_by_source": {source: corr(large, part) for source, part in rows.groupby("source")},
            "tau_512_images": corr(small),
            "flattery_gap_points": flattery_gap(rows, large),
            "flattery_gap_ci95": flattery_gap_ci(rows, large, rng=np.random.default_rng([seed, 0xF1A7])),
            "mean_supernet_accuracy": float(rows[large].mean()),
            "tau_params_supernet": rank_correlation(rows["params"], rows[large], rng=np.random.default_rng([seed, 0x512E])),
            "tau_size_held": partial_tau(rows[large], rows["test_accuracy"], rows["params"],
                                         rng=np.random.default_rng([seed, 0x4E1D])),
        }
        base = f"{_LARGE}_baseline"
        if name != "baseline" and base in rows.columns and rows[base].notna().all():
            summary["variants"][name]["tau_minus_baseline"] = paired_tau_difference(
                rows[large], rows[base], rows["test_accuracy"], rng=np.random.default_rng([seed, 0xD1FF]))
    return summary


def plot(table: pd.DataFrame, summary: Mapping[str, Any], path: Path) -> Path:
    """SuperNet against stand-alone accuracy, one panel per measured variant, marked by source."""
    measured = list(summary["variants"])
    figure = new_figure(4.2 * max(len(measured), 1), 4.2)
    markers = {"population": ("o", "tab:red"), "random": ("s", "tab:blue")}
    for panel, name in enumerate(measured, start=1):
        ax = figure.add_subplot(1, max(len(measured), 1), panel)
        rows = table.dropna(subset=["test_accuracy", f"{_LARGE}_{name}"])
        for source, part in rows.groupby("source"):
            marker, color = markers.get(source, ("o", "0.4"))
            ax.scatter(part[f"{_LARGE}_{name}"] * 100, part["test_accuracy"] * 100, marker=marker, color=color,
                       label=source, s=22)
        stats = summary["variants"][name]["tau"]
        low, high = stats["tau_ci95"]
        tau = "n/a" if stats["kendall_tau"] is None else f"{stats['kendall_tau']:.2f}"
        ci = "" if low is None else f" [{low:.2f}, {high:.2f}]"
        ax.set_title(f"{name}: tau {tau}{ci}", fontsize=9)
        ax.set_xlabel("SuperNet validation accuracy (%)")
        ax.set_ylabel("stand-alone test accuracy (%)" if panel == 1 else "")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return save_figure(figure, path)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_summary(summary: Mapping[str, Any], noise: Mapping[str, Any], results: ResultsDir) -> None:
    print(f"SuperNet ranking fidelity: {summary['trained']} of {summary['genotypes']} genotypes trained alone")
    if noise["pairs"]:
        seeds = noise["seed_vs_seed"]
        print(f"yardstick noise ({noise['pairs']} genotypes, 2 seeds): mean |difference| "
              f"{noise['mean_abs_diff_points']:.2f} points, tau between seeds {_fmt(seeds['kendall_tau'])}")
        if noise["ceiling"] and noise["ceiling"]["perfect_vs_one"] is not None:
            low, high = noise["run_sd_ci95"]
            best = noise["ceiling_at_low_run_sd"]["perfect_vs_one"]
            print(f"ceiling: a perfect ranking would reach tau {noise['ceiling']['perfect_vs_one']:.2f} against one seed "
                  f"(run SD {noise['run_sd_points']:.2f} [{low:.2f}, {high:.2f}] of a {noise['spread_sd_points']:.2f}-"
                  f"point spread; {best:.2f} at the low end)")
    for name, stats in summary["variants"].items():
        tau, low, high = stats["tau"]["kendall_tau"], *stats["tau"]["tau_ci95"]
        per_source = ", ".join(f"{s} {_fmt(v['kendall_tau'])}" for s, v in stats["tau_by_source"].items())
        gap, (gap_low, gap_high) = stats["flattery_gap_points"], stats["flattery_gap_ci95"]
        versus = stats.get("tau_minus_baseline", {}).get("difference")
        print(f"{name:>9}: tau {_fmt(tau)} [{_fmt(low)}, {_fmt(high)}]; {per_source}; 512 images: "
              f"{_fmt(stats['tau_512_images']['kendall_tau'])}; flattery gap {_fmt(gap, 1)} [{_fmt(gap_low, 1)}, "
              f"{_fmt(gap_high, 1)}] points" + ("" if versus is None else
              f"; tau minus baseline {versus:+.2f} [{_fmt(stats['tau_minus_baseline']['ci95'][0])}, "
              f"{_fmt(stats['tau_minus_baseline']['ci95'][1])}]"))
    agreement = summary.get("reference_yardstick")
    if agreement:
        tau = agreement["tau"]
        print(f"this budget against the reference's {agreement['train'].get('epochs', '?')}-epoch one ({tau['n']} "
              f"genotypes): tau {_fmt(tau['kendall_tau'])} [{_fmt(tau['tau_ci95'][0])}, {_fmt(tau['tau_ci95'][1])}]")
    by_size = summary.get("tau_params_standalone", {})
    if by_size.get("kendall_tau") is not None:
        print(f"size: tau(params, stand-alone) {by_size['kendall_tau']:+.2f} (p {by_size['kendall_p']:.2f}); per variant "
              "tau(params, SuperNet) and the size-held tau (SuperNet vs stand-alone beyond size):")
        for name, stats in summary["variants"].items():
            held = stats["tau_size_held"]
            print(f"{name:>9}: tau(params, SuperNet) {_fmt(stats['tau_params_supernet']['kendall_tau'], 2)}; size-held "
                  f"tau {_fmt(held['partial_tau'])} [{_fmt(held['ci95'][0])}, {_fmt(held['ci95'][1])}]")
    print(f"results: {results.path}")


def _run(args: argparse.Namespace) -> int:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or "baseline" not in variants:
        raise UserInputError(f"--variants must name baseline and any of {', '.join(VARIANTS)}; unknown: {unknown}")
    if args.n < 6 or not 0 <= args.second_seed <= args.n:
        raise UserInputError("--n must be at least 6 and --second-seed between 0 and --n")
    scale, budget = search_scale(args), train_scale(args)
    settings = {"benchmark": NAME, "search": asdict(scale), "train": asdict(budget), "n": args.n,
                "second_seed": args.second_seed, "pool": args.pool, "val_batches": args.val_batches}  # fmt: skip
    if args.out is None:
        args.out = REPO_ROOT / "benchmarks" / "results" / "ranking"
    experiment = prepare(NAME, args, settings)
    results = experiment.results
    reference = reference_results(args.reference, results.settings) if args.reference else None

    def measured_path(name: str) -> Path | None:
        """This variant's SuperNet accuracies: measured here, else in the reference folder, else None."""
        for folder in (results.path, reference and reference.path):
            if folder is not None and (folder / f"supernet-{name}.csv").is_file():
                return folder / f"supernet-{name}.csv"
        return None
    argv_options = {"data_dir": experiment.data_dir, "selection": "pnsga3", "input_size": experiment.input_size}

    def search(name: str) -> SearchRun:
        run = run_search(VARIANTS[name].search_argv(scale, **argv_options), work_dir=experiment.work_dir,
                         name=f"ranking-{name}", threads=experiment.threads, device=experiment.device)
        results.add_seconds(f"search_{name}", run.seconds)
        return run

    # The genotype set is picked once, from the reference search, and then read back: it stays the same
    # for every variant and every later session, even where the search would come out otherwise.
    saved = results.file("genotypes.csv")
    if reference is not None and not saved.is_file():
        results.write_csv("genotypes.csv", pd.read_csv(reference.file("genotypes.csv")))
    if saved.is_file():
        chosen = pd.read_csv(saved)
    else:
        count = budget.params_count(data_dir=experiment.data_dir, input_size=experiment.input_size)
        chosen = choose_genotypes(pd.read_csv(RunDir(search("baseline").path).population_path), n=args.n,
                                  source="mixed", count=count, rng=np.random.default_rng([args.seed, 0x4A4B]),
                                  pool_size=args.pool)
        results.write_csv("genotypes.csv", chosen)
    items = chosen[["item", "source", "genotype", "params"]].to_dict("records")
    seed1_items = [items[i] for i in spread(chosen["params"].to_numpy(), args.second_seed)] if args.second_seed else []
    second = replace(budget, seed=budget.seed + 1)

    def argv_of(model_budget: TrainScale) -> Any:
        return lambda item: model_budget.argv(item["genotype"], data_dir=experiment.data_dir,
                                              input_size=experiment.input_size)

    commands = [*(command_text("cars-search", VARIANTS[name].search_argv(scale, **argv_options)) for name in variants),
                *(train_command(argv_of(budget)(i), work_dir=experiment.work_dir) for i in items),
                *(train_command(argv_of(second)(i), work_dir=experiment.work_dir) for i in seed1_items)]
    results.write_text("commands.txt", "\n".join(commands) + "\n")

    def update(_: Any = None) -> dict[str, Any]:
        table = chosen.copy()
        models = pd.DataFrame(results.read_jsonl("models.jsonl"), columns=["item", "test_accuracy"])
        seed1 = pd.DataFrame(results.read_jsonl("models_seed1.jsonl"), columns=["item", "test_accuracy"])
        table = table.merge(models, on="item", how="left")
        table = table.merge(seed1.rename(columns={"test_accuracy": "test_accuracy_seed1"}), on="item", how="left")
        for name in variants:
            path = measured_path(name)
            if path is not None:
                measured = pd.read_csv(path).rename(columns={_LARGE: f"{_LARGE}_{name}", _SMALL: f"{_SMALL}_{name}"})
                table = table.merge(measured, on="item", how="left")
        summary = analyse(table, variants, seed=args.seed)
        summary["yardstick_noise"] = yardstick_noise(models, seed1, seed=args.seed)
        if reference is not None:
            summary["reference_yardstick"] = agreement_with_reference(table, reference, seed=args.seed)
        summary["run_info"] = run_info(experiment)
        results.write_csv("ranking.csv", table)
        results.write_json("summary.json", summary)
        if summary["variants"] and table["test_accuracy"].notna().any():
            plot(table, summary, results.file("ranking.png"))
        return summary

    if args.stage in ("all", "supernets"):
        for name in variants:
            if measured_path(name) is not None:
                continue
            run = search(name)
            began = time.perf_counter()
            genotypes = [parse_genotype(g) for g in chosen["genotype"]]
            accuracy = {
                column: supernet_accuracy(run.path, genotypes, val_batches=batches, device=experiment.device,
                                          recalibration_batches=VARIANTS[name].recalibration_batches,
                                          modes={column: True})[column]
                for column, batches in ((_LARGE, args.val_batches), (_SMALL, 2))
            }
            results.write_csv(f"supernet-{name}.csv", pd.DataFrame({"item": chosen["item"], **accuracy}))
            results.add_seconds(f"supernet_evaluation_{name}", time.perf_counter() - began)
            update()
    if args.stage in ("all", "models"):
        # The yardstick's noise first (both seeds of the paired genotypes), then the rest: a stopped run
        # already says how far any ranking against this budget can be trusted.
        # A model another worker holds is left to it on the first round, so this worker goes on to the
        # next list rather than idle at the end of one; the second round waits for whatever is left.
        rest = [item for item in interleave_sources(items) if item not in seed1_items]
        lists = ((budget, "models.jsonl", seed1_items), (second, "models_seed1.jsonl", seed1_items),
                 (budget, "models.jsonl", rest))
        for wait in (False, True):
            for model_budget, name, todo in lists:
                train_each(todo, key="item", argv_of=argv_of(model_budget), results=results, name=name,
                           work_dir=experiment.work_dir, threads=experiment.threads, device=experiment.device,
                           after_each=update, wait_for_busy=wait)
    summary = update()
    _print_summary(summary, summary["yardstick_noise"], results)
    return 0


def agreement_with_reference(table: pd.DataFrame, reference: ResultsDir, *, seed: int) -> dict[str, Any]:
    """How far this budget's stand-alone ranking agrees with the reference folder's (another budget on the
    same genotypes): Kendall tau over the genotypes trained in both, and the reference's budget."""
    theirs = pd.DataFrame(reference.read_jsonl("models.jsonl"), columns=["item", "test_accuracy"])
    both = table[["item", "test_accuracy"]].merge(theirs.rename(columns={"test_accuracy": "reference"}), on="item")
    both = both.dropna()
    return {"folder": str(reference.path), "train": reference.settings.get("train", {}),
            "tau": rank_correlation(both["reference"], both["test_accuracy"], rng=np.random.default_rng([seed, 0x2EF]))}


def reference_results(folder: Path, settings: Mapping[str, Any]) -> ResultsDir:
    """``folder``, checked to be a bench_ranking results folder whose genotypes and SuperNet accuracies a
    run of ``settings`` may reuse (same search, genotype set, validation sample and image subset), opened
    with its own settings, so reading it writes nothing."""
    try:
        saved = json.loads((folder / ResultsDir.SETTINGS).read_text())
    except (OSError, ValueError):
        raise UserInputError(f"--reference {folder} holds no readable {ResultsDir.SETTINGS}") from None
    if not (folder / "genotypes.csv").is_file():
        raise UserInputError(f"--reference {folder} has no genotypes.csv yet")
    shared = ("benchmark", "search", "n", "pool", "val_batches", "subset", "input_size")
    differ = [key for key in shared if saved.get(key) != settings.get(key)]
    if differ:
        raise UserInputError(f"--reference {folder} was made with other {', '.join(differ)} settings")
    return ResultsDir(folder, saved)


def _parser() -> Any:
    parser = experiment_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"SuperNet training variants, comma-separated (default {','.join(VARIANTS)})")
    parser.add_argument("--stage", choices=STAGES, default="all",
                        help="models: train the genotypes alone; supernets: the variants' searches and SuperNet "
                        "accuracies; all (default): both, in one process; report: only the analysis of what is done")
    parser.add_argument("--n", type=int, default=32, help="genotypes, half population and half random (default 32)")
    parser.add_argument("--second-seed", type=int, default=8,
                        help="genotypes (spread over size) also trained with a second seed (default 8)")
    parser.add_argument("--pool", type=int, default=5000, help="random genotypes the random half is spread from")
    parser.add_argument("--val-batches", type=int, default=20,
                        help="validation batches of 256 images per SuperNet accuracy (default 20: 5,120 images)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="a results folder of the same search whose genotypes and SuperNet accuracies are "
                        "reused (to rank them against another --train-* budget in a new --out)")
    add_search_flags(parser)
    add_train_flags(parser)
    # The reduced search of EXPERIMENTS.md 1b: 20 SGD steps per SuperNet epoch, 256 images per individual.
    parser.set_defaults(search_max_train_batches=20, search_val_batches=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper(NAME, _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
