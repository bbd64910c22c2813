import json

import pandas as pd

from cars_deploy.cli.search import main

TINY = ["--C", "4", "--layers", "3", "--population", "4", "--epochs", "3", "--warmup", "1", "--evolve-every", "1",
        "--batch-size", "16", "--max-train-batches", "2", "--max-val-batches", "1", "--deploy-network", "cifar"]


def test_search_stop_and_resume_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--objective", "params,mult_adds", "--out", str(run), *TINY, "--max-generations", "1"]) == 0
    out = capsys.readouterr().out
    assert "stopped (resume with --resume" in out and "Pareto set" in out
    assert main(["--resume", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "CARS search finished: generation 2/2" in out and "accuracy (%)" in out
    config = json.loads((run / "config.json").read_text())["search"]
    assert config["objectives"] == ["params", "mult_adds"] and config["selection"] == "pnsga3"
    pareto = pd.read_csv(run / "pareto.csv")
    assert (pareto["objective"] == "params,mult_adds").all()
    assert len((run / "history.jsonl").read_text().splitlines()) == 3


def _one_line_error(capsys, code, argv, *needles):
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    assert status == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_calls_are_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "r")
    _one_line_error(capsys, 2, ["--objective", "latency", "--out", out, *TINY], "--latency-table")
    _one_line_error(capsys, 2, ["--objective", "flops", "--out", out, *TINY], "unknown objective 'flops'")
    _one_line_error(capsys, 2, ["--out", out, *TINY[:-2], "--epochs", "4", "--evolve-every", "2"], "multiple of --evolve-every")
    _one_line_error(capsys, 2, ["--resume", str(tmp_path / "missing")], "not a search run")
    _one_line_error(capsys, 2, ["--dataset", "cifar10", "--out", out, *TINY], "--data-dir")
    _one_line_error(capsys, 2, ["--out", out, "--selection", "random"], "invalid choice")
    assert not (tmp_path / "r").exists()  # nothing is left behind by a refused call


def test_resume_refuses_new_settings_and_out_refuses_an_existing_run(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["--out", run, *TINY, "--max-generations", "0"]) == 0
    capsys.readouterr()
    _one_line_error(capsys, 2, ["--resume", run, "--population", "8"], "drop --population")
    _one_line_error(capsys, 2, ["--out", run, *TINY], "already holds a search")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    _one_line_error(capsys, 2, ["--resume", run], "truncated or corrupt")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert main(["--out", run, *TINY, "--max-generations", "0", "--overwrite", "--seed", "5"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["search"]["seed"] == 5
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
