import json

import pandas as pd
import pytest
import torch

from cars_deploy.errors import CheckpointError, UserInputError
from cars_deploy.search import CarsSearch
from cars_deploy.search.checkpoint import load_checkpoint
from cars_deploy.search.trainer import SuperNetTrainer
from cars_deploy.space import resolve_genotype

TIMING = {"seconds", "eval_seconds", "bn_recalibration_seconds"}


def _untimed(history):
    """The history without wall times, as JSON text (so that NaN equals NaN)."""
    return json.dumps([{k: v for k, v in record.items() if k not in TIMING} for record in history], sort_keys=True)


def _state(search):
    return (
        [ind.genotype for ind in search.population],
        [ind.accuracy for ind in search.population],
        {k: v.clone() for k, v in search.supernet.state_dict().items()},
    )


def _assert_same(a, b):
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2].keys() == b[2].keys()
    for key in a[2]:
        assert torch.equal(a[2][key], b[2][key]), key


def test_run_directory_holds_every_promised_file(tmp_path, tiny_config):
    result = CarsSearch(tiny_config, tmp_path / "run", device="cpu", show_progress=False).run()
    run = tmp_path / "run"
    assert result.finished and result.generation == tiny_config.n_generations == 4 and result.epoch == 5
    assert json.loads((run / "config.json").read_text())["search"]["population"] == 4
    lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [line["generation"] for line in lines] == [0, 1, 2, 3, 4]
    assert len(lines[0]["individuals"]) == 4 and len(lines[1]["individuals"]) == 8  # (1 + t) P candidates
    for line in lines[1:]:
        assert sum(ind["selected"] for ind in line["individuals"]) == 4
        for ind in line["individuals"]:
            resolve_genotype(ind["genotype"]).validate()
            assert 0 <= ind["accuracy"] <= 1 and ind["accuracy_speed"] is not None
            assert ind["accuracy_speed"] == pytest.approx(ind["accuracy"] - ind["previous_accuracy"])
    population = pd.read_csv(run / "population.csv")
    pareto = pd.read_csv(run / "pareto.csv")
    for column in ("genotype", "accuracy", "params", "mult_adds", "latency_ms", "objective", "accuracy_speed"):
        assert column in pareto.columns and column in population.columns
    assert len(population) == 4 and 1 <= len(pareto) <= 4
    assert pareto["latency_ms"].isna().all() and (pareto["objective"] == "params").all()
    assert pareto["params"].is_monotonic_increasing
    assert resolve_genotype(f"{run}/pareto.csv:0") == result.population.genotypes[
        [str(g) for g in result.population.genotypes].index(pareto["genotype"][0])
    ]
    for plot in ("population.png", "pareto.png"):
        assert (run / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the checkpoint loads with weights_only=True and carries the whole state
    data = torch.load(run / "checkpoint.pt", weights_only=True)
    assert data["generation"] == 4 and data["epoch"] == 5
    assert len(data["population"]["codes"]) == 4 and isinstance(data["rng"]["torch"], torch.Tensor)
    assert {"bit_generator", "state"} <= set(data["rng"]["numpy"])


def test_resumed_search_ends_like_an_uninterrupted_one(tmp_path, tiny_config, monkeypatch):
    full = CarsSearch(tiny_config, tmp_path / "full", device="cpu", show_progress=False)
    full.run()
    expected = _state(full)

    # 1) stopped cleanly after generation 2, resumed in a new process-like object
    part = CarsSearch(tiny_config, tmp_path / "stopped", device="cpu", show_progress=False)
    result = part.run(max_generations=2)
    assert not result.finished and result.generation == 2
    resumed = CarsSearch.resume(tmp_path / "stopped", device="cpu", show_progress=False)
    assert resumed.generation == 2
    resumed.run()
    _assert_same(_state(resumed), expected)
    assert _untimed(resumed.history) == _untimed(full.history)

    # 2) killed in the middle of a generation's training (after 3 epochs), resumed from the epoch checkpoint
    real_epoch = SuperNetTrainer.train_epoch
    calls = {"n": 0}

    def dying_epoch(self, *args, **kwargs):
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_epoch(self, *args, **kwargs)

    monkeypatch.setattr(SuperNetTrainer, "train_epoch", dying_epoch)
    with pytest.raises(KeyboardInterrupt):  # epoch checkpoints at every epoch, not once a minute
        CarsSearch(tiny_config, tmp_path / "killed", device="cpu", show_progress=False, epoch_checkpoint_seconds=0).run()
    monkeypatch.setattr(SuperNetTrainer, "train_epoch", real_epoch)
    resumed = CarsSearch.resume(tmp_path / "killed", device="cpu", show_progress=False)
    assert resumed.epoch == 3
    resumed.run()
    _assert_same(_state(resumed), expected)
    history_lines = (tmp_path / "killed" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["generation"] for line in history_lines] == [0, 1, 2, 3, 4]


def test_same_seed_same_population_other_seed_other_population(tmp_path, tiny_config):
    config = tiny_config.replace(epochs=2, warmup_epochs=1)
    a = CarsSearch(config, tmp_path / "a", device="cpu", show_progress=False).run()
    b = CarsSearch(config, tmp_path / "b", device="cpu", show_progress=False).run()
    c = CarsSearch(config.replace(seed=4), tmp_path / "c", device="cpu", show_progress=False).run()
    assert a.population.genotypes == b.population.genotypes
    assert a.population.genotypes != c.population.genotypes


def test_corrupt_or_foreign_checkpoints_are_refused_with_one_line(tmp_path, tiny_config):
    config = tiny_config.replace(epochs=2, warmup_epochs=1)
    CarsSearch(config, tmp_path / "run", device="cpu", show_progress=False).run()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    good = checkpoint.read_bytes()

    checkpoint.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        CarsSearch.resume(tmp_path / "run", device="cpu", show_progress=False)
    assert "\n" not in str(info.value)

    torch.save({"weights": torch.zeros(2)}, checkpoint)  # some other torch file
    with pytest.raises(CheckpointError, match="not a cars-search checkpoint"):
        CarsSearch.resume(tmp_path / "run", device="cpu", show_progress=False)

    CarsSearch(config.replace(population=5), tmp_path / "other", device="cpu", show_progress=False).run()
    checkpoint.write_bytes((tmp_path / "other" / "checkpoint.pt").read_bytes())  # another search's
    with pytest.raises(CheckpointError, match="belongs to another search: population=5") as info:
        CarsSearch.resume(tmp_path / "run", device="cpu", show_progress=False)
    assert "\n" not in str(info.value)

    checkpoint.write_bytes(good)
    assert load_checkpoint(checkpoint, config=config)["generation"] == 1


def test_an_existing_run_is_not_overwritten(tmp_path, tiny_config):
    config = tiny_config.replace(epochs=2, warmup_epochs=1)
    CarsSearch(config, tmp_path / "run", device="cpu", show_progress=False).run()
    with pytest.raises(UserInputError, match="--resume"):
        CarsSearch(config, tmp_path / "run", device="cpu", show_progress=False)
    with pytest.raises(UserInputError, match="not a search run"):
        CarsSearch.resume(tmp_path / "nothing", device="cpu")
    (tmp_path / "run" / "config.json").write_text("{not json")
    with pytest.raises(UserInputError, match="config.json is unreadable or not a search config") as info:
        CarsSearch.resume(tmp_path / "run", device="cpu")
    assert not isinstance(info.value, CheckpointError) and info.value.exit_code == 2 and "\n" not in str(info.value)
