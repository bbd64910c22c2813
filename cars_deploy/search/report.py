"""RUN/report.md: the page a user picks a model from at the end of a search.

It holds the Pareto plot and the per-generation plot (relative links to RUN/plots/*.png), the Pareto
table with the budget and, after ``--verify-on``, the measured latency, and for each Pareto model a
card with the exact ``cars-train`` and ``cars-export`` commands that turn it into an app file (ONNX,
``.ptl``, ``.pte``). The report is plain text made from pareto.csv and config.json, so it lives in the
search layer and is rewritten whenever pareto.csv is: at the end of every ``run`` (a resumed run
included) and after verification (``latency.search_run.verify_search``). ``cars-inspect --genotype
RUN/pareto.csv:ROW`` prints the same card (``pareto_card``).
"""
from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import pandas as pd

from .._io import atomic_write_text
from .budgets import budgets_of
from .config import SearchConfig
from .rundir import PLOTS, RunDir

__all__ = ["REPORT_NAME", "DEMO_TRAIN_FLAGS", "commands", "pareto_card", "card_for_spec", "render_report", "write_report"]

_PARETO_ROW = re.compile(r"^(?P<run>.*?)/?pareto\.csv:(?P<row>\d+)$")

#: The report's file name in the run folder.
REPORT_NAME = "report.md"

#: cars-train flags of the report's commands on the embedded digits: a demo-sized network and schedule
#: (seconds on a CPU), so that the commands run as written; the DARTS protocol is the same command without them.
DEMO_TRAIN_FLAGS: tuple[str, ...] = ("--epochs", "2", "--max-train-batches", "4", "--max-test-images", "64",
                                     "--C", "8", "--layers", "5")


def _quote(path: Path | str) -> str:
    return shlex.quote(str(path))


def _data_flags(config: SearchConfig) -> list[str]:
    flags = ["--dataset", config.dataset]
    if config.data_dir:
        flags += ["--data-dir", config.data_dir]
    if config.input_size is not None:
        flags += ["--input-size", str(config.input_size)]
    return flags


def commands(run_dir: Path, row: int, config: SearchConfig) -> tuple[str, str]:
    """The ``cars-train`` and ``cars-export`` command lines that turn Pareto row ``row`` into app files."""
    model_dir = run_dir / "models" / str(row)
    spec = f"{run_dir}/pareto.csv:{row}"
    train = ["cars-train", spec, *_data_flags(config)]
    if config.dataset == "digits":
        train += DEMO_TRAIN_FLAGS
    train += ["--out", str(model_dir)]
    export = ["cars-export", spec, "--checkpoint", str(model_dir / "model.pt"), "--format", "onnx,ptl,pte",
              "--out", str(model_dir / "export")]
    return " ".join(_quote(a) for a in train), " ".join(_quote(a) for a in export)


def pareto_card(run_dir: str | Path, row: int, pareto: pd.DataFrame, config: SearchConfig) -> str:
    """The Markdown card of Pareto row ``row``: its numbers, its budget status and its two commands."""
    run_dir = Path(run_dir)
    if not 0 <= row < len(pareto):
        raise IndexError(f"pareto.csv has {len(pareto)} rows; no row {row}")
    r = pareto.iloc[row]
    facts = [f"accuracy {100 * float(r['accuracy']):.2f}% (SuperNet validation)",
             f"{float(r['params']) / 1e6:.3f} M params", f"{float(r['mult_adds']) / 1e6:.1f} M mult-adds"]
    if _present(r.get("latency_ms")):
        facts.append(f"{float(r['latency_ms']):.2f} ms predicted")
    if _present(r.get("latency_measured_ms")):
        facts.append(f"{float(r['latency_measured_ms']):.2f} ms measured")
    budgets = budgets_of(config)
    if budgets:
        within = bool(r["feasible"]) if "feasible" in r else False
        facts.append(f"budget {', '.join(b.describe() for b in budgets)}: {'within' if within else 'OVER'}")
    train, export = commands(run_dir, row, config)
    lines = [
        f"### Pareto row {row}",
        "",
        "; ".join(facts) + f" (costs on the {config.deploy_network} network)",
        "",
        f"`{r['genotype']}`",
        "",
        "```",
        train,
        export,
        "```",
    ]
    if config.dataset == "digits":
        lines += ["", "On the embedded digits the training command is demo-sized; drop "
                  f"`{' '.join(DEMO_TRAIN_FLAGS)}` for the full DARTS protocol."]
    return "\n".join(lines) + "\n"


def card_for_spec(spec: str) -> str | None:
    """The card of ``RUN/pareto.csv:ROW`` when ``RUN`` is a search run (it has config.json), else None:
    what ``cars-inspect`` prints under its table for such a genotype."""
    match = _PARETO_ROW.match(spec.strip())
    if match is None:
        return None
    run_dir = Path(match["run"] or ".")
    if not (run_dir / "config.json").is_file():
        return None
    _, config = RunDir.open(run_dir)
    pareto = pd.read_csv(run_dir / "pareto.csv")
    return pareto_card(run_dir, int(match["row"]), pareto, config)


def render_report(run_dir: str | Path, pareto: pd.DataFrame, config: SearchConfig, *, generation: int) -> str:
    """The whole report.md of a run."""
    run_dir = Path(run_dir)
    budgets = budgets_of(config)
    lines = [
        f"# CARS search report: {run_dir.name}",
        "",
        f"Generation {generation} of {config.n_generations}; objectives accuracy, {', '.join(config.objectives)}; "
        f"selection {config.selection}; dataset {config.dataset}; costs on the {config.deploy_network} network.",
        f"Budget: {', '.join(b.describe() for b in budgets) if budgets else 'none'}.",
        "",
        f"![Pareto front](plots/{PLOTS[1]})",
        "",
        f"![population per generation](plots/{PLOTS[0]})",
        "",
        "## Pareto set",
        "",
        _markdown(_table(pareto, bool(budgets))) if len(pareto) else "(empty)",
        "",
        "## Models",
        "",
        "Run these commands from the folder `cars-search` ran in (the paths are relative to it).",
        "",
    ]
    lines += [pareto_card(run_dir, row, pareto, config) for row in range(len(pareto))]
    return "\n".join(lines)


def write_report(run: RunDir, pareto: pd.DataFrame, config: SearchConfig, *, generation: int) -> Path:
    """Writes RUN/report.md atomically and returns its path."""
    path = run.path / REPORT_NAME
    atomic_write_text(path, render_report(run.path, pareto, config, generation=generation))
    return path


def _table(pareto: pd.DataFrame, budgeted: bool) -> pd.DataFrame:
    table = pd.DataFrame({
        "row": range(len(pareto)),
        "accuracy (%)": (pareto["accuracy"].astype(float) * 100).round(2),
        "params (M)": (pareto["params"].astype(float) / 1e6).round(3),
        "mult-adds (M)": (pareto["mult_adds"].astype(float) / 1e6).round(1),
    })
    if pareto["latency_ms"].notna().any():
        table["latency (ms)"] = pareto["latency_ms"].astype(float).round(2)
    if "latency_measured_ms" in pareto.columns:
        table["measured (ms)"] = pareto["latency_measured_ms"].astype(float).round(2)
    if budgeted:
        table["within budget"] = pareto["feasible"].map(lambda v: "yes" if bool(v) else "NO").to_numpy()
        table["violation"] = pareto["violation"].astype(float).round(4).to_numpy()
    return table


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table (written here: pandas' ``to_markdown`` needs tabulate, not a dependency for four lines)."""
    rows = [[str(c) for c in table.columns], ["---"] * len(table.columns)]
    rows += [[str(v) for v in record] for record in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
