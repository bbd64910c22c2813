"""The table of hostile inputs (issue 15): each row writes some files into a scratch folder, runs one
console script on them, and expects exit 2 (bad input) with exactly one error line naming the problem,
in bounded time (pytest-timeout), with no file created, changed or removed."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import pytest
import torch

from cars_deploy.space import GENOTYPES, NetworkConfig, build_network
from cars_deploy.train import Checkpoint

G = str(GENOTYPES.get("CARS_H"))
# DARTS notation with its normal_concat replaced: the published genotypes write concat as a list.
_CONCAT = re.compile(r"normal_concat=(range\(2, 6\)|\[2, 3, 4, 5\])")
G_RANGE = _CONCAT.sub("normal_concat=range(2, 1000000)", G)  # bounded literals, a range beyond a cell
G_HUGE = _CONCAT.sub("normal_concat=range(2, 100000000000000000000000000)", G)  # range(2, 10**26)
assert G_RANGE != G and G_HUGE != G
SMALL = ["--C", "8", "--layers", "3"]


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _train_checkpoint(root: Path, name: str, **changes: object) -> None:
    """A small, valid training checkpoint of CARS_H with ``changes`` applied to its stored fields."""
    network = NetworkConfig.cifar(C=8, layers=3, auxiliary=True)
    model = build_network(GENOTYPES.get("CARS_H"), network)
    checkpoint = Checkpoint(
        kind="train", genotype=G, network=network.__dict__.copy(),
        dataset={"name": "digits", "num_classes": 10, "input_size": 8, "mean": [0.5] * 3, "std": [0.5] * 3,
                 "class_names": [str(d) for d in range(10)]},
        model_state=model.state_dict(), train_config={"epochs": 3}, epoch=1,
        optimizer_state={"state": {}, "param_groups": []}, scheduler_state={"last_epoch": 1}, rng_state={},
        history=[{"epoch": 1, "lr": 0.1, "drop_path": 0.0, "train_loss": 1.0, "train_accuracy": 0.5,
                  "test_accuracy": None, "seconds": 1.0}],
    )
    data = checkpoint.to_dict()
    data.update(changes)
    torch.save(data, root / name)


def _search_run(root: Path, search: object = None, checkpoint: dict | None = None) -> None:
    from cars_deploy.search.config import SearchConfig

    run = root / "run"
    run.mkdir()
    config = SearchConfig().to_dict()
    (run / "config.json").write_text(json.dumps({"search": config if search is None else search}))
    if checkpoint is not None:
        base = {"format": "cars-deploy/search-checkpoint", "version": 1, "config": config, "epoch": 0, "generation": 0,
                "supernet": {}, "optimizer": {}, "scheduler": {}, "previous_supernet": None, "population": {},
                "history": [], "train_log": [], "rng": {}}
        torch.save({**base, **checkpoint}, run / "checkpoint.pt")


def _image_folder(root: Path, *, bad: bytes | None = None, empty_class: bool = False, test_classes=("a", "b")) -> None:
    from PIL import Image

    for split, classes in (("train", ("a", "b")), ("test", test_classes)):
        for name in classes:
            folder = root / "images" / split / name
            folder.mkdir(parents=True)
            if empty_class and split == "train" and name == "b":
                continue
            Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "0.png")
    if bad is not None:
        (root / "images" / "train" / "a" / "1.png").write_bytes(bad)


def _table(root: Path, sidecar_changes: dict) -> None:
    from cars_deploy.profilers.table import table_files

    csv, sidecar = table_files("latency_tables/host-cpu-imagenet-ort1")
    repo = Path(__file__).resolve().parents[2]
    (root / "t.csv").write_bytes((repo / csv).read_bytes())
    meta = json.loads((repo / sidecar).read_text())
    meta.update(sidecar_changes)
    (root / "t.json").write_text(json.dumps(meta))


Setup = Callable[[Path], None]
# (id, setup, program, argv, expected exit code, fragment of the error line)
CASES: list[tuple[str, Setup, str, list[str], int, str]] = [
    # --- item 2: the genotype reader, on text, files and pareto.csv rows ---
    ("long concat range", lambda r: None, "cars-inspect", ["--genotype", G_RANGE], 2, "more than the 4 nodes"),
    ("huge concat range", lambda r: None, "cars-inspect", ["--genotype", G_HUGE], 2, "too large"),
    ("bare integer edges (DARTS)", lambda r: None, "cars-inspect",
     ["--genotype", "Genotype(normal=[1, 2, 3, 4, 5, 6, 7, 8], reduce=[1, 2, 3, 4, 5, 6, 7, 8])"], 2, "(op, input) pair"),
    ("bare integer edges (JSON)", lambda r: None, "cars-inspect",
     ["--genotype", '{"normal": [1, 2, 3, 4, 5, 6, 7, 8], "reduce": [1, 2, 3, 4, 5, 6, 7, 8]}'], 2, "(op, input) pair"),
    ("4,000-digit index", lambda r: None, "cars-inspect", ["--genotype", G.replace(", 1)", ", " + "7" * 4000 + ")", 1)],
     2, "too large"),
    ("4,000-digit index (JSON file)", lambda r: _write(r, {"g.json": '{"normal": [["skip_connect", ' + "7" * 4000 + ']], "reduce": []}'}),
     "cars-inspect", ["--genotype", "g.json"], 2, "input"),
    ("JSON nested 5,000 deep", lambda r: _write(r, {"g.json": '{"normal": ' + "[" * 5000 + "]" * 5000 + "}"}),
     "cars-inspect", ["--genotype", "g.json"], 2, "nested too deeply"),
    ("binary genotype file", lambda r: _write(r, {"g.txt": bytes(range(256)) * 8}), "cars-inspect", ["--genotype", "g.txt"],
     2, "not UTF-8"),
    ("huge genotype file", lambda r: _write(r, {"g.txt": b"Genotype(" + b" " * (2 << 20) + b")"}), "cars-inspect",
     ["--genotype", "g.txt"], 2, "larger than"),
    ("null bytes in a genotype file", lambda r: _write(r, {"g.txt": "Genotype(\0)"}), "cars-inspect", ["--genotype", "g.txt"],
     2, "genotype"),
    ("pareto.csv row with a huge range", lambda r: _write(r, {"run/pareto.csv": "genotype\n\"" + G_RANGE + "\"\n"}),
     "cars-inspect", ["--genotype", "run/pareto.csv:0"], 2, "more than the 4 nodes"),
    ("binary pareto.csv", lambda r: _write(r, {"run/pareto.csv": bytes(range(256)) * 4}), "cars-inspect",
     ["--genotype", "run/pareto.csv:0"], 2, "pareto.csv"),
    ("pareto.csv row beyond any integer", lambda r: _write(r, {"run/pareto.csv": "genotype\n\"" + G + "\"\n"}),
     "cars-inspect", ["--genotype", "run/pareto.csv:" + "9" * 5000], 2, "pareto.csv"),
    # --- item 4: a runner name without a slash is ./NAME, never a binary found on $PATH ---
    ("--runner NAME on $PATH only", lambda r: None, "cars-profile",
     ["--device", "local", "--runner", "sh", "--out", "t", "--C", "8", "--layers", "3", "--input-size", "64"], 2, "runner binary sh not found"),
    # --- item 8: files with fields of the wrong type ---
    ("config.json with C a string", lambda r: _search_run(r, search={**__import__("cars_deploy.search.config", fromlist=["x"]).SearchConfig().to_dict(), "C": "8"}),
     "cars-search", ["--resume", "run"], 2, "'C'"),
    ("config.json whose search is a list", lambda r: _search_run(r, search=[1, 2]), "cars-search", ["--resume", "run"], 2,
     "not a search config"),
    ("search checkpoint whose history is an integer", lambda r: _search_run(r, checkpoint={"history": 3}), "cars-search",
     ["--resume", "run"], 2, "'history'"),
    ("search checkpoint with a negative epoch", lambda r: _search_run(r, checkpoint={"epoch": -4}), "cars-search",
     ["--resume", "run"], 2, "'epoch'"),
    ("train checkpoint whose dataset is a list", lambda r: _train_checkpoint(r, "c.pt", dataset=[1]), "cars-train",
     ["CARS_H", *SMALL, "--resume", "c.pt", "--out", "out"], 2, "'dataset'"),
    ("train checkpoint whose dataset mean is text", lambda r: _train_checkpoint(
        r, "c.pt", dataset={"name": "digits", "num_classes": 10, "input_size": 8, "mean": "abc", "std": [1, 1, 1]}),
     "cars-train", ["CARS_H", *SMALL, "--resume", "c.pt", "--out", "out"], 2, "dataset.mean"),
    ("train checkpoint whose history holds text", lambda r: _train_checkpoint(r, "c.pt", history=["x"]), "cars-train",
     ["CARS_H", *SMALL, "--resume", "c.pt", "--out", "out"], 2, "history[0]"),
    ("train checkpoint whose train_config has a string lr", lambda r: _train_checkpoint(r, "c.pt", train_config={"lr": "1"}),
     "cars-train", ["CARS_H", *SMALL, "--resume", "c.pt", "--out", "out"], 2, "'lr'"),
    ("model.pt whose genotype is an integer", lambda r: _train_checkpoint(r, "model.pt", kind="model", genotype=7),
     "cars-export", ["CARS_H", "--checkpoint", "model.pt", "--out", "exp"], 2, "'genotype'"),
    ("latency-table sidecar whose settings is a list", lambda r: _table(r, {"settings": [1, 2]}), "cars-inspect",
     ["--genotype", "CARS_H", "--latency-table", "t.csv"], 2, "'settings'"),
    ("latency-table sidecar whose networks are numbers", lambda r: _table(r, {"networks": [1]}), "cars-inspect",
     ["--genotype", "CARS_H", "--latency-table", "t.csv"], 2, "'networks'"),
    # --- item 9: ImageFolder data ---
    ("undecodable image", lambda r: _image_folder(r, bad=b"\x89PNG\r\n\x1a\n garbage"), "cars-train",
     ["CARS_H", *SMALL, "--dataset", "imagefolder", "--data-dir", "images", "--out", "out"], 2, "1.png cannot be decoded"),
    ("empty class folder", lambda r: _image_folder(r, empty_class=True), "cars-train",
     ["CARS_H", *SMALL, "--dataset", "imagefolder", "--data-dir", "images", "--out", "out"], 2, "holds no images"),
    ("test classes differ from training classes", lambda r: _image_folder(r, test_classes=("a", "c")), "cars-train",
     ["CARS_H", *SMALL, "--dataset", "imagefolder", "--data-dir", "images", "--out", "out"], 2, "other classes"),
    # --- item 10: output paths ---
    ("train --out under a file", lambda r: _write(r, {"f": "x"}), "cars-train", ["CARS_H", "--out", "f/run"], 2, "which is a file"),
    ("train --out empty", lambda r: None, "cars-train", ["CARS_H", "--out", ""], 2, "empty path"),
    ("search --out under a file", lambda r: _write(r, {"f": "x"}), "cars-search", ["--out", "f/run"], 2, "which is a file"),
    ("search --out a file", lambda r: _write(r, {"f": "x"}), "cars-search", ["--out", "f"], 2, "existing file"),
    ("export --out under a file", lambda r: _write(r, {"f": "x"}), "cars-export", ["CARS_H", "--out", "f/e"], 2, "which is a file"),
    ("export --name with a slash", lambda r: None, "cars-export", ["CARS_H", "--name", "../x"], 2, "plain file stem"),
    ("profile --out under a file", lambda r: _write(r, {"f": "x"}), "cars-profile", ["--device", "local", "--out", "f/t"], 2,
     "which is a file"),
    ("profile --out empty", lambda r: None, "cars-profile", ["--device", "local", "--out", ""], 2, "empty path"),
    ("train resumes a foreign checkpoint into a new folder", lambda r: _write(r, {"c.pt": b"not a checkpoint"}), "cars-train",
     ["CARS_H", *SMALL, "--resume", "c.pt", "--out", "new/run"], 2, "c.pt"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("setup, prog, argv, code, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_in_one_line(setup, prog, argv, code, fragment, tmp_path, run_cli):
    setup(tmp_path)
    run_cli(prog, argv).assert_refused(prog, code, fragment)


def test_runner_name_without_slash_means_the_file_here(tmp_path):
    """``--runner NAME`` resolves to ./NAME, once, and that absolute path is what every device uses."""
    from cars_deploy.profilers.runners import resolve_runner_path

    (tmp_path / "bench").write_text("#!/bin/sh\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert resolve_runner_path("bench") == tmp_path / "bench"
    finally:
        os.chdir(cwd)
