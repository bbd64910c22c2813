import json

import pytest

from cars_deploy.cli.train import main
from cars_deploy.space import GENOTYPES, NetworkConfig
from cars_deploy.train import TrainConfig, Trainer

QUICK = ["--C", "4", "--layers", "3", "--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--max-train-batches", "20"]


def test_short_run_on_the_embedded_digits_beats_the_untrained_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["DARTS_V2", *QUICK, "--seed", "0", "--out", str(out), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    untrained = Trainer(
        GENOTYPES.get("DARTS_V2"), NetworkConfig.cifar(C=4, layers=3, input_size=8), TrainConfig.cifar(seed=0), dataset="digits"
    ).evaluate()  # the same seeded initial weights, before any step
    trained = card["accuracy"]["top1"]
    assert trained >= 0.5 and trained >= untrained + 0.3, (untrained, trained)
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "model.pt", "model_card.json"}
    assert card["weights"] == "trained" and card["dataset"] == "digits" and card["input"]["mean"] == [0.5, 0.5, 0.5]
    assert card["class_names"] == [str(d) for d in range(10)] and card["params"] > 0 and card["mult_adds"] > 0
    assert card["training"]["auxiliary_weight"] == 0.0 and len(card["history"]) == 3

    # Rerunning on the finished folder resumes after the last epoch: nothing to train, the same result.
    assert main(["DARTS_V2", *QUICK, "--seed", "0", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"]["top1"] == trained


def _one_line_exit_2(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own usage errors, out-of-range numbers among them
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cars-train: error:") and "Traceback" not in err, err
    return err


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = _one_line_exit_2(["CARS_A", *QUICK, "--out", str(blocker / "run")], capsys)
    assert "which is a file" in err  # refused while parsing, before any work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_corrupt_checkpoint_in_the_output_folder_is_left_alone(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    err = _one_line_exit_2(["CARS_A", *QUICK, "--out", str(tmp_path)], capsys)
    assert "truncated or corrupt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


@pytest.mark.parametrize(
    "argv",
    [
        ["NOT_A_GENOTYPE"],
        ["CARS_A", "--input-size", "32"],
        ["CARS_A", "--epochs", "0"],
        ["CARS_A", "--dataset", "cifar10"],
        ["CARS_A", "--resume", "missing/checkpoint.pt"],
        ["CARS_A", "--C", "1"],
    ],
    ids=["unknown genotype", "digits resize", "zero epochs", "cifar10 without data", "missing resume", "C too small"],
)
def test_bad_inputs_are_one_line_and_exit_2(argv, tmp_path, capsys):
    _one_line_exit_2([*argv, "--out", str(tmp_path / "run")], capsys)
    assert not (tmp_path / "run").exists()
