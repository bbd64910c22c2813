"""cars-train owns its output folder: one process at a time, and a rerun removes what a killed one left."""
from __future__ import annotations

import signal

from cars_deploy.cli.train import main
from tests.lock_holder import start_holder

QUICK = ["--C", "4", "--layers", "3", "--epochs", "1", "--batch-size", "32", "--max-train-batches", "2"]


def test_a_second_training_in_one_folder_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    holder = start_holder("path", out)
    try:
        assert main(["DARTS_V2", *QUICK, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"training output {out} is in use by process {holder.pid}" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not out.exists()  # refused before anything is made


def test_a_rerun_removes_the_temporaries_of_a_killed_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".checkpoint.pt.x1y2z3w4.tmp"
    stale.write_bytes(b"\0" * 4096)
    kept = out / "notes.txt"
    kept.write_text("mine")
    assert main(["DARTS_V2", *QUICK, "--out", str(out)]) == 0
    assert not stale.exists() and kept.read_text() == "mine"
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "model.pt", "model_card.json", "notes.txt"}
