import json
import threading

import pytest

import experiments.runs
from cars_deploy.cli.search import main as cars_search
from experiments.records import ResultsDir
from experiments.runs import RunError, run_key, run_search, train_dir, train_each
from experiments.scale import SearchScale, TrainScale

from .conftest import hold_lock

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


def test_a_run_made_under_an_earlier_default_is_refused_not_reused(image_folder, tmp_path):
    """The key is the command line, which a changed default leaves alone: the saved settings decide."""
    argv = SCALE.argv(data_dir=image_folder, selection="pnsga3", input_size=8)
    run = tmp_path / "searches" / f"old-{run_key(argv)}"
    assert cars_search([*argv, "--out", str(run), "--max-generations", "0", "--threads", "1", "--quiet"]) == 0
    saved = json.loads((run / "config.json").read_text())
    saved["search"]["path_sampling"] = "uniform"  # as the default was before fair warmup paths
    (run / "config.json").write_text(json.dumps(saved))
    history = (run / "history.jsonl").read_text()
    with pytest.raises(RunError, match="path_sampling: 'uniform' -> 'fair'") as refused:
        run_search(argv, work_dir=tmp_path, name="old", threads=1, device="cpu")
    assert refused.value.exit_code == 2 and (run / "history.jsonl").read_text() == history  # nothing touched
    assert run_search([*argv, "--path-sampling", "uniform"], work_dir=tmp_path, name="new", threads=1,
                      device="cpu").path != run



def test_a_search_held_by_another_process_is_waited_for(image_folder, tmp_path):
    argv = SCALE.argv(data_dir=image_folder, selection="nsga3", input_size=8)
    run = tmp_path / "searches" / f"nsga3-{run_key(argv)}"
    held = hold_lock(run)
    finished = []
    waiter = threading.Thread(target=lambda: finished.append(
        run_search(argv, work_dir=tmp_path, name="nsga3", threads=1, device="cpu")))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive() and not run.exists()  # it waits and writes nothing meanwhile
    held.close()
    waiter.join(timeout=120)
    assert not waiter.is_alive() and len(finished[0].history()) == SCALE.generations + 1


def test_a_model_held_by_another_process_is_put_off_then_waited_for(image_folder, tmp_path):
    train = TrainScale(C=4, layers=3, epochs=1, steps_per_epoch=1, batch_size=8)
    items = [{"model": name} for name in ("DARTS_V2", "CARS_A", "CARS_B")]

    def argv_of(item):
        return train.argv(item["model"], data_dir=image_folder, input_size=8)

    held = hold_lock(train_dir(argv_of(items[0]), work_dir=tmp_path))
    order = []
    real_retrain = experiments.runs.retrain

    def retrain_and_release(argv, **kwargs):
        if not kwargs["wait"] and argv[0] != "DARTS_V2" and not order:
            threading.Timer(0.5, held.close).start()  # the other process finishes while this one works
        model = real_retrain(argv, **kwargs)
        order.append(argv[0])
        return model

    results = ResultsDir(tmp_path / "results", {"test": 1})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(experiments.runs, "retrain", retrain_and_release)
        records = train_each(items, key="model", argv_of=argv_of, results=results, name="models.jsonl",
                             work_dir=tmp_path, threads=1, device="cpu")
    assert order == ["CARS_A", "CARS_B", "DARTS_V2"]  # the held model came last, not never
    assert [r["model"] for r in results.read_jsonl("models.jsonl")] == order == [r["model"] for r in records]

    # A second process that read the file before the first one recorded these models reuses them
    # (cached runs) and keeps the first's records instead of writing each a second time.
    reads = []
    real_read = results.read_jsonl

    def stale_at_first(name):
        reads.append(name)
        return [] if len(reads) == 1 else real_read(name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(results, "read_jsonl", stale_at_first)
        again = train_each(items, key="model", argv_of=argv_of, results=results, name="models.jsonl",
                           work_dir=tmp_path, threads=1, device="cpu")
    assert real_read("models.jsonl") == records and sorted(map(str, again)) == sorted(map(str, records))


def test_a_model_held_by_another_process_is_left_to_it_when_not_waiting(image_folder, tmp_path):
    """A worker with more lists to go moves on instead of idling on the other process's model."""
    train = TrainScale(C=4, layers=3, epochs=1, steps_per_epoch=1, batch_size=8)
    items = [{"model": name} for name in ("DARTS_V2", "CARS_A")]

    def argv_of(item):
        return train.argv(item["model"], data_dir=image_folder, input_size=8)

    held = hold_lock(train_dir(argv_of(items[0]), work_dir=tmp_path))
    results = ResultsDir(tmp_path / "results", {"test": 1})
    try:
        records = train_each(items, key="model", argv_of=argv_of, results=results, name="models.jsonl",
                             work_dir=tmp_path, threads=1, device="cpu", wait_for_busy=False)
    finally:
        held.close()
    assert [r["model"] for r in records] == ["CARS_A"] == [r["model"] for r in results.read_jsonl("models.jsonl")]
    assert not (train_dir(argv_of(items[0]), work_dir=tmp_path) / "model_card.json").exists()


def test_a_damaged_run_fails_with_the_commands_exit_code(image_folder, tmp_path, capsys):
    argv = SCALE.argv(data_dir=image_folder, selection="pnsga3", input_size=8)
    run = tmp_path / "searches" / f"pnsga3-{run_key(argv)}"
    assert cars_search([*argv, "--out", str(run), "--max-generations", "0", "--threads", "1", "--quiet"]) == 0
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError) as caught:
        run_search(argv, work_dir=tmp_path, name="pnsga3", threads=1, device="cpu")
    assert caught.value.exit_code == 2 and "truncated or corrupt" in capsys.readouterr().err
