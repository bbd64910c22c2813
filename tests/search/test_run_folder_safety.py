"""A run folder under kills and concurrent commands: the checkpoint is the commit point (the tables are
never ahead of it, and a resume re-renders them), a resume removes the temporaries a killed writer left,
and a second process on one run is refused at once, naming the first, with nothing changed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from cars_deploy.cli.search import main
from cars_deploy.search import CarsSearch
from tests.lock_holder import start_holder

from .test_cli_search import TINY
from .test_loop import _untimed

ROOT = Path(__file__).resolve().parents[2]

# Runs the search of CONFIG in RUN and SIGKILLs itself while writing pareto.csv of generation KILL_AT:
# after that generation's checkpoint, history.jsonl and population.csv, before its pareto.csv.
_KILLED_SEARCH = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)  # as in the test process: CPU runs are bit-for-bit at one thread count
from cars_deploy.search import CarsSearch
from cars_deploy.search.config import SearchConfig
from cars_deploy.search.rundir import RunDir
config, run, kill_at = SearchConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], int(sys.argv[3])
real = RunDir.write_table
def write_table(self, which, table):
    if which == "pareto" and json.loads(self.history_path.read_text().splitlines()[-1])["generation"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real(self, which, table)
RunDir.write_table = write_table
CarsSearch(config, run, device="cpu", show_progress=False).run()
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_search_killed_between_checkpoint_and_tables_resumes_consistent(tmp_path, tiny_config):
    full = CarsSearch(tiny_config, tmp_path / "full", device="cpu", show_progress=False)
    full.run()

    run = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", _KILLED_SEARCH, json.dumps(tiny_config.to_dict()), str(run), "2"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    saved = torch.load(run / "checkpoint.pt", weights_only=True)
    assert saved["generation"] == 2  # the checkpoint was written first ...
    history = (run / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["generation"] == 2  # ... the history followed, pareto.csv did not
    stale = run / ".checkpoint.pt.k1ll3d_x.tmp"  # what a kill in the middle of a checkpoint write leaves
    stale.write_bytes(os.urandom(1 << 20))
    plot_stale = run / "plots" / ".pareto.png.abcdefgh.tmp"
    plot_stale.parent.mkdir(exist_ok=True)
    plot_stale.write_bytes(b"x")
    notes = run / "my-notes.tmp"
    notes.write_text("not ours")

    resumed = CarsSearch.resume(run, device="cpu", show_progress=False)
    assert not stale.exists() and not plot_stale.exists() and notes.exists()
    assert resumed.generation == 2 and len((run / "history.jsonl").read_text().splitlines()) == 3
    resumed.run()
    resumed.close()
    for name in ("population.csv", "pareto.csv"):
        assert (run / name).read_text() == (tmp_path / "full" / name).read_text(), name

    def history(folder):
        return _untimed([json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()])

    assert history(run) == history(tmp_path / "full")


def test_a_second_search_on_one_run_is_refused_naming_the_first_and_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--objective", "params", "--out", str(run), *TINY, "--max-generations", "1", "--quiet"]) == 0
    capsys.readouterr()
    before = _files(run)
    holder = start_holder("run", run)
    try:
        for argv in (["--resume", str(run), "--device", "cpu"], ["--out", str(run), "--overwrite", *TINY]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert f"search run {run} is in use by process {holder.pid}" in err and "lock_holder" in err, err
        fresh = tmp_path / "fresh"
        holder_fresh = start_holder("run", fresh)
        try:
            assert main(["--out", str(fresh), *TINY]) == 2
            assert "is in use by process" in capsys.readouterr().err
        finally:
            holder_fresh.send_signal(signal.SIGKILL)
            holder_fresh.wait()
        assert not fresh.exists()  # a refused new run creates no folder
    finally:
        holder.send_signal(signal.SIGKILL)  # the first run dies without releasing anything
        holder.wait()
    assert _files(run) == before
    assert main(["--resume", str(run), "--device", "cpu", "--quiet"]) == 0  # a dead holder blocks nothing
