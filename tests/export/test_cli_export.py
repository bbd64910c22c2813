"""cars-export end to end: a trained checkpoint to files, and every bad input as one line, exit 2, nothing written."""
import json
import sys

import pytest
import torch

from cars_deploy.cli.export import main
from cars_deploy.train import read_model_card


def test_trained_checkpoint_to_onnx_and_ptl(trained, tmp_path, capsys):
    out = tmp_path / "export"
    argv = ["DARTS_V2", "--checkpoint", str(trained / "model.pt"), "--format", "onnx,ptl", "--out", str(out), "--json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["format"] for line in lines] == ["onnx", "ptl"] and all(line["weights"] == "trained" for line in lines)
    assert all(line["max_abs_diff"] < 1e-4 for line in lines)
    card = read_model_card(out / "model.onnx.card.json")
    assert card["network"]["C"] == 4 and card["network"]["layers"] == 3 and card["export"]["opset"] == 17
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_without_checkpoint_the_card_says_random(tmp_path, capsys):
    argv = ["CARS_Lat_A", "--format", "onnx", "--out", str(tmp_path), "--C", "4", "--layers", "3", "--num-classes", "5"]
    assert main(argv) == 0
    assert "random weights" in capsys.readouterr().out
    card = read_model_card(tmp_path / "model.onnx.card.json")
    assert card["weights"] == "random" and card["network"]["num_classes"] == 5 and len(card["class_names"]) == 5


def _bad_checkpoints(trained, folder):
    data = (trained / "model.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 3])
    (folder / "corrupt.pt").write_bytes(bytes(range(256)) * 20)
    raw = torch.load(trained / "model.pt", weights_only=True)
    raw["network"]["num_classes"] = 7  # says 7 classes, holds a 10-class classifier
    torch.save(raw, folder / "inconsistent.pt")
    return folder


@pytest.mark.parametrize(
    "case, argv, message",
    [
        ("other genotype", ["CARS_B", "--checkpoint", "{trained}/model.pt"], "another genotype"),
        ("other classes", ["DARTS_V2", "--checkpoint", "{trained}/model.pt", "--num-classes", "100"], "10 classes"),
        ("other dataset", ["DARTS_V2", "--checkpoint", "{trained}/model.pt", "--dataset", "cifar10"], "digits dataset"),
        ("truncated", ["DARTS_V2", "--checkpoint", "{bad}/truncated.pt"], "truncated or corrupt"),
        ("corrupt", ["DARTS_V2", "--checkpoint", "{bad}/corrupt.pt"], "truncated or corrupt"),
        ("inconsistent", ["DARTS_V2", "--checkpoint", "{bad}/inconsistent.pt"], "do not fit"),
        ("missing", ["DARTS_V2", "--checkpoint", "{bad}/missing.pt"], "not found"),
        ("unknown format", ["DARTS_V2", "--format", "onnx,tflite"], "unknown export format 'tflite'"),
        ("unwritable output", ["DARTS_V2", "--C", "4", "--layers", "3", "--out", "{bad}/truncated.pt/sub"], "which is a file"),
        ("bad name", ["DARTS_V2", "--name", "../escape"], "plain file stem"),
    ],
)
def test_bad_inputs_are_one_line_exit_2_and_write_nothing(case, argv, message, trained, tmp_path, capsys):
    bad = _bad_checkpoints(trained, tmp_path)
    out = tmp_path / "export"
    argv = [arg.format(trained=trained, bad=bad) for arg in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    try:
        status = main([*argv, "--format", "onnx"] if "--format" not in argv else argv)
    except SystemExit as exit:  # argparse's own usage errors: --out under a file is refused while parsing
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cars-export: error:") and "Traceback" not in err, err
    assert message in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt", "inconsistent.pt", "truncated.pt"]


def test_pte_without_executorch_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # an environment without the extra
    assert main(["DARTS_V2", "--format", "onnx,pte", "--out", str(tmp_path / "export")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'cars-deploy[executorch]'" in err
    assert not (tmp_path / "export").exists()  # not even the ONNX file: checked before anything is written
