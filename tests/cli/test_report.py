"""RUN/report.md: written at the end of a search (and of a resumed one), its plots linked, its table carrying
the budget, and its cars-train / cars-export commands run exactly as written; cars-inspect prints the same card."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cars_deploy.cli.inspect import main as inspect_main
from cars_deploy.cli.search import main as search_main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--C", "4", "--layers", "3", "--population", "4", "--epochs", "3", "--warmup", "1", "--evolve-every", "1",
        "--batch-size", "16", "--max-train-batches", "2", "--max-val-batches", "1", "--deploy-network", "cifar",
        "--device", "cpu", "--quiet", "--seed", "3"]


@pytest.fixture(scope="module")
def budgeted_run(tmp_path_factory):
    """A tiny budgeted search stopped after one generation, then resumed to its end, run from its own folder."""
    cwd = tmp_path_factory.mktemp("report")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        assert search_main(["--out", "run", *TINY, "--max-params", "2.15", "--max-generations", "1"]) == 0
        first = Path("run/report.md").read_text()
        assert search_main(["--resume", "run", "--device", "cpu", "--quiet"]) == 0
    finally:
        os.chdir(old)
    return cwd, first


def test_report_links_the_plots_and_shows_the_budget(budgeted_run):
    cwd, first = budgeted_run
    report = (cwd / "run" / "report.md").read_text()
    assert "Generation 1 of 2" in first and "Generation 2 of 2" in report  # rewritten by the resumed run
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (cwd / "run" / link).is_file(), link
    assert {"plots/pareto.png", "plots/population.png"} <= set(re.findall(r"\]\(([^)]+)\)", report))
    pareto = pd.read_csv(cwd / "run" / "pareto.csv")
    assert "Budget: params <= 2.15 M." in report and "| within budget | violation |" in report
    assert report.count("### Pareto row") == len(pareto)
    assert report.count("| yes |") == int(pareto["feasible"].sum())


def test_inspect_of_a_pareto_row_prints_the_reports_card(budgeted_run, capsys, monkeypatch):
    cwd, _ = budgeted_run
    monkeypatch.chdir(cwd)
    assert inspect_main(["--genotype", "run/pareto.csv:0"]) == 0
    out = capsys.readouterr().out
    card = out[out.index("### Pareto row 0"):]
    assert card in (cwd / "run" / "report.md").read_text()
    assert "cars-train run/pareto.csv:0 --dataset digits" in card


def test_the_reports_commands_run_as_written(budgeted_run):
    cwd, _ = budgeted_run
    report = (cwd / "run" / "report.md").read_text()
    card = report[report.index("### Pareto row 0"):]
    block = card[card.index("```\n") + 4: card.index("\n```", card.index("```\n") + 4)]
    commands = block.splitlines()
    assert [c.split()[0] for c in commands] == ["cars-train", "cars-export"]
    scripts = Path(sys.executable).parent
    if not (scripts / "cars-train").exists() and shutil.which("cars-train") is None:
        pytest.fail("the cars-* console scripts are not installed next to this Python")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "PATH": os.pathsep.join([str(scripts), os.environ.get("PATH", "")])}
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    for name in ("model.onnx", "model.ptl", "model.pte"):
        assert (cwd / "run" / "models" / "0" / "export" / name).is_file()
