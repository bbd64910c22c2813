import fcntl
import json

import pytest

from cars_deploy.cli.search import main as cars_search
from cars_deploy.errors import UserInputError
from experiments.runs import RunError, run_key, run_search
from experiments.scale import SearchScale

SCALE = SearchScale(C=4, layers=3, population=4, generations=2, evolve_every=1, warmup=1, batch_size=16, val_batches=1)


def test_a_stopped_search_is_resumed_and_a_finished_one_reused(image_folder, tmp_path):
    argv = SCALE.argv(data_dir=image_folder, selection="pnsga3", input_size=8)
    run = tmp_path / "searches" / f"pnsga3-{run_key(argv)}"
    # A search stopped after generation 0 (as a kill would leave it), in the folder run_search uses.
    assert cars_search([*argv, "--out", str(run), "--max-generations", "0", "--threads", "1", "--quiet"]) == 0
    assert len((run / "history.jsonl").read_text().splitlines()) == 1
    result = run_search(argv, work_dir=tmp_path, name="pnsga3", threads=1, device="cpu")
    assert result.path == run and result.seconds > 0 and len(result.history()) == 3
    assert json.loads((run / "config.json").read_text())["search"]["epochs"] == SCALE.epochs == 3
    again = run_search(argv, work_dir=tmp_path, name="pnsga3", threads=1, device="cpu")
    assert again.seconds == 0.0 and again.history() == result.history()
    assert result.command.startswith("cars-search --dataset imagefolder") and f"--out {run}" in result.command


def test_a_run_held_by_another_process_is_refused(image_folder, tmp_path):
    argv = SCALE.argv(data_dir=image_folder, selection="nsga3", input_size=8)
    run = tmp_path / "searches" / f"nsga3-{run_key(argv)}"
    run.parent.mkdir(parents=True)
    with open(run.with_name(run.name + ".lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UserInputError, match="another experiment process"):
            run_search(argv, work_dir=tmp_path, name="nsga3", threads=1, device="cpu")
    assert not run.exists()


def test_a_damaged_run_fails_with_the_commands_exit_code(image_folder, tmp_path, capsys):
    argv = SCALE.argv(data_dir=image_folder, selection="pnsga3", input_size=8)
    run = tmp_path / "searches" / f"pnsga3-{run_key(argv)}"
    assert cars_search([*argv, "--out", str(run), "--max-generations", "0", "--threads", "1", "--quiet"]) == 0
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError) as caught:
        run_search(argv, work_dir=tmp_path, name="pnsga3", threads=1, device="cpu")
    assert caught.value.exit_code == 2 and "truncated or corrupt" in capsys.readouterr().err
